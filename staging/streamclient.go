package staging

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// StreamClient is a Store served by a StreamServer at the other end of a
// byte stream: a worker on an ssh host reaches the run store over the
// session's stdin and stdout. Its calls are multiplexed over the stream,
// any number at once.
//
// When the stream ends, every call in flight and every later call fails
// with an error wrapping ErrStreamClosed, and Done is closed.
type StreamClient struct {
	conn     *streamConn
	location string

	mu     sync.Mutex
	nextID uint32
	calls  map[uint32]*call
}

// call is a request waiting for its response.
type call struct {
	op   streamOp
	done chan callResult // buffered: the reader never waits
	body []byte
	more bool
	// GetFile: the destination, and the temporary file the data goes to.
	dst  string
	file *os.File
}

type callResult struct {
	resp response
	err  error
}

// helloTimeout bounds the wait for the server's hello.
const helloTimeout = 60 * time.Second

// NewStreamClient opens the stream: it writes the client's opening to w
// and reads the server's hello from r, then serves calls until the stream
// ends. closer, when set, is called as the stream ends, to unblock reads of
// r.
func NewStreamClient(ctx context.Context, r io.Reader, w io.Writer, opts StreamOptions, closer func()) (*StreamClient, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	c := &StreamClient{conn: newStreamConn(w, opts, closer), calls: map[uint32]*call{}}
	if err := writeMagic(w); err != nil {
		c.conn.close(err)
		return nil, fmt.Errorf("opening the store stream: %w", err)
	}
	type hello struct {
		loc string
		err error
	}
	got := make(chan hello, 1)
	go func() {
		f, err := readFrame(br)
		if err == nil && (f.kind != kindHello || f.id != 0) {
			err = protocolErrorf("expected a hello, got a %d frame", f.kind)
		}
		var v uint64
		var loc string
		if err == nil {
			v, loc, err = decodeHello(f.payload)
		}
		if err == nil && v != streamVersion {
			err = fmt.Errorf("the serving burst speaks store stream protocol %d, this burst %d: use the same burst build on both ends", v, streamVersion)
		}
		got <- hello{loc, err}
	}()
	var h hello
	select {
	case h = <-got:
	case <-ctx.Done():
		c.conn.close(ctx.Err())
		return nil, ctx.Err()
	case <-time.After(helloTimeout):
		h.err = fmt.Errorf("no hello from the serving burst in %s", helloTimeout)
	}
	if h.err != nil {
		c.conn.close(h.err)
		return nil, fmt.Errorf("opening the store stream: %w", h.err)
	}
	c.location = h.loc
	c.conn.received()
	go c.readLoop(br)
	go c.conn.keepalive()
	return c, nil
}

// Done is closed when the stream has ended; Err then says why.
func (c *StreamClient) Done() <-chan struct{} { return c.conn.closed }

// Err returns why the stream ended, or nil while it is open.
func (c *StreamClient) Err() error { return c.conn.Err() }

// Close ends the stream. Calls in flight fail.
func (c *StreamClient) Close() error {
	c.conn.close(errors.New("closed by this side"))
	return nil
}

// Notify sends payload (at most 1 MiB) to the server's OnNotify.
func (c *StreamClient) Notify(ctx context.Context, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(payload) > maxFramePayload {
		return fmt.Errorf("notification of %d bytes: larger than %d", len(payload), maxFramePayload)
	}
	return c.conn.send(frame{kind: kindNotify, payload: payload})
}

// Location returns the served store's location, as the server names it.
func (c *StreamClient) Location() string { return c.location }

func (c *StreamClient) readLoop(br *bufio.Reader) {
	var err error
	for {
		var f frame
		if f, err = readFrame(br); err != nil {
			break
		}
		c.conn.received()
		if err = c.dispatch(f); err != nil {
			break
		}
	}
	c.conn.close(err)
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, cl := range c.calls {
		cl.discardFile()
		c.finish(id, cl, callResult{err: c.conn.Err()})
	}
}

