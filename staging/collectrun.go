package staging

import (
	"context"
	"fmt"
)

// CollectRun collects into out every task of run finished so far that is
// not there yet, and returns the run's progress and how many it fetched.
func CollectRun(ctx context.Context, run *Run, man *Manifest, out string) (Progress, int, error) {
	p, err := run.ReadProgress(ctx, man)
	if err != nil {
		return Progress{}, 0, err
	}
	coll, err := NewCollector(run, man, out)
	if err != nil {
		return Progress{}, 0, err
	}
	n, err := coll.CollectAll(ctx, p)
	if cerr := coll.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Progress{}, 0, fmt.Errorf("collecting results: %w", err)
	}
	return p, n, nil
}
