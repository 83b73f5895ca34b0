package staging

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// The stream protocol carries a Store's operations over one pair of byte
// streams, such as an ssh session's stdin and stdout: the side that has the
// store serves it (StreamServer), the other uses it (StreamClient).
//
// The client opens with streamMagic; from then on both directions carry
// frames:
//
//	u32 length   of what follows: 6 + len(payload), at most 6 + maxFramePayload
//	u32 id       the request the frame belongs to; 0 for hello and ping
//	u8  kind     hello, request, response, data, cancel, ping or notify
//	u8  flags    flagMore: data frames follow; flagAbort: the message failed
//	payload
//
// A request or response is one head frame, followed by data frames while
// the previous frame has flagMore; its body is the concatenation of their
// payloads, at most maxMessage bytes (files sent with PutFile and GetFile
// are streamed, and not bounded). Requests carry ids chosen by the client,
// so several calls are in flight at once and their frames interleave; a
// large transfer never holds up a small call for more than one frame.
//
// Each Store method is one request type (streamOp); a request's body is the
// op, the key (or prefix), then what the op needs. A response's body is a
// code (respOK, or one naming ErrNotFound, ErrExists, ErrChanged or another
// error, with its message), then what the op returns. A new method is a new
// op; a server that does not know an op answers respUnknownOp.
const (
	// streamVersion is the version of the stream protocol, sent in the
	// client's opening and the server's hello.
	streamVersion = 1
	// maxFramePayload bounds one frame's payload.
	maxFramePayload = 1 << 20
	// maxMessage bounds the body of a request or response held in memory.
	maxMessage = 512 << 20
	frameHead  = 4 + 4 + 1 + 1
)

// streamMagic opens the client's side of a stream. The server skips up to
// maxPreamble bytes before it (what a remote shell may print at login).
var streamMagic = []byte("\x00burst-store-stream\x00v")

const maxPreamble = 64 << 10

type frameKind uint8

const (
	kindHello frameKind = iota + 1
	kindRequest
	kindResponse
	kindData
	kindCancel
	kindPing
	kindNotify
	kindLast = kindNotify
)

const (
	flagMore  = 1 << 0
	flagAbort = 1 << 1
)

type frame struct {
	id      uint32
	kind    frameKind
	flags   uint8
	payload []byte
}

// errProtocol marks a malformed stream.
var errProtocol = errors.New("stream protocol error")

func protocolErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errProtocol, fmt.Sprintf(format, args...))
}

// readFrame reads one frame.
func readFrame(r *bufio.Reader) (frame, error) {
	var h [frameHead]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return frame{}, protocolErrorf("stream ends inside a frame header")
		}
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(h[0:4])
	if n < frameHead-4 || n-(frameHead-4) > maxFramePayload {
		return frame{}, protocolErrorf("frame length %d out of range", n)
	}
	f := frame{id: binary.BigEndian.Uint32(h[4:8]), kind: frameKind(h[8]), flags: h[9]}
	if f.kind == 0 || f.kind > kindLast {
		return frame{}, protocolErrorf("unknown frame kind %d", f.kind)
	}
	if f.flags&^(flagMore|flagAbort) != 0 {
		return frame{}, protocolErrorf("unknown frame flags %#x", f.flags)
	}
	f.payload = make([]byte, n-(frameHead-4))
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return frame{}, protocolErrorf("stream ends inside a frame")
	}
	return f, nil
}

// appendFrame appends a frame's encoding to b.
func appendFrame(b []byte, f frame) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(frameHead-4+len(f.payload)))
	b = binary.BigEndian.AppendUint32(b, f.id)
	b = append(b, byte(f.kind), f.flags)
	return append(b, f.payload...)
}

// wbuf builds a message body.
type wbuf struct{ b []byte }

func (w *wbuf) byte(v uint8)      { w.b = append(w.b, v) }
func (w *wbuf) uvarint(v uint64)  { w.b = binary.AppendUvarint(w.b, v) }
func (w *wbuf) varint(v int64)    { w.b = binary.AppendVarint(w.b, v) }
func (w *wbuf) str(s string)      { w.uvarint(uint64(len(s))); w.b = append(w.b, s...) }
func (w *wbuf) raw(p []byte)      { w.b = append(w.b, p...) }
func (w *wbuf) time(t time.Time)  { w.varint(t.UnixNano()) }
func (w *wbuf) info(i ObjectInfo) { w.str(i.Key); w.varint(i.Size); w.str(i.ETag); w.time(i.Modified) }
func (w *wbuf) strs(ss []string) {
	w.uvarint(uint64(len(ss)))
	for _, s := range ss {
		w.str(s)
	}
}
func (w *wbuf) infos(is []ObjectInfo) {
	w.uvarint(uint64(len(is)))
	for _, i := range is {
		w.info(i)
	}
}

// rbuf reads a message body; the first error sticks, and reads after it
// return zero values.
type rbuf struct {
	b   []byte
	err error
}

func (r *rbuf) fail(what string) {
	if r.err == nil {
		r.err = protocolErrorf("malformed message: %s", what)
	}
}

func (r *rbuf) byte() uint8 {
	if r.err != nil || len(r.b) < 1 {
		r.fail("short")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *rbuf) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n != len(binary.AppendUvarint(nil, v)) {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *rbuf) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 || n != len(binary.AppendVarint(nil, v)) {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *rbuf) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.fail("string longer than the message")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *rbuf) time() time.Time {
	ns := r.varint()
	if r.err != nil {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func (r *rbuf) info() ObjectInfo {
	return ObjectInfo{Key: r.str(), Size: r.varint(), ETag: r.str(), Modified: r.time()}
}

// count reads a list's length, which cannot exceed what is left when each
// element takes at least min bytes.
func (r *rbuf) count(min int) int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)/min) {
		r.fail("list longer than the message")
		return 0
	}
	return int(n)
}

