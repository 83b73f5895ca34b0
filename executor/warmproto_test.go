package executor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slicerburst/burst/internal/testpy"
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

// TestTopLevelImports: the server finds the modules a script imports at
// its top level (in top-level if, try and with blocks too, not in
// functions or classes, not relative ones) by parsing it, without running
// it.
func TestTopLevelImports(t *testing.T) {
	python := testpy.Python(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "taskserver.py"), taskServerPy, 0o644); err != nil {
		t.Fatal(err)
	}
	script := `
import os, numpy as np
from vtk.util.numpy_support import vtk_to_numpy
from . import sibling
from json import *
open(os.path.join(os.path.dirname(__file__), "ran"), "w").close()
try:
    import SimpleITK
except ImportError:
    import itk
if __name__ == "__main__":
    import wave
with open(__file__) as f:
    import csv
def f():
    import inside_function
class C:
    import inside_class
`
	path := filepath.Join(dir, "job.py")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-c", "import sys, taskserver; print(','.join(taskserver.top_level_imports(sys.argv[1])))", path)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := "os,numpy,vtk.util.numpy_support,vtk.util.numpy_support.vtk_to_numpy,json,SimpleITK,itk,wave,csv"
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("top-level imports:\n got %s\nwant %s", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Error("finding the imports ran the script")
	}
}
