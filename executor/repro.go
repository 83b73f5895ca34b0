package executor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/slicerburst/burst/staging"
)

// ReproResult is what one foreground run of a task gave.
type ReproResult struct {
	// Output is stdout when the attempt succeeded.
	Output []byte
	// Error says why it failed, "" when it succeeded.
	Error     string
	ExitCode  int
	DurationS float64
	MaxRSSKB  int64
}

// Repro runs one task of a run here, in the foreground, with its stored
// input, the run's script and shared files, streaming its stderr to
// stderr. Nothing is written to the store.
func Repro(ctx context.Context, run *staging.Run, man *staging.Manifest, python, workDir, cacheDir, task string, stderr io.Writer) (ReproResult, error) {
	input, _, err := run.Store.Get(ctx, run.TaskKey(task))
	if err != nil {
		return ReproResult{}, fmt.Errorf("reading input of task %s: %w", task, err)
	}
	p, err := prepare(ctx, run, man, workDir, cacheDir, slog.New(slog.DiscardHandler))
	if err != nil {
		return ReproResult{}, err
	}
	scratch := filepath.Join(p.tmp, task)
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return ReproResult{}, err
	}
	env := append(os.Environ(),
		"BURST_RUN_ID="+run.ID,
		"BURST_TASK_ID="+task,
		"BURST_ATTEMPT=1",
		"BURST_SHARED_DIR="+p.shared,
	)
	a := runProcess(ctx, python, p.script, scratch, env, input, man.Timeout.D(), stderr)
	if ctx.Err() != nil {
		return ReproResult{}, ctx.Err()
	}
	res := ReproResult{ExitCode: a.exitCode, DurationS: round3(a.duration), MaxRSSKB: a.maxRSSKB}
	res.Error = failureReason(a, man.Timeout.D())
	if res.Error == "" {
		res.Output = a.stdout
	}
	return res, nil
}