func (c *StreamClient) dispatch(f frame) error {
	switch f.kind {
	case kindPing:
		return nil
	case kindNotify:
		if c.conn.opts.OnNotify != nil {
			c.conn.opts.OnNotify(f.payload)
		}
		return nil
	case kindResponse, kindData:
	default:
		return protocolErrorf("unexpected %d frame from the server", f.kind)
	}
	// Calls are worked on under the lock, so that one given up (forget)
	// is never touched again.
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.calls[f.id]
	if cl == nil {
		return nil // a cancelled call's response
	}
	if f.kind == kindResponse {
		if cl.more || cl.body != nil {
			return protocolErrorf("second response to request %d", f.id)
		}
		cl.body = f.payload
		if cl.op == opGetFile && f.flags&flagMore != 0 {
			if len(f.payload) != 1 || f.payload[0] != respOK {
				return protocolErrorf("GetFile response with data after an error")
			}
			tmp, err := os.CreateTemp(filepath.Dir(cl.dst), ".tmp-burst-get-*")
			if err != nil {
				c.finish(f.id, cl, callResult{err: fmt.Errorf("receiving %s: %w", cl.dst, err)})
				return nil
			}
			cl.file = tmp
		}
	} else {
		if !cl.more {
			return protocolErrorf("data for request %d after its end", f.id)
		}
		if f.flags&flagAbort != 0 {
			cl.discardFile()
			p, err := decodeResponse(0, f.payload)
			if err == nil {
				err = responseError(cl.op, p)
			}
			c.finish(f.id, cl, callResult{err: err})
			return nil
		}
		if cl.file != nil {
			if _, err := cl.file.Write(f.payload); err != nil {
				cl.discardFile()
				c.finish(f.id, cl, callResult{err: fmt.Errorf("receiving %s: %w", cl.dst, err)})
				return nil
			}
		} else {
			if len(cl.body)+len(f.payload) > maxMessage {
				return protocolErrorf("response %d larger than %d bytes", f.id, maxMessage)
			}
			cl.body = append(cl.body, f.payload...)
		}
	}
	cl.more = f.flags&flagMore != 0
	if cl.more {
		return nil
	}
	if cl.file != nil {
		name := cl.file.Name()
		err := cl.file.Close()
		cl.file = nil
		if err == nil {
			err = os.Rename(name, cl.dst)
		}
		if err != nil {
			os.Remove(name)
			c.finish(f.id, cl, callResult{err: fmt.Errorf("receiving %s: %w", cl.dst, err)})
			return nil
		}
		c.finish(f.id, cl, callResult{resp: response{code: respOK}})
		return nil
	}
	p, err := decodeResponse(cl.op, cl.body)
	if err != nil {
		return err
	}
	c.finish(f.id, cl, callResult{resp: p})
	return nil
}

// finish delivers a call's result; frames still coming for it are
// dropped. c.mu is held.
func (c *StreamClient) finish(id uint32, cl *call, r callResult) {
	delete(c.calls, id)
	cl.done <- r
}

func (cl *call) discardFile() {
	if cl.file != nil {
		cl.file.Close()
		os.Remove(cl.file.Name())
		cl.file = nil
	}
}

