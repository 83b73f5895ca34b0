// Command burst runs batches of headless 3D Slicer jobs in parallel: on this
// machine's cores by default, coordinated through a run store that the
// workers share.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run())
}

func run() int {
	ctx, stop := interruptContext()
	defer stop()
	io := systemIO()
	cmd := newRootCmd(io)
	err := cmd.ExecuteContext(ctx)
	return exitCode(io, err)
}

// interruptContext returns a context cancelled by the first Ctrl-C or
// SIGTERM, so that commands stop their work and record it; a second Ctrl-C
// exits at once.
func interruptContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel(errInterrupted)
		<-sigs
		fmt.Fprintln(os.Stderr, "burst: interrupted again: exiting now")
		os.Exit(exitInterrupted)
	}()
	return ctx, func() { signal.Stop(sigs); cancel(nil) }
}

// Exit codes.
const (
	exitOK          = 0
	exitTaskFailed  = 1 // some tasks failed, or the command failed
	exitUsage       = 2 // bad usage or input: nothing was started
	exitReclaimed   = 3 // burst worker --ec2: the machine is going away; its work was handed back
	exitInterrupted = 130
)

var errInterrupted = errors.New("interrupted")

// usageError marks bad usage or input (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitError ends a command with a code, having already said why (or
// with a message to print).
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

// exitCode maps a command's error to the process exit code, printing it
// once, in one place.
func exitCode(io *ioStreams, err error) int {
	if err == nil {
		return exitOK
	}
	var ee exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(io.Err, "burst:", ee.msg)
		}
		return ee.code
	}
	if errors.Is(err, errInterrupted) || errors.Is(err, context.Canceled) {
		fmt.Fprintln(io.Err, "burst: interrupted")
		return exitInterrupted
	}
	fmt.Fprintln(io.Err, "burst:", err)
	var ue usageError
	if errors.As(err, &ue) || isFlagError(err) {
		return exitUsage
	}
	return exitTaskFailed
}
