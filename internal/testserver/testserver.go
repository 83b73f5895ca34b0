// Package testserver runs a server executable as a local process for tests,
// the plumbing under testmoto and testminio: the server gets a process group
// of its own (on Linux, killed by the kernel if the test process dies without
// cleaning up), free loopback ports, a wait until it answers, and a stop that
// takes everything it started with it. The tail of its output is kept for
// failure messages. ProcAttr and Alive serve other processes that tests
// start.
package testserver

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// stopGrace is how long a server has to exit after SIGTERM before its
	// process group is killed.
	stopGrace = 5 * time.Second
	// logLimit caps the server output kept for failure messages.
	logLimit = 64 << 10
	// pollInterval is the pause between two readiness checks.
	pollInterval = 100 * time.Millisecond
	// portAttempts is how many times StartOnFreePorts picks ports.
	portAttempts = 3
)

// Process is one server process, which may be started again after it
// stops. The zero value is a stopped process. Safe for concurrent use.
type Process struct {
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  *tailBuffer
}

// Start starts cmd, an unstarted command, in a process group of its own,
// with its output going to a fresh log (see Log); it sets cmd's Stdout,
// Stderr and SysProcAttr. It returns a channel that is closed when the
// process exits. It fails if the process is already running: Stop it first.
func (p *Process) Start(cmd *exec.Cmd) (exited <-chan struct{}, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return nil, fmt.Errorf("starting %s: already running", cmd.Path)
	}
	log := &tailBuffer{limit: logLimit}
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = ProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	p.cmd, p.done, p.log = cmd, done, log
	return done, nil
}

// Stop stops the process: SIGTERM to its process group, then SIGKILL if it
// has not exited within a few seconds; whatever else is left in the group
// is killed too. It waits until the process is gone, and does nothing when
// it is not running. Safe to call more than once.
func (p *Process) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	pgid := p.cmd.Process.Pid
	select {
	case <-p.done:
	default:
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
		}
	}
	// Whatever the server started goes with it.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	p.cmd = nil
}

// Pid returns the process id of the server, which is also its process
// group's, or 0 when it is not running.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Log returns the tail of the server's output since its latest Start, "" if
// it never started.
func (p *Process) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.log == nil {
		return ""
	}
	return p.log.String()
}

// StartOnFreePorts picks n free loopback addresses (host:port) and calls
// start with them, which should Start the process on them and wait until it
// is ready. The ports are free when picked, but another process may take one
// before the server binds it: so when start fails, the process is stopped
// and, if its log says an address was in use, new ports are tried, up to
// three times in all. The error holds the server's log.
func (p *Process) StartOnFreePorts(n int, start func(addrs []string) error) error {
	var err error
	for range portAttempts {
		var addrs []string
		if addrs, err = FreeAddrs(n); err != nil {
			return err
		}
		if err = start(addrs); err == nil {
			return nil
		}
		p.Stop()
		if !strings.Contains(strings.ToLower(p.Log()), "address already in use") {
			break
		}
	}
	return fmt.Errorf("%w\nserver log:\n%s", err, p.Log())
}

// FreeAddrs returns n distinct free loopback addresses, host:port.
func FreeAddrs(n int) ([]string, error) {
	// All are held open until all are picked, so none comes up twice.
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	addrs := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// ErrExited is what WaitReady returns when the server exits first.
var ErrExited = errors.New("server exited before it was ready")

// WaitReady calls ready every 100ms until it returns nil, and returns nil
// then; ErrExited once exited is closed; or, after timeout, an error that
// wraps ready's last one.
func WaitReady(exited <-chan struct{}, timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return ErrExited
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v (last check: %w)", timeout, err)
		}
		select {
		case <-exited:
			return ErrExited
		case <-time.After(pollInterval):
		}
	}
}

// Environ returns this process's environment without the entries that
// begin with any of drop (a variable's name with "=", or a prefix such as
// "AWS_"), followed by add.
func Environ(drop []string, add ...string) []string {
	var env []string
next:
	for _, kv := range os.Environ() {
		for _, prefix := range drop {
			if strings.HasPrefix(kv, prefix) {
				continue next
			}
		}
		env = append(env, kv)
	}
	return append(env, add...)
}

// tailBuffer keeps the last limit bytes written to it; safe for concurrent
// use.
type tailBuffer struct {
	mu    sync.Mutex
	limit int
	buf   bytes.Buffer
	lost  bool
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.limit; over > 0 {
		b.buf.Next(over)
		b.lost = true
	}
	return len(p), nil
}

// String returns what was kept, after a "[...]" line if anything was lost.
func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lost {
		return "[...]\n" + b.buf.String()
	}
	return b.buf.String()
}
