package staging

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// StageNew stages a new run of req.ScriptPath under a fresh id (NewRunID)
// with its results folder out: ./burst-results/ID when empty, made
// absolute, and recorded in the manifest. It returns the run, its manifest
// as stored and the results folder.
func StageNew(ctx context.Context, store Store, req StageRequest, out string) (*Run, *Manifest, string, error) {
	id := NewRunID(req.ScriptPath, time.Now())
	if out == "" {
		out = filepath.Join("burst-results", id)
	}
	if abs, err := filepath.Abs(out); err == nil {
		out = abs
	}
	req.Manifest.ID, req.Manifest.OutDir = id, out
	run, err := Stage(ctx, store, req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, "", ctx.Err()
		}
		return nil, nil, "", fmt.Errorf("staging the run: %w", err)
	}
	man, err := run.Manifest(ctx)
	if err != nil {
		return nil, nil, "", err
	}
	return run, man, out, nil
}
