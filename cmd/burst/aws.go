package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/slicerburst/burst/provision"
	"github.com/slicerburst/burst/staging"
)

// awsConfig loads the standard AWS configuration: the default credential
// chain, --profile, and AWS_REGION (or the profile's region), which must
// be set. The endpoint variables (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_EC2,
// AWS_ENDPOINT_URL) are honoured by the SDK itself.
func (g *globalOptions) awsConfig(ctx context.Context) (aws.Config, error) {
	return g.awsConfigIn(ctx, "")
}

// awsConfigIn is awsConfig with a region to use when the environment and
// the profile name none (burst's configuration file names one).
func (g *globalOptions) awsConfigIn(ctx context.Context, region string) (aws.Config, error) {
	cfg, err := g.loadAWS(ctx)
	if err != nil {
		return aws.Config{}, err
	}
	if cfg.Region == "" {
		cfg.Region = region
	}
	if cfg.Region == "" {
		return aws.Config{}, usageErrorf("no AWS region: set AWS_REGION, or a region in the profile (aws configure)")
	}
	return cfg, nil
}

// loadAWS loads the standard AWS configuration with --profile and opts,
// without requiring a region.
func (g *globalOptions) loadAWS(ctx context.Context, opts ...func(*config.LoadOptions) error) (aws.Config, error) {
	if g.profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(g.profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, usageErrorf("loading AWS configuration: %v", err)
	}
	return cfg, nil
}

// ec2Client builds the one EC2 client a command uses.
func (g *globalOptions) ec2Client(ctx context.Context) (provision.EC2API, aws.Config, error) {
	cfg, err := g.awsConfig(ctx)
	if err != nil {
		return nil, aws.Config{}, err
	}
	return newEC2(cfg), cfg, nil
}

// openS3Store opens the run store at an s3:// URL with the standard AWS
// configuration (see awsConfig); a custom S3 endpoint (AWS_ENDPOINT_URL_S3
// or AWS_ENDPOINT_URL) is addressed path-style. It checks access with one
// listing, so that a missing bucket or bad credentials are reported before
// any work.
func (g *globalOptions) openS3Store(ctx context.Context, loc string) (*staging.S3Store, error) {
	bucket, prefix, err := staging.ParseS3URL(loc)
	if err != nil {
		return nil, usageErrorf("store %v", err)
	}
	cfg, err := g.awsConfig(ctx)
	if err != nil {
		return nil, err
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

// newEC2 is the one place the real EC2 client is built.
func newEC2(cfg aws.Config) provision.EC2API { return ec2.NewFromConfig(cfg) }