func (r *rbuf) strs() []string {
	n := r.count(1)
	out := make([]string, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, r.str())
	}
	return out
}

func (r *rbuf) infos() []ObjectInfo {
	n := r.count(4)
	out := make([]ObjectInfo, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, r.info())
	}
	return out
}

// rest returns the unread bytes.
func (r *rbuf) rest() []byte {
	b := r.b
	r.b = nil
	return b
}

// end fails if anything is left unread.
func (r *rbuf) end() error {
	if r.err == nil && len(r.b) > 0 {
		r.fail("trailing bytes")
	}
	return r.err
}

// streamOp is a request type: one per Store method.
type streamOp uint8

const (
	opGet streamOp = iota + 1
	opStat
	opPut
	opCreate
	opReplace
	opDelete
	opList
	opListDirs
	opPutFile
	opGetFile
	opNow
	opLast = opNow
)

var opNames = [...]string{"", "Get", "Stat", "Put", "Create", "Replace", "Delete", "List", "ListDirs", "PutFile", "GetFile", "Now"}

func (o streamOp) String() string {
	if int(o) < len(opNames) && o > 0 {
		return opNames[o]
	}
	return fmt.Sprintf("op%d", uint8(o))
}

// request is a decoded request body.
type request struct {
	op   streamOp
	key  string // the key, or the prefix of List and ListDirs
	etag string // Replace
	data []byte // Put, Create, Replace
}

func encodeRequest(q request) []byte {
	var w wbuf
	w.byte(uint8(q.op))
	w.str(q.key)
	if q.op == opReplace {
		w.str(q.etag)
	}
	w.raw(q.data)
	return w.b
}

// decodeRequest decodes a request body. An op it does not know is not an
// error here: the server answers respUnknownOp.
func decodeRequest(b []byte) (request, error) {
	r := rbuf{b: b}
	q := request{op: streamOp(r.byte()), key: r.str()}
	switch q.op {
	case opReplace:
		q.etag = r.str()
		q.data = r.rest()
	case opPut, opCreate:
		q.data = r.rest()
	default:
		if q.op > opLast || q.op == 0 {
			r.rest()
		}
	}
	return q, r.end()
}

// Response codes.
const (
	respOK uint8 = iota
	respNotFound
	respExists
	respChanged
	respCanceled
	respError
	respUnknownOp
)

// response is a decoded response body.
type response struct {
	code  uint8
	msg   string    // errors
	etag  string    // Get, Put, Create, Replace, PutFile
	data  []byte    // Get
	now   time.Time // Now
	info  ObjectInfo
	infos []ObjectInfo
	names []string
}

func encodeResponse(op streamOp, p response) []byte {
	var w wbuf
	w.byte(p.code)
	if p.code != respOK {
		w.str(p.msg)
		return w.b
	}
	switch op {
	case opGet:
		w.str(p.etag)
		w.raw(p.data)
	case opStat:
		w.info(p.info)
	case opPut, opCreate, opReplace, opPutFile:
		w.str(p.etag)
	case opList:
		w.infos(p.infos)
	case opListDirs:
		w.strs(p.names)
	case opNow:
		w.time(p.now)
	}
	return w.b
}

func decodeResponse(op streamOp, b []byte) (response, error) {
	r := rbuf{b: b}
	p := response{code: r.byte()}
	if r.err == nil && p.code != respOK {
		if p.code > respUnknownOp {
			r.fail("unknown response code")
		}
		p.msg = r.str()
		return p, r.end()
	}
	switch op {
	case opGet:
		p.etag = r.str()
		p.data = r.rest()
	case opStat:
		p.info = r.info()
	case opPut, opCreate, opReplace, opPutFile:
		p.etag = r.str()
	case opList:
		p.infos = r.infos()
	case opListDirs:
		p.names = r.strs()
	case opNow:
		p.now = r.time()
	}
	return p, r.end()
}

// errorResponse encodes err as a response: the Store's sentinel errors by
// code, so that errors.Is works across the stream, others by message.
func errorResponse(err error) response {
	p := response{code: respError, msg: err.Error()}
	switch {
	case errors.Is(err, ErrNotFound):
		p.code = respNotFound
	case errors.Is(err, ErrExists):
		p.code = respExists
	case errors.Is(err, ErrChanged):
		p.code = respChanged
	case errors.Is(err, errUnknownOp):
		p.code = respUnknownOp
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		p.code = respCanceled
	}
	return p
}

var errUnknownOp = errors.New("unknown operation")

// remoteError is an error returned by the serving side's store.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// responseError turns a response's error code back into an error.
func responseError(op streamOp, p response) error {
	var sentinel error
	switch p.code {
	case respOK:
		return nil
	case respNotFound:
		sentinel = ErrNotFound
	case respExists:
		sentinel = ErrExists
	case respChanged:
		sentinel = ErrChanged
	case respCanceled:
		sentinel = context.Canceled
	case respUnknownOp:
		return fmt.Errorf("the serving burst does not know the store operation %s: use the same burst build on both ends", op)
	}
	return &remoteError{msg: p.msg, sentinel: sentinel}
}

// hello is the server's first frame: the protocol version and the store's
// location.
func encodeHello(location string) []byte {
	var w wbuf
	w.uvarint(streamVersion)
	w.str(location)
	return w.b
}

func decodeHello(b []byte) (version uint64, location string, err error) {
	r := rbuf{b: b}
	version = r.uvarint()
	location = r.str()
	return version, location, r.end()
}
