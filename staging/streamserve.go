package staging

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// storeClock is a store that tells its own time.
type storeClock interface {
	Now(ctx context.Context) (time.Time, error)
}

// maxServing bounds the requests a server works on at once; further
// requests wait in the stream.
const maxServing = 32

// StreamServer serves a Store over a byte stream to one StreamClient (see
// the protocol in streamwire.go): the local burst serves the run store to a
// worker on an ssh host over the session's stdin and stdout.
type StreamServer struct {
	store   Store
	opts    StreamOptions
	log     *slog.Logger
	tempDir string

	mu   sync.Mutex
	conn *streamConn
	// ready is closed once the stream is open, so Notify can wait for
	// it.
	ready chan struct{}
}

// NewStreamServer returns a server of store. Files sent with PutFile wait
// in tempDir (os.TempDir() when empty) until they are stored.
func NewStreamServer(store Store, opts StreamOptions, tempDir string, log *slog.Logger) *StreamServer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if tempDir == "" {
		tempDir = os.TempDir()
	}
	return &StreamServer{store: store, opts: opts, log: log, tempDir: tempDir, ready: make(chan struct{})}
}

// inbound is a request whose data frames are still arriving.
type inbound struct {
	op   streamOp
	body []byte
	file *os.File // PutFile: the body after the head goes here
	key  string
}

func (in *inbound) discard() {
	if in.file != nil {
		in.file.Close()
		os.Remove(in.file.Name())
	}
}

// Serve serves the stream read from r and written to w until the client
// closes it (nil), ctx ends (its error), or the stream fails or falls
// silent (an error wrapping ErrStreamClosed). Calls in flight are
// cancelled on the way out. closer, when set, is called as the stream
// ends, to unblock the reads of r.
//
// Serve may be called once.
func (s *StreamServer) Serve(ctx context.Context, r io.Reader, w io.Writer, closer func()) error {
	br := bufio.NewReaderSize(r, 64<<10)
	c := newStreamConn(w, s.opts, closer)
	pre, err := readMagic(br)
	if len(pre) > 0 {
		s.log.Info("the other side wrote before opening the store stream", "text", string(pre))
	}
	if err != nil {
		c.close(err)
		return err
	}
	if err := c.send(frame{kind: kindHello, payload: encodeHello(s.store.Location())}); err != nil {
		return err
	}
	s.mu.Lock()
	s.conn = c
	s.mu.Unlock()
	close(s.ready)
	go c.keepalive()

	sctx, cancelAll := context.WithCancel(ctx)
	defer cancelAll()
	stop := context.AfterFunc(ctx, func() { c.close(ctx.Err()) })
	defer stop()

	var (
		wg       sync.WaitGroup
		sem      = make(chan struct{}, maxServing)
		rmu      sync.Mutex
		running  = map[uint32]context.CancelFunc{}
		incoming = map[uint32]*inbound{}
	)
	defer func() {
		for _, in := range incoming {
			in.discard()
		}
	}()
	dispatch := func(id uint32, in *inbound) {
		select {
		case sem <- struct{}{}:
		case <-c.closed:
			in.discard()
			return
		}
		rctx, cancel := context.WithCancel(sctx)
		rmu.Lock()
		running[id] = cancel
		rmu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			defer func() {
				rmu.Lock()
				delete(running, id)
				rmu.Unlock()
				cancel()
			}()
			s.handle(rctx, c, id, in)
		}()
	}

	var readErr error
	for readErr == nil {
		f, err := readFrame(br)
		if err != nil {
			readErr = err
			break
		}
		c.received()
		switch f.kind {
		case kindPing:
		case kindNotify:
			if s.opts.OnNotify != nil {
				s.opts.OnNotify(f.payload)
			}
		case kindCancel:
			if in := incoming[f.id]; in != nil {
				in.discard()
				delete(incoming, f.id)
			}
			rmu.Lock()
			if cancel := running[f.id]; cancel != nil {
				cancel()
			}
			rmu.Unlock()
		case kindRequest:
			if incoming[f.id] != nil {
				readErr = protocolErrorf("request %d sent twice", f.id)
				break
			}
			in := &inbound{body: f.payload}
			if len(f.payload) > 0 {
				in.op = streamOp(f.payload[0])
			}
			if f.flags&flagMore == 0 {
				dispatch(f.id, in)
				break
			}
			if in.op == opPutFile {
				q, err := decodeRequest(f.payload)
				if err != nil {
					readErr = err
					break
				}
				file, err := os.CreateTemp(s.tempDir, "burst-stream-*")
				if err != nil {
					readErr = fmt.Errorf("receiving a file: %w", err)
					break
				}
				in.file, in.key = file, q.key
			}
			incoming[f.id] = in
		case kindData:
			in := incoming[f.id]
			if in == nil {
				break // a cancelled request's last frames
			}
			if f.flags&flagAbort != 0 {
				in.discard()
				delete(incoming, f.id)
				break
			}
			if in.file != nil {
				if _, err := in.file.Write(f.payload); err != nil {
					readErr = fmt.Errorf("receiving a file: %w", err)
					break
				}
			} else {
				if len(in.body)+len(f.payload) > maxMessage {
					readErr = protocolErrorf("request %d larger than %d bytes", f.id, maxMessage)
					break
				}
				in.body = append(in.body, f.payload...)
			}
			if f.flags&flagMore == 0 {
				delete(incoming, f.id)
				dispatch(f.id, in)
			}
		default:
			readErr = protocolErrorf("unexpected %d frame from the client", f.kind)
		}
	}
	if errors.Is(readErr, io.EOF) {
		readErr = io.EOF
	}
	c.close(readErr)
	cancelAll()
	wg.Wait()
	switch {
	case errors.Is(readErr, io.EOF):
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return c.Err()
}

