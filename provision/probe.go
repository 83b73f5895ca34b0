package provision

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/staging"
)

// ProbeFailedError is a probe whose task itself failed: its time would
// mean nothing.
type ProbeFailedError struct{ Task, Reason string }

func (e *ProbeFailedError) Error() string {
	return fmt.Sprintf("probe: task %s failed here: %s", e.Task, e.Reason)
}

// ProbeTask runs one task here, as a worker would (a throw-away run store
// holding just its input, the script and the shared files, and the
// executor's task runner), and measures it. The task's stderr goes to
// stderr. A failing task is a *ProbeFailedError.
func ProbeTask(ctx context.Context, script, python string, in staging.Input, shared []string, stderr io.Writer) (ProbeResult, error) {
	dir, err := os.MkdirTemp("", "burst-probe-")
	if err != nil {
		return ProbeResult{}, err
	}
	defer os.RemoveAll(dir)
	store, err := staging.OpenFS(filepath.Join(dir, "store"))
	if err != nil {
		return ProbeResult{}, err
	}
	defer store.Close()
	run, err := staging.Stage(ctx, store, staging.StageRequest{
		ScriptPath:  script,
		Inputs:      []staging.Input{in},
		SharedPaths: shared,
		Manifest:    staging.Manifest{Python: python, Source: "probe", Slots: 1, LeaseTTL: staging.Duration(time.Minute)},
		Logger:      slog.Default(),
	})
	if err != nil {
		return ProbeResult{}, fmt.Errorf("probe: staging task %s: %w", in.ID, err)
	}
	man, err := run.Manifest(ctx)
	if err != nil {
		return ProbeResult{}, err
	}
	r, err := executor.Repro(ctx, run, man, python, filepath.Join(dir, "work"), CacheDir(DefaultDir()), in.ID, stderr)
	if err != nil {
		return ProbeResult{}, fmt.Errorf("probe: running task %s: %w", in.ID, err)
	}
	if r.Error != "" {
		return ProbeResult{}, &ProbeFailedError{Task: in.ID, Reason: r.Error}
	}
	d := time.Duration(r.DurationS * float64(time.Second))
	return ProbeResult{Task: in.ID, Duration: d, Seconds: r.DurationS, PeakMiB: (r.MaxRSSKB + 1023) / 1024}, nil
}
