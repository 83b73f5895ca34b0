package provision

import (
	"context"
	"log/slog"
	"time"

	"github.com/slicerburst/burst/executor"
)

// LookupInstance reads the instance's identity, trying again for up to
// wait while the metadata service does not answer (early in boot, or
// throttled).
func LookupInstance(ctx context.Context, api executor.MetadataAPI, wait time.Duration, log *slog.Logger) (executor.Instance, error) {
	deadline := time.Now().Add(wait)
	for {
		in, err := executor.LookupInstance(ctx, api)
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return in, err
		}
		log.Warn("reading the instance identity; trying again", "err", err)
		select {
		case <-ctx.Done():
			return in, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
