package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/staging"
)

// StdioWorker is the remote end of an ssh session (burst worker --stdio):
// one worker whose run store is served by the burst that started it, over
// this process's stdin and stdout.
type StdioWorker struct {
	// Slots, Python, Heartbeat and Logger are as for Local (Slots 0: the
	// machine's cores).
	Slots     int
	Python    string
	Heartbeat time.Duration
	Logger    *slog.Logger
	// Host names this machine in heartbeats and task statuses, as the
	// starting burst knows it.
	Host string
	// Dir is as for Local (DefaultDir() when empty).
	Dir string
	// Stream tunes the store stream.
	Stream staging.StreamOptions
}

// ErrStopped is what StdioWorker.Run returns when the serving burst asked
// the worker to stop (its run was interrupted there).
var ErrStopped = errors.New("stopped by the burst that started this worker")

// TakeStdio takes this process's stdin and stdout for the store stream,
// and points file descriptors 0 and 1 at /dev/null and stderr, so that
// nothing else (a task's stray output, say) can write into the stream.
func TakeStdio() (in, out *os.File, err error) {
	inFD, err := syscall.Dup(0)
	if err != nil {
		return nil, nil, fmt.Errorf("taking stdin: %w", err)
	}
	outFD, err := syscall.Dup(1)
	if err != nil {
		return nil, nil, fmt.Errorf("taking stdout: %w", err)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, nil, err
	}
	defer null.Close()
	if err := dupTo(int(null.Fd()), 0); err != nil {
		return nil, nil, fmt.Errorf("redirecting stdin: %w", err)
	}
	if err := dupTo(2, 1); err != nil {
		return nil, nil, fmt.Errorf("redirecting stdout: %w", err)
	}
	syscall.CloseOnExec(inFD)
	syscall.CloseOnExec(outFD)
	// Non-blocking descriptors make pollable files, whose Close ends a
	// read or write stuck on a stalled session.
	for _, fd := range []int{inFD, outFD} {
		if err := syscall.SetNonblock(fd, true); err != nil {
			return nil, nil, fmt.Errorf("taking stdio: %w", err)
		}
	}
	return os.NewFile(uintptr(inFD), "store-stream-in"), os.NewFile(uintptr(outFD), "store-stream-out"), nil
}

// Run opens the store stream on in and out, and works on run runID until
// nothing is left to do, the run is cancelled (executor.ErrCancelled), the
// serving side asks it to stop (ErrStopped, after releasing its chunks),
// or the stream ends (an error wrapping staging.ErrStreamClosed): then its
// tasks are killed, process groups and all, before it returns.
func (w StdioWorker) Run(ctx context.Context, runID string, in, out *os.File) (executor.Summary, error) {
	log := w.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	opts := w.Stream
	opts.OnNotify = func(p []byte) {
		if string(p) == stopNotice {
			cancel(ErrStopped)
		}
	}
	client, err := staging.NewStreamClient(wctx, in, out, opts, func() { in.Close(); out.Close() })
	if err != nil {
		return executor.Summary{}, err
	}
	defer client.Close()
	// The end of the stream ends the work: the store is gone, and with
	// it the burst that started this worker.
	go func() {
		select {
		case <-client.Done():
			cancel(client.Err())
		case <-wctx.Done():
		}
	}()
	run, err := staging.OpenRun(client, runID)
	if err != nil {
		return executor.Summary{}, err
	}
	slots := w.Slots
	if slots == 0 {
		slots = Cores()
	}
	dir := w.Dir
	if dir == "" {
		dir = DefaultDir()
	}
	id := executor.NewWorkerID()
	work := filepath.Join(dir, "work", id)
	defer os.RemoveAll(work)
	notify := func(e remoteEvent) {
		data, err := json.Marshal(e)
		if err == nil {
			_ = client.Notify(wctx, data)
		}
	}
	notify(remoteEvent{Kind: "ready", Slots: slots})
	sum, err := executor.Run(wctx, executor.Config{
		Run: run, Slots: slots, Python: w.Python, ID: id, Host: w.Host,
		WorkDir: work, CacheDir: CacheDir(dir), Heartbeat: w.Heartbeat, Logger: log,
		OnEvent: func(e executor.Event) {
			switch e.Kind {
			case executor.TaskStarted:
				notify(remoteEvent{Kind: "start", Task: e.Task})
			case executor.TaskFinished:
				notify(remoteEvent{Kind: "finish", Task: e.Task, Status: e.Status})
			}
		},
	})
	if cause := context.Cause(wctx); err != nil && ctx.Err() == nil && cause != nil && !errors.Is(err, executor.ErrCancelled) {
		err = cause
	}
	return sum, err
}
