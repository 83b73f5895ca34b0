package executor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func frameOf(s string) []byte {
	b := make([]byte, 4, 4+len(s))
	binary.BigEndian.PutUint32(b, uint32(len(s)))
	return append(b, s...)
}

// TestServerMessages: the worker accepts the server's well-formed
// messages and refuses, with an error and no panic, anything else.
func TestServerMessages(t *testing.T) {
	good := []string{
		`{"op":"ready","pid":42,"preloaded":["numpy"],"failed":[],"threads":2}`,
		`{"op":"started","pid":43}`,
		`{"op":"exited","pid":43,"code":0,"maxrss_kb":1024}`,
		`{"op":"exited","pid":43,"signal":9,"maxrss_kb":1024}`,
		`{"op":"pong"}`,
		`{"op":"error","message":"a task is running"}`,
	}
	for _, s := range good {
		if _, err := parseServerMsg([]byte(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	bad := []string{
		``, `[]`, `{}`, `{"op":"run"}`, `{"op":"started"}`, `{"op":"started","pid":1}`,
		`{"op":"exited","pid":43}`, `{"op":"exited","pid":43,"code":0,"signal":9}`,
		`{"op":"exited","pid":43,"code":256}`, `{"op":"exited","pid":43,"code":-1}`,
		`{"op":"exited","pid":43,"signal":200}`, `{"op":"exited","pid":43,"code":0,"maxrss_kb":-5}`,
		`{"op":"ready","pid":"x"}`, `{"op":"pong","threads":-1}`,
	}
	for _, s := range bad {
		if _, err := parseServerMsg([]byte(s)); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	if _, err := readFrame(bytes.NewReader(frameOf(`{"op":"pong"}`)[:6]), maxServerFrame); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated frame: %v", err)
	}
	huge := []byte{0xff, 0xff, 0xff, 0xff}
	if _, err := readFrame(bytes.NewReader(huge), maxServerFrame); !errors.Is(err, errFrameTooLarge) {
		t.Errorf("4 GiB frame header: %v", err)
	}
}

// FuzzServerStream: any byte stream from a server parses into messages
// that hold their invariants, or stops with an error; never a panic, and
// never a read past the frame limit.
func FuzzServerStream(f *testing.F) {
	f.Add(frameOf(`{"op":"ready","pid":42,"preloaded":["numpy","vtk"]}`))
	f.Add(append(frameOf(`{"op":"started","pid":43}`), frameOf(`{"op":"exited","pid":43,"code":3,"maxrss_kb":99}`)...))
	f.Add(frameOf(`{"op":"exited","pid":43,"signal":11}`))
	f.Add(frameOf(`{"op":"error","message":"fork: out of memory"}`))
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, '{'})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			b, err := readFrame(r, 4096)
			if err != nil {
				return
			}
			if len(b) > 4096 {
				t.Fatalf("frame of %d bytes past the limit", len(b))
			}
			m, err := parseServerMsg(b)
			if err != nil {
				continue
			}
			switch m.Op {
			case opReady, opStarted:
				if m.PID <= 1 {
					t.Fatalf("%s with pid %d", m.Op, m.PID)
				}
			case opExited:
				if (m.Code == nil) == (m.Signal == 0) || m.PID <= 1 || m.MaxRSSKB < 0 {
					t.Fatalf("bad exited accepted: %+v", m)
				}
				if m.Code != nil && (*m.Code < 0 || *m.Code > 255) {
					t.Fatalf("exit code %d accepted", *m.Code)
				}
			case opPong, opError:
			default:
				t.Fatalf("unknown op %q accepted", m.Op)
			}
			// What was accepted encodes and parses back the same.
			fb, err := frame(m)
			if err != nil {
				t.Fatal(err)
			}
			back, err := readFrame(bytes.NewReader(fb), len(fb))
			if err != nil {
				t.Fatal(err)
			}
			if m2, err := parseServerMsg(back); err != nil || m2.Op != m.Op || m2.PID != m.PID {
				t.Fatalf("round trip of %+v: %+v, %v", m, m2, err)
			}
		}
	})
}

// TestPreloadValues: --preload takes "none" or module names.
func TestPreloadValues(t *testing.T) {
	for _, ok := range []string{"", "none", "numpy", "numpy,vtk", "vtk.util.numpy_support,SimpleITK", "_x"} {
		if err := ValidatePreload(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{",", "numpy,", "a..b", "1abc", "numpy vtk", "os;rm", "a-b", "none,numpy"} {
		if err := ValidatePreload(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