// do sends a request and waits for its response. file, when set, is
// streamed after the request (PutFile); dst receives the data of GetFile.
func (c *StreamClient) do(ctx context.Context, q request, file io.Reader, dst string) (response, error) {
	if err := ctx.Err(); err != nil {
		return response{}, err
	}
	if err := c.conn.Err(); err != nil {
		return response{}, err
	}
	cl := &call{op: q.op, done: make(chan callResult, 1), dst: dst}
	c.mu.Lock()
	var id uint32
	for {
		c.nextID++
		if c.nextID != 0 && c.calls[c.nextID] == nil {
			id = c.nextID
			break
		}
	}
	c.calls[id] = cl
	c.mu.Unlock()

	// A stream that closed after the check above has failed every call
	// registered by then; catch one registered just after.
	select {
	case <-c.conn.closed:
		c.forget(id, cl)
		return response{}, c.conn.Err()
	default:
	}
	err := c.conn.sendMessage(id, kindRequest, encodeRequest(q), file != nil)
	if err == nil && file != nil {
		err = c.conn.sendFile(ctx, id, file)
	}
	if err != nil {
		c.forget(id, cl)
		if ctx.Err() != nil {
			_ = c.conn.send(frame{id: id, kind: kindCancel})
			return response{}, ctx.Err()
		}
		if c.conn.Err() != nil {
			return response{}, c.conn.Err()
		}
		return response{}, err
	}
	select {
	case r := <-cl.done:
		if r.err != nil {
			return response{}, r.err
		}
		return r.resp, responseError(q.op, r.resp)
	case <-ctx.Done():
		if c.forget(id, cl) {
			_ = c.conn.send(frame{id: id, kind: kindCancel})
		}
		return response{}, ctx.Err()
	}
}

// forget drops a call that is given up; it reports whether the call was
// still waiting for its response.
func (c *StreamClient) forget(id uint32, cl *call) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls[id] != cl {
		return false
	}
	delete(c.calls, id)
	cl.discardFile()
	return true
}

func (c *StreamClient) Get(ctx context.Context, key string) ([]byte, string, error) {
	if err := ValidKey(key); err != nil {
		return nil, "", err
	}
	p, err := c.do(ctx, request{op: opGet, key: key}, nil, "")
	if err != nil {
		return nil, "", err
	}
	if p.data == nil {
		p.data = []byte{}
	}
	return p.data, p.etag, nil
}

func (c *StreamClient) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidKey(key); err != nil {
		return ObjectInfo{}, err
	}
	p, err := c.do(ctx, request{op: opStat, key: key}, nil, "")
	return p.info, err
}

func (c *StreamClient) Put(ctx context.Context, key string, data []byte) (string, error) {
	return c.write(ctx, request{op: opPut, key: key, data: data})
}

func (c *StreamClient) Create(ctx context.Context, key string, data []byte) (string, error) {
	return c.write(ctx, request{op: opCreate, key: key, data: data})
}

func (c *StreamClient) Replace(ctx context.Context, key string, data []byte, etag string) (string, error) {
	return c.write(ctx, request{op: opReplace, key: key, data: data, etag: etag})
}

func (c *StreamClient) write(ctx context.Context, q request) (string, error) {
	if err := ValidKey(q.key); err != nil {
		return "", err
	}
	if len(q.data) > maxMessage-len(q.key)-len(q.etag)-32 {
		return "", fmt.Errorf("%s %s: %d bytes is more than a store stream carries in one object; use PutFile", q.op, q.key, len(q.data))
	}
	p, err := c.do(ctx, q, nil, "")
	return p.etag, err
}

func (c *StreamClient) Delete(ctx context.Context, key string) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	_, err := c.do(ctx, request{op: opDelete, key: key}, nil, "")
	return err
}

func (c *StreamClient) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	p, err := c.do(ctx, request{op: opList, key: prefix}, nil, "")
	return p.infos, err
}

func (c *StreamClient) ListDirs(ctx context.Context, prefix string) ([]string, error) {
	p, err := c.do(ctx, request{op: opListDirs, key: prefix}, nil, "")
	return p.names, err
}

func (c *StreamClient) PutFile(ctx context.Context, key, path string) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("uploading %s: %w", path, err)
	}
	defer f.Close()
	p, err := c.do(ctx, request{op: opPutFile, key: key}, f, "")
	return p.etag, err
}

func (c *StreamClient) GetFile(ctx context.Context, key, path string) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	_, err := c.do(ctx, request{op: opGetFile, key: key}, nil, path)
	return err
}

// Now returns the served store's current time, as its clock tells it (one
// round trip late at most).
func (c *StreamClient) Now(ctx context.Context) (time.Time, error) {
	p, err := c.do(ctx, request{op: opNow}, nil, "")
	return p.now, err
}
