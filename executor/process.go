package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// attempt is the outcome of one interpreter process.
type attempt struct {
	stdout   []byte
	stderr   []byte // the whole of stderr, also kept in a file while running
	exitCode int    // -1 when killed by a signal or never started
	signal   string
	timedOut bool
	duration time.Duration
	maxRSSKB int64
	startErr error
	// notStarted is set when the interpreter could not be started at all
	// (startErr says why): a fault of the worker, not of the task.
	notStarted bool
}

// stderrLimit bounds how much of a task's stderr is kept in memory; the
// rest is dropped from the middle (the tail, where errors are, is kept).
const stderrLimit = 8 << 20

// tailBuffer keeps the first and last parts of a stream up to a limit.
type tailBuffer struct {
	head, tail []byte
	dropped    int64
	limit      int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	half := b.limit / 2
	if len(b.head) < half {
		k := min(half-len(b.head), len(p))
		b.head = append(b.head, p[:k]...)
		p = p[k:]
	}
	b.tail = append(b.tail, p...)
	if over := len(b.tail) - half; over > 0 {
		b.dropped += int64(over)
		b.tail = append(b.tail[:0], b.tail[over:]...)
	}
	return n, nil
}

func (b *tailBuffer) Bytes() []byte {
	if b.dropped == 0 {
		return append(b.head[:len(b.head):len(b.head)], b.tail...)
	}
	mark := fmt.Sprintf("\n[... %d bytes of stderr dropped ...]\n", b.dropped)
	out := append([]byte{}, b.head...)
	out = append(out, mark...)
	return append(out, b.tail...)
}

// runProcess runs python script with input on stdin in dir, in its own
// process group, which is killed whole on timeout or when ctx ends.
//
// echo, when not nil, also receives stderr as it is written.
func runProcess(ctx context.Context, python, script, dir string, env []string, input []byte, timeout time.Duration, echo io.Writer) attempt {
	actx := ctx
	var cancel context.CancelFunc = func() {}
	if timeout > 0 {
		actx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()

	cmd := exec.CommandContext(actx, python, script)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(input)
	var stdout bytes.Buffer
	stderr := &tailBuffer{limit: stderrLimit}
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	if echo != nil {
		cmd.Stderr = io.MultiWriter(stderr, echo)
	}
	cmd.SysProcAttr = procAttr()
	cmd.Cancel = func() error { return killGroup(cmd) }
	// A child that keeps the pipes open after the interpreter exits (a
	// background process) must not hang the slot.
	cmd.WaitDelay = 2 * time.Second

	rss := newRSSProbe()
	start := time.Now()
	err := cmd.Start()
	if err != nil {
		return attempt{exitCode: -1, startErr: err, notStarted: true}
	}
	rss.watch(cmd.Process.Pid)
	err = cmd.Wait()
	peakKB := rss.end(cmd.ProcessState)
	// Whatever the script left behind in its group goes with it.
	_ = killGroup(cmd)
	a := attempt{
		stdout:   stdout.Bytes(),
		stderr:   stderr.Bytes(),
		duration: time.Since(start),
		exitCode: -1,
	}
	if ps := cmd.ProcessState; ps != nil {
		a.exitCode = ps.ExitCode()
		a.maxRSSKB = peakKB
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			a.signal = unix.SignalName(ws.Signal())
		}
	}
	if timeout > 0 && errors.Is(actx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		a.timedOut = true
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) && !errors.Is(err, exec.ErrWaitDelay) && a.exitCode == 0 {
		a.startErr = err
	}
	return a
}

func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// lastLine returns the last non-empty line of b, trimmed to 300 bytes.
func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimRight(string(b), "\r\n\t "), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			if len(l) > 300 {
				l = l[:300] + "..."
			}
			return l
		}
	}
	return ""
}

// tail returns at most the last n bytes of b, starting at a line boundary
// when one is near.
func tail(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	b = b[len(b)-n:]
	if i := bytes.IndexByte(b, '\n'); i >= 0 && i < n/4 {
		b = b[i+1:]
	}
	return string(b)
}
