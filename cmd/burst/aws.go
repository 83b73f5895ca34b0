package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/slicerburst/burst/staging"
)

// openS3Store opens the run store at an s3:// URL with the standard AWS
// configuration: the default credential chain, --profile, AWS_REGION, and
// AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) for S3-compatible servers,
// which are addressed path-style. It checks access with one listing, so
// that a missing bucket or bad credentials are reported before any work.
func (g *globalOptions) openS3Store(ctx context.Context, loc string) (*staging.S3Store, error) {
	bucket, prefix, err := staging.ParseS3URL(loc)
	if err != nil {
		return nil, usageErrorf("store %v", err)
	}
	var opts []func(*config.LoadOptions) error
	if g.profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(g.profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, usageErrorf("loading AWS configuration: %v", err)
	}
	if cfg.Region == "" {
		return nil, usageErrorf("no AWS region: set AWS_REGION, or a region in the profile (aws configure)")
	}
	pathStyle := os.Getenv("AWS_ENDPOINT_URL_S3") != "" || os.Getenv("AWS_ENDPOINT_URL") != ""
	client := s3.NewFromConfig(cfg, staging.S3ClientOptions(pathStyle))
	store := staging.NewS3Store(client, bucket, prefix, slog.Default())
	if err := store.Check(ctx); err != nil {
		if errors.Is(err, staging.ErrAccess) {
			return nil, usageError{err}
		}
		return nil, fmt.Errorf("opening %s: %w", loc, err)
	}
	return store, nil
}
