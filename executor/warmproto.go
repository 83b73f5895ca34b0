package executor

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The task server's control protocol (see taskserver.py): frames of a
// 4-byte big-endian length and a JSON object, both ways over a unix
// socket; a run request carries the task's stdin, stdout and stderr as
// SCM_RIGHTS.

// maxServerFrame bounds a frame from the server; its messages are small.
const maxServerFrame = 1 << 20

// Operations of the control protocol.
const (
	opRun     = "run"
	opPing    = "ping"
	opExit    = "exit"
	opReady   = "ready"
	opStarted = "started"
	opExited  = "exited"
	opPong    = "pong"
	opError   = "error"
)

// serverMsg is one message from a task server, checked by parseServerMsg.
type serverMsg struct {
	Op string `json:"op"`
	// PID is the server's (ready) or the task's (started, exited).
	PID int `json:"pid,omitempty"`
	// Code and Signal: how the task ended (exited), one of the two.
	Code   *int `json:"code,omitempty"`
	Signal int  `json:"signal,omitempty"`
	// MaxRSSKB is the task's peak resident memory (exited).
	MaxRSSKB int64 `json:"maxrss_kb,omitempty"`
	// Preloaded and Failed list the modules imported, and those that
	// failed with why (ready); Threads counts the server's threads then.
	Preloaded []string `json:"preloaded,omitempty"`
	Failed    []string `json:"failed,omitempty"`
	Threads   int      `json:"threads,omitempty"`
	Message   string   `json:"message,omitempty"`
}

// runRequest asks a server to run one task.
type runRequest struct {
	Op     string `json:"op"`
	Script string `json:"script"`
	Cwd    string `json:"cwd"`
	// Setenv and Unsetenv change the server's environment into the
	// task's: each KEY=VALUE to set, each KEY to remove, base64-encoded so
	// that any bytes pass. They are the difference between the task's
	// environment and the one the server was started with, so that what a
	// launcher (PythonSlicer) added to the server's stays, as it would in
	// a task's own interpreter.
	Setenv   []string `json:"setenv"`
	Unsetenv []string `json:"unsetenv"`
}

func newRunRequest(script, cwd string, base, env []string) runRequest {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	had := map[string]string{}
	for _, kv := range base {
		k, v, _ := strings.Cut(kv, "=")
		had[k] = v
	}
	r := runRequest{Op: opRun, Script: script, Cwd: cwd, Setenv: []string{}, Unsetenv: []string{}}
	has := map[string]bool{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		has[k] = true
		if old, ok := had[k]; !ok || old != v {
			r.Setenv = append(r.Setenv, b64(kv))
		}
	}
	for k := range had {
		if !has[k] {
			r.Unsetenv = append(r.Unsetenv, b64(k))
		}
	}
	return r
}

// errFrameTooLarge is returned for a frame over the limit.
var errFrameTooLarge = errors.New("frame too large")

// readFrame reads one frame's payload of at most limit bytes.
func readFrame(r io.Reader, limit int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(limit) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", errFrameTooLarge, n, limit)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// frame encodes v as one frame.
func frame(v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 4, 4+len(data))
	binary.BigEndian.PutUint32(out, uint32(len(data)))
	return append(out, data...), nil
}

// parseServerMsg decodes and checks a server's message: a known op with
// the fields that op needs, in range.
func parseServerMsg(b []byte) (serverMsg, error) {
	var m serverMsg
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("task server message: %w", err)
	}
	bad := func(format string, args ...any) (serverMsg, error) {
		return serverMsg{}, fmt.Errorf("task server message %q: "+format, append([]any{m.Op}, args...)...)
	}
	switch m.Op {
	case opReady, opStarted:
		if m.PID <= 1 {
			return bad("pid %d", m.PID)
		}
	case opExited:
		if m.PID <= 1 {
			return bad("pid %d", m.PID)
		}
		if (m.Code == nil) == (m.Signal == 0) {
			return bad("needs exactly one of code and signal")
		}
		if m.Code != nil && (*m.Code < 0 || *m.Code > 255) {
			return bad("exit code %d", *m.Code)
		}
		if m.Signal < 0 || m.Signal > 127 {
			return bad("signal %d", m.Signal)
		}
		if m.MaxRSSKB < 0 {
			return bad("maxrss_kb %d", m.MaxRSSKB)
		}
	case opPong, opError:
	default:
		return serverMsg{}, fmt.Errorf("task server message: unknown op %q", m.Op)
	}
	if m.Threads < 0 {
		return bad("threads %d", m.Threads)
	}
	return m, nil
}
