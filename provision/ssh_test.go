package provision

import (
	"runtime"
	"strings"
	"testing"
)

func TestParseSSHHost(t *testing.T) {
	tests := []struct {
		in   string
		want SSHHost
		name string
		err  string
	}{
		{in: "lab1", want: SSHHost{Dest: "lab1"}, name: "lab1"},
		{in: "alice@lab2", want: SSHHost{Dest: "alice@lab2"}, name: "alice@lab2"},
		{in: "alice@lab2:2222/8", want: SSHHost{Dest: "alice@lab2", Port: 2222, Slots: 8}, name: "alice@lab2:2222"},
		{in: "10.0.0.5/4", want: SSHHost{Dest: "10.0.0.5", Slots: 4}, name: "10.0.0.5"},
		{in: "[::1]:2200/2", want: SSHHost{Dest: "::1", Port: 2200, Slots: 2}, name: "[::1]:2200"},
		{in: "bob@[fe80::1]", want: SSHHost{Dest: "bob@fe80::1"}, name: "bob@fe80::1"},
		{in: "lab1/0", err: "at least 1"},
		{in: "lab1/x", err: "whole number"},
		{in: "lab1:0", err: "port"},
		{in: "lab1:99999", err: "port"},
		{in: "@lab1", err: "user"},
		{in: "", err: "expected"},
		{in: "-oProxyCommand=x", err: "expected"},
		{in: "a b", err: "expected"},
		{in: "[::1", err: "unclosed"},
	}
	for _, tc := range tests {
		got, err := ParseSSHHost(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseSSHHost(%q) = %+v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want || got.Name() != tc.name {
			t.Errorf("ParseSSHHost(%q) = %+v (%q), %v; want %+v (%q)", tc.in, got, got.Name(), err, tc.want, tc.name)
		}
	}
}

// FuzzParseSSHHost: no input panics, and a parsed host never gives ssh a
// destination it would read as an option.
func FuzzParseSSHHost(f *testing.F) {
	for _, s := range []string{"lab1", "a@b:22/4", "[::1]:2/1", "-x", "a@@b", "x:y:z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseSSHHost(s)
		if err != nil {
			return
		}
		if h.Dest == "" || strings.HasPrefix(h.Dest, "-") || h.Slots < 0 || h.Port < 0 || h.Port > 65535 {
			t.Fatalf("ParseSSHHost(%q) = %+v", s, h)
		}
	})
}

// Which burst a host runs: the copy when the platform matches, else one on
// its PATH, else one line saying what is missing; and the interpreter.
func TestProbeChoice(t *testing.T) {
	uname := map[string]string{"linux": "Linux", "darwin": "Darwin"}[runtime.GOOS] + " " +
		map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
	other := "SunOS sparc64"
	tests := []struct {
		name, out, python string
		bin, copyTo, err  string
	}{
		{name: "copy", out: "burst-probe\n" + uname + "\ncachedir /h/.cache/burst/bin/ab\npython /usr/bin/python3\nend\n",
			bin: "/h/.cache/burst/bin/ab/burst", copyTo: "/h/.cache/burst/bin/ab"},
		{name: "cached", out: "Welcome!\nburst-probe\n" + uname + "\ncached /h/c/burst\nonpath /usr/bin/burst\npython /opt/Slicer/bin/PythonSlicer\nend\n",
			bin: "/h/c/burst"},
		{name: "other platform, burst on PATH", out: "burst-probe\n" + other + "\ncachedir /h/c\nonpath /usr/local/bin/burst\npython /usr/bin/python3\nend\n",
			bin: "/usr/local/bin/burst"},
		{name: "other platform, no burst", out: "burst-probe\n" + other + "\ncachedir /h/c\npython /usr/bin/python3\nend\n",
			err: "it is SunOS sparc64, this burst is for"},
		{name: "no python", out: "burst-probe\n" + uname + "\ncachedir /h/c\nend\n", err: "no PythonSlicer or python3"},
		{name: "no given python", out: "burst-probe\n" + uname + "\ncachedir /h/c\nend\n", python: "/opt/py", err: "no interpreter /opt/py there"},
		{name: "garbage", out: "command not found\n", err: "unexpected answer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseProbe(tc.out)
			var bin, copyTo string
			if err == nil {
				bin, copyTo, err = p.choose(tc.python)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %q, %q, %v; want an error with %q", bin, copyTo, err, tc.err)
				}
				return
			}
			if err != nil || bin != tc.bin || copyTo != tc.copyTo {
				t.Fatalf("got %q, %q, %v; want %q, %q", bin, copyTo, err, tc.bin, tc.copyTo)
			}
		})
	}
}
