package staging

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// ErrStreamClosed is wrapped by the errors of calls on a stream that has
// ended: the other side exited, the connection dropped, or it fell silent
// for longer than StreamOptions.DeadAfter.
var ErrStreamClosed = errors.New("store stream closed")

// StreamOptions tune both ends of a store stream.
type StreamOptions struct {
	// PingEvery is how often each side tells the other it is alive
	// (default 5s); DeadAfter is how long a side waits without a word
	// from the other before it gives the stream up (default six pings).
	PingEvery, DeadAfter time.Duration
	// OnNotify, when set, receives the other side's Notify payloads, in
	// order, from the goroutine that reads the stream: it must not block.
	OnNotify func(payload []byte)
}

func (o *StreamOptions) defaults() {
	if o.PingEvery <= 0 {
		o.PingEvery = 5 * time.Second
	}
	if o.DeadAfter <= 0 {
		o.DeadAfter = 6 * o.PingEvery
	}
}

// streamConn is what both ends share: framed writes from many goroutines,
// keepalive, and the end of the stream.
type streamConn struct {
	opts     StreamOptions
	w        io.Writer
	wmu      sync.Mutex
	wbuf     []byte
	lastRecv atomic.Int64 // unix nanos
	closed   chan struct{}
	once     sync.Once
	err      error // why it closed; set before closed is closed
	// closer, when set, is called once as the stream closes, to unblock
	// a reader or writer stuck on the underlying streams.
	closer func()
}

func newStreamConn(w io.Writer, opts StreamOptions, closer func()) *streamConn {
	opts.defaults()
	c := &streamConn{opts: opts, w: w, closed: make(chan struct{}), closer: closer}
	c.lastRecv.Store(time.Now().UnixNano())
	return c
}

// close ends the stream with err (the first one wins).
func (c *streamConn) close(err error) {
	c.once.Do(func() {
		c.err = fmt.Errorf("%w: %w", ErrStreamClosed, err)
		if errors.Is(err, io.EOF) {
			c.err = fmt.Errorf("%w by the other side", ErrStreamClosed)
		}
		close(c.closed)
		if c.closer != nil {
			c.closer()
		}
	})
}

// Err returns why the stream closed, or nil while it is open.
func (c *streamConn) Err() error {
	select {
	case <-c.closed:
		return c.err
	default:
		return nil
	}
}

// send writes one frame.
func (c *streamConn) send(f frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.Err(); err != nil {
		return err
	}
	c.wbuf = appendFrame(c.wbuf[:0], f)
	if _, err := c.w.Write(c.wbuf); err != nil {
		c.close(fmt.Errorf("writing: %w", err))
		return c.Err()
	}
	if cap(c.wbuf) > 2*maxFramePayload {
		c.wbuf = nil
	}
	return nil
}

// sendMessage writes a head frame of kind with body, split into data
// frames as needed; more says that the caller sends further data frames
// itself (a streamed file).
func (c *streamConn) sendMessage(id uint32, kind frameKind, body []byte, more bool) error {
	head := body
	if len(head) > maxFramePayload {
		head = head[:maxFramePayload]
	}
	body = body[len(head):]
	f := frame{id: id, kind: kind, payload: head}
	if len(body) > 0 || more {
		f.flags = flagMore
	}
	if err := c.send(f); err != nil {
		return err
	}
	for len(body) > 0 {
		n := min(len(body), maxFramePayload)
		f := frame{id: id, kind: kindData, payload: body[:n]}
		body = body[n:]
		if len(body) > 0 || more {
			f.flags = flagMore
		}
		if err := c.send(f); err != nil {
			return err
		}
	}
	return nil
}

// sendFile streams r as the data frames that end a message whose head
// was sent with more.
func (c *streamConn) sendFile(ctx context.Context, id uint32, r io.Reader) error {
	buf := make([]byte, maxFramePayload)
	for {
		n, err := io.ReadFull(r, buf)
		if cerr := ctx.Err(); cerr != nil {
			err = cerr
		}
		switch {
		case err == nil:
			if err := c.send(frame{id: id, kind: kindData, flags: flagMore, payload: buf[:n]}); err != nil {
				return err
			}
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return c.send(frame{id: id, kind: kindData, payload: buf[:n]})
		default:
			abort := encodeResponse(0, errorResponse(fmt.Errorf("sending the file: %w", err)))
			if serr := c.send(frame{id: id, kind: kindData, flags: flagAbort, payload: abort}); serr != nil {
				return serr
			}
			return err
		}
	}
}

// received notes that the other side is alive.
func (c *streamConn) received() { c.lastRecv.Store(time.Now().UnixNano()) }

// keepalive pings the other side and closes the stream once it has been
// silent for DeadAfter, until the stream closes.
func (c *streamConn) keepalive() {
	t := time.NewTicker(c.opts.PingEvery)
	defer t.Stop()
	for {
		select {
		case <-c.closed:
			return
		case <-t.C:
		}
		if silent := time.Since(time.Unix(0, c.lastRecv.Load())); silent > c.opts.DeadAfter {
			c.close(fmt.Errorf("no word from the other side for %s", silent.Round(time.Second)))
			return
		}
		// Sent from a goroutine of its own: a writer stuck behind a
		// stalled stream must not stop the silence check.
		go func() { _ = c.send(frame{kind: kindPing}) }()
	}
}

// writeMagic writes the client's opening.
func writeMagic(w io.Writer) error {
	b := binary.AppendUvarint(append([]byte{}, streamMagic...), streamVersion)
	_, err := w.Write(b)
	return err
}

// readMagic skips what comes before the client's opening (at most
// maxPreamble bytes, returned) and reads the client's protocol version.
func readMagic(r *bufio.Reader) (preamble []byte, err error) {
	var seen []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return seen, fmt.Errorf("the other side ended before opening the store stream%s", preambleNote(seen))
			}
			return seen, err
		}
		seen = append(seen, b)
		if bytes.HasSuffix(seen, streamMagic) {
			seen = seen[:len(seen)-len(streamMagic)]
			break
		}
		if len(seen) > maxPreamble+len(streamMagic) {
			return seen[:maxPreamble], fmt.Errorf("no store stream in the first %d bytes from the other side%s", maxPreamble, preambleNote(seen))
		}
	}
	v, err := binary.ReadUvarint(r)
	if err != nil {
		return seen, protocolErrorf("reading the protocol version: %v", err)
	}
	if v != streamVersion {
		return seen, fmt.Errorf("the other side speaks store stream protocol %d, this burst %d: use the same burst build on both ends", v, streamVersion)
	}
	return seen, nil
}

// preambleNote quotes the first line of what came instead of the stream.
func preambleNote(seen []byte) string {
	line, _, _ := bytes.Cut(bytes.TrimSpace(seen), []byte("\n"))
	if len(line) == 0 {
		return ""
	}
	if len(line) > 120 {
		line = line[:120]
	}
	return fmt.Sprintf(" (it wrote %q)", line)
}

// StreamClosedError reports whether err comes from a closed stream.
func StreamClosedError(err error) bool { return errors.Is(err, ErrStreamClosed) }
