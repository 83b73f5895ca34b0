package testserver

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitLog waits until the process's log matches re, and returns the match.
func waitLog(t *testing.T, p *Process, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(p.Log()); m != nil {
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("log never matched %s; log:\n%s", re, p.Log())
	return nil
}

// TestStopTakesTheGroup: Stop ends the server and what it started, and the
// process can be started again, with a fresh log.
func TestStopTakesTheGroup(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc")
	}
	var p Process
	t.Cleanup(p.Stop)
	exited, err := p.Start(exec.Command("/bin/sh", "-c", "sleep 300 & echo child $!; wait"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Start(exec.Command("/bin/sh", "-c", "true")); err == nil {
		t.Errorf("a second Start of a running process succeeded")
	}
	child, _ := strconv.Atoi(waitLog(t, &p, regexp.MustCompile(`child (\d+)`))[1])
	pid := p.Pid()
	if pid == 0 || !Alive(pid) || !Alive(child) {
		t.Fatalf("server %d or its child %d not running", pid, child)
	}
	// The child holds the server's output pipe: if it outlived the group's
	// signal, Stop would wait for it.
	stopped := make(chan struct{})
	go func() {
		p.Stop()
		p.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(child, syscall.SIGKILL) // lets Stop return
		<-stopped
		t.Fatalf("Stop still waiting after 3s: the server's child %d lived on", child)
	}
	select {
	case <-exited:
	default:
		t.Errorf("exited not closed after Stop")
	}
	if p.Pid() != 0 {
		t.Errorf("Pid %d after Stop", p.Pid())
	}
	// The child was killed with the group; it may linger a moment as a
	// zombie until it is reaped.
	deadline := time.Now().Add(5 * time.Second)
	for Alive(child) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if Alive(pid) || Alive(child) {
		t.Errorf("after Stop: server alive %v, its child alive %v", Alive(pid), Alive(child))
	}
	if !strings.Contains(p.Log(), "child") {
		t.Errorf("log lost after Stop: %q", p.Log())
	}

	if _, err := p.Start(exec.Command("/bin/sh", "-c", "echo again; sleep 300")); err != nil {
		t.Fatalf("restart: %v", err)
	}
	waitLog(t, &p, regexp.MustCompile(`again`))
	if strings.Contains(p.Log(), "child") {
		t.Errorf("log of the restarted process holds the old output: %q", p.Log())
	}
}

func TestWaitReady(t *testing.T) {
	never := make(chan struct{})
	calls := 0
	err := WaitReady(never, 10*time.Second, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("ready at the third check: %v after %d checks", err, calls)
	}

	gone := make(chan struct{})
	close(gone)
	if err := WaitReady(gone, 10*time.Second, func() error { return errors.New("down") }); !errors.Is(err, ErrExited) {
		t.Errorf("server exited: %v, want ErrExited", err)
	}

	why := errors.New("connection refused")
	start := time.Now()
	err = WaitReady(never, 300*time.Millisecond, func() error { return why })
	if !errors.Is(err, why) || !strings.Contains(err.Error(), "not ready after 300ms") {
		t.Errorf("timed out: %v", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("timed out after %v, want about 300ms", d)
	}
}

// TestStartOnFreePorts: new ports after a lost race for one, none after
// another failure; the error holds the log.
func TestStartOnFreePorts(t *testing.T) {
	var p Process
	t.Cleanup(p.Stop)
	attempts := 0
	err := p.StartOnFreePorts(2, func(addrs []string) error {
		attempts++
		if len(addrs) != 2 || addrs[0] == addrs[1] {
			t.Errorf("addresses %q", addrs)
		}
		script := "echo 'listen tcp " + addrs[0] + ": bind: Address already in use'; exit 1"
		if attempts == 3 {
			script = "echo serving " + addrs[0] + "; sleep 300"
		}
		exited, err := p.Start(exec.Command("/bin/sh", "-c", script))
		if err != nil {
			return err
		}
		return WaitReady(exited, 10*time.Second, func() error {
			if strings.Contains(p.Log(), "serving") {
				return nil
			}
			return errors.New("no answer")
		})
	})
	if err != nil || attempts != 3 {
		t.Errorf("after two lost races: %v, %d attempts, want success at the third", err, attempts)
	}
	p.Stop()

	attempts = 0
	err = p.StartOnFreePorts(1, func(addrs []string) error {
		attempts++
		exited, err := p.Start(exec.Command("/bin/sh", "-c", "echo bad flag; exit 2"))
		if err != nil {
			return err
		}
		return WaitReady(exited, 10*time.Second, func() error { return errors.New("no answer") })
	})
	if !errors.Is(err, ErrExited) || attempts != 1 || !strings.Contains(err.Error(), "server log:\nbad flag") {
		t.Errorf("server that fails: %v after %d attempts, want ErrExited with the log, one attempt", err, attempts)
	}
}

func TestFreeAddrs(t *testing.T) {
	addrs, err := FreeAddrs(3)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil || host != "127.0.0.1" || seen[a] {
			t.Errorf("address %q in %q", a, addrs)
		}
		seen[a] = true
		// Free: it can be bound.
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Errorf("%s not free: %v", a, err)
			continue
		}
		l.Close()
	}
	if len(addrs) != 3 {
		t.Errorf("%d addresses, want 3", len(addrs))
	}
}

func TestEnviron(t *testing.T) {
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("TESTSERVER_KEEP", "1")
	t.Setenv("TESTSERVER_DROP", "1")
	env := Environ([]string{"AWS_", "TESTSERVER_DROP="}, "AWS_REGION=us-east-1", "EXTRA=x")
	has := func(kv string) bool {
		for _, e := range env {
			if e == kv {
				return true
			}
		}
		return false
	}
	if has("AWS_REGION=eu-west-1") || has("TESTSERVER_DROP=1") {
		t.Errorf("dropped variables kept: %q", env)
	}
	if !has("TESTSERVER_KEEP=1") || !has("AWS_REGION=us-east-1") || env[len(env)-1] != "EXTRA=x" {
		t.Errorf("variables missing or out of order: %q", env)
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{limit: 8}
	fmt.Fprint(b, "abc")
	if got := b.String(); got != "abc" {
		t.Errorf("under the limit: %q", got)
	}
	fmt.Fprint(b, "defghijk")
	if got := b.String(); got != "[...]\ndefghijk" {
		t.Errorf("over the limit: %q", got)
	}
}
