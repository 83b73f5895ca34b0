package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/pricing"

	"github.com/slicerburst/burst/provision"
	"github.com/slicerburst/burst/staging"
)

// cloudSession is what the cloud commands share: the configuration file
// (when there is one) and the EC2 client in its region.
type cloudSession struct {
	cfg    provision.Config
	hasCfg bool
	api    provision.EC2API
	region string
	// prices are the on-demand prices of the Price List API, cached.
	prices provision.OnDemandSource
}

// openCloud loads burst's configuration and builds the EC2 client. With
// needConfig false, a missing configuration file is not an error: the
// region then comes from the AWS configuration alone.
func (g *globalOptions) openCloud(ctx context.Context, needConfig bool) (*cloudSession, error) {
	s := &cloudSession{}
	cfg, err := loadCloudConfig()
	switch {
	case err == nil:
		s.cfg, s.hasCfg = cfg, true
	case errors.Is(err, provision.ErrNoConfig) && !needConfig:
	default:
		return nil, err
	}
	awsCfg, err := g.awsConfigIn(ctx, s.cfg.Region)
	if err != nil {
		return nil, err
	}
	if s.hasCfg && s.cfg.Region != "" && awsCfg.Region != s.cfg.Region {
		return nil, usageErrorf("AWS region %s is not the region of burst's configuration (%s in %s): unset AWS_REGION or run burst init again", awsCfg.Region, s.cfg.Region, s.cfg.Path)
	}
	if awsCfg.Credentials == nil {
		return nil, usageErrorf("no AWS credentials: configure them (aws configure, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or --profile)")
	}
	if _, err := awsCfg.Credentials.Retrieve(ctx); err != nil {
		return nil, usageErrorf("no AWS credentials: configure them (aws configure, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or --profile)")
	}
	s.api, s.region = newEC2(awsCfg), awsCfg.Region
	s.prices = livePrices(awsCfg)
	return s, nil
}

// runIDArg takes a run id from a command argument: an id, or a run
// location (STORE/runs/ID) as burst prints it.
func runIDArg(arg string) (string, error) {
	_, id, err := staging.ParseRunArg(arg)
	if err != nil {
		return "", usageErrorf("%q is neither a run id nor a run location (STORE/runs/ID)", arg)
	}
	return id, nil
}

// teardownProgress reports a wait for termination on w, a line each time
// the count changes.
func teardownProgress(w io.Writer) func(provision.TeardownProgress) {
	last := -1
	return func(p provision.TeardownProgress) {
		if p.Terminated != last {
			fmt.Fprintf(w, "waiting for instances to terminate: %d of %d terminated\n", p.Terminated, p.Total)
			last = p.Terminated
		}
	}
}

// cleanupContext is the context cleanup runs in: not cancelled with ctx
// (Ctrl-C is what often starts the cleanup), but bounded.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 15*time.Minute)
}

// stillRunning says plainly what may still be running when a teardown
// failed, and how to end it.
func stillRunning(runID string, err error) error {
	var sr *provision.StillRunningError
	if errors.As(err, &sr) && len(sr.IDs) > 0 {
		return fmt.Errorf("%w\nthese instances may still be running: %s\nend them with: burst down %s (or in the EC2 console)", err, strings.Join(sr.IDs, " "), runID)
	}
	return fmt.Errorf("%w\ninstances of run %s may still be running: end them with burst down %s", err, runID, runID)
}

// sealRun records the checksums of a freshly staged run's manifest and
// script on this machine (see provision.SealRun). A seal that cannot be
// written (a read-only home) is a warning: the run goes on, unsealed.
func sealRun(ctx context.Context, run *staging.Run) {
	err := func() error {
		dir, err := provision.SealDir()
		if err != nil {
			return err
		}
		return provision.SealRun(ctx, run, dir)
	}()
	if err != nil {
		slog.Warn("the run is not sealed: repro and resume here cannot tell if its script is rewritten", "run", run.ID, "err", err)
	}
}

// checkSeal refuses a run whose manifest or script changed in the store
// since it was submitted from here, before its script runs here.
func checkSeal(ctx context.Context, run *staging.Run) error {
	dir, err := provision.SealDir()
	if err != nil {
		return err
	}
	_, err = provision.CheckSeal(ctx, run, dir)
	var te *provision.TamperedError
	if errors.As(err, &te) {
		return exitError{code: exitUsage, msg: te.Error()}
	}
	return err
}

// livePrices is the on-demand price source of plans: the Price List API
// (in its region, whatever the fleet's), cached a day under the user's
// cache folder.
func livePrices(cfg aws.Config) provision.OnDemandSource {
	pcfg := cfg.Copy()
	pcfg.Region = provision.PricingRegion
	pcfg.RetryMaxAttempts = 1 // a failure falls back to the table at once
	lp := &provision.LivePrices{API: pricing.NewFromConfig(pcfg), Logger: slog.Default()}
	if d, err := os.UserCacheDir(); err == nil {
		lp.CacheDir = filepath.Join(d, "burst", "prices")
	}
	return lp
}

// cloudConfigPath is where burst's configuration lives (see
// provision.ConfigPath).
func cloudConfigPath() (string, error) {
	p, err := provision.ConfigPath()
	if err != nil {
		return "", usageError{err}
	}
	return p, nil
}

// loadCloudConfig reads and checks the configuration at cloudConfigPath.
// Every error is a one-line usage error naming the file (exit 2); when the
// file does not exist the error wraps provision.ErrNoConfig and says how
// to write one.
func loadCloudConfig() (provision.Config, error) {
	path, err := cloudConfigPath()
	if err != nil {
		return provision.Config{}, err
	}
	return readCloudConfig(path)
}

// readCloudConfig reads and checks the configuration file at path, as
// loadCloudConfig does.
func readCloudConfig(path string) (provision.Config, error) {
	c, err := provision.LoadConfig(path)
	if err != nil {
		return provision.Config{}, usageError{err}
	}
	return c, nil
}