// Opened is closed once the client has opened the stream.
func (s *StreamServer) Opened() <-chan struct{} { return s.ready }

// Notify sends payload (at most 1 MiB) to the client's OnNotify. It waits
// until the stream is open, and fails once it has closed.
func (s *StreamServer) Notify(ctx context.Context, payload []byte) error {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	if len(payload) > maxFramePayload {
		return fmt.Errorf("notification of %d bytes: larger than %d", len(payload), maxFramePayload)
	}
	return s.conn.send(frame{kind: kindNotify, payload: payload})
}

// handle runs one complete request and sends its response.
func (s *StreamServer) handle(ctx context.Context, c *streamConn, id uint32, in *inbound) {
	var (
		q   request
		err error
	)
	if in.file != nil {
		defer os.Remove(in.file.Name())
		if err = in.file.Close(); err == nil {
			q = request{op: opPutFile, key: in.key}
		}
	} else {
		q, err = decodeRequest(in.body)
	}
	if err != nil {
		s.log.Warn("malformed store request", "err", err)
		_ = c.sendMessage(id, kindResponse, encodeResponse(0, errorResponse(err)), false)
		return
	}
	var p response
	switch q.op {
	case opGet:
		p.data, p.etag, err = s.store.Get(ctx, q.key)
	case opStat:
		p.info, err = s.store.Stat(ctx, q.key)
	case opPut:
		p.etag, err = s.store.Put(ctx, q.key, q.data)
	case opCreate:
		p.etag, err = s.store.Create(ctx, q.key, q.data)
	case opReplace:
		p.etag, err = s.store.Replace(ctx, q.key, q.data, q.etag)
	case opDelete:
		err = s.store.Delete(ctx, q.key)
	case opList:
		p.infos, err = s.store.List(ctx, q.key)
	case opListDirs:
		p.names, err = s.store.ListDirs(ctx, q.key)
	case opPutFile:
		p.etag, err = s.store.PutFile(ctx, q.key, in.file.Name())
	case opGetFile:
		s.sendFile(ctx, c, id, q.key)
		return
	case opNow:
		if clock, ok := s.store.(storeClock); ok {
			p.now, err = clock.Now(ctx)
		} else {
			err = fmt.Errorf("%w %s: the served store has no clock", errUnknownOp, q.op)
		}
	default:
		err = fmt.Errorf("%w %d", errUnknownOp, q.op)
	}
	if ctx.Err() != nil {
		// Cancelled by the client, which no longer waits, or the server
		// is ending, and the stream with it: no answer.
		return
	}
	if err != nil {
		p = errorResponse(err)
	}
	_ = c.sendMessage(id, kindResponse, encodeResponse(q.op, p), false)
}

// sendFile answers GetFile: the object is fetched into a temporary file,
// then streamed.
func (s *StreamServer) sendFile(ctx context.Context, c *streamConn, id uint32, key string) {
	tmp, err := os.CreateTemp(s.tempDir, "burst-stream-*")
	if err == nil {
		tmp.Close()
		defer os.Remove(tmp.Name())
		err = s.store.GetFile(ctx, key, tmp.Name())
	}
	var f *os.File
	if err == nil {
		f, err = os.Open(tmp.Name())
	}
	if err != nil {
		_ = c.sendMessage(id, kindResponse, encodeResponse(opGetFile, errorResponse(err)), false)
		return
	}
	defer f.Close()
	if err := c.sendMessage(id, kindResponse, encodeResponse(opGetFile, response{}), true); err != nil {
		return
	}
	_ = c.sendFile(ctx, id, f)
}
