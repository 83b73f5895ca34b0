package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/slicerburst/burst/staging"
)

// globalOptions are the flags every command shares.
type globalOptions struct {
	io      *ioStreams
	store   string
	profile string
	verbose bool
}

func newRootCmd(io *ioStreams) *cobra.Command {
	g := &globalOptions{io: io}
	cmd := &cobra.Command{
		Use:   "burst",
		Short: "Run batches of headless 3D Slicer jobs in parallel",
		Long: `burst runs a Python script over many inputs in parallel, one interpreter
process per core: a parameter sweep described in YAML, or a directory of
pickled inputs. Each task reads one pickled dict on stdin and writes one
pickled dict to stdout, as Slicer's "Processes" do; the script runs under
PythonSlicer when it is on PATH, else python3.

Runs live in a run store that workers coordinate through: a directory (by
default under the XDG data directory) or an S3 bucket (--store
s3://BUCKET/PREFIX). A run survives the process that started it, and on S3
workers on any machine can join it: see worker, status, watch, resume,
results and logs.

With --cloud aws, submit sends a run to a fleet of EC2 instances that burst
sizes for the queue within a budget (burst plan quotes it), starts from a
Slicer image (burst image), and terminates when the run ends; burst down
and burst gc end what should not be running. burst init writes the
configuration from the account setup in terraform/.`,
		Example: `  burst submit examples/mesh-offsets/offset.py --sweep examples/mesh-offsets/sweep.yaml
  burst submit job.py --sweep sweep.yaml --store s3://my-bucket/burst --detach
  burst worker s3://my-bucket/burst/runs/RUN
  burst plan job.py --sweep sweep.yaml --task-time 40s --budget 5
  burst submit job.py --sweep sweep.yaml --cloud aws --task-time 40s --budget 5
  burst runs
  burst status RUN
  burst repro RUN 0007`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			level := slog.LevelWarn
			if g.verbose {
				level = slog.LevelDebug
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(io.Err, &slog.HandlerOptions{Level: level})))
		},
	}
	cmd.SetOut(io.Out)
	cmd.SetErr(io.Err)
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErrorf("%v (see %s --help)", err, c.CommandPath())
	})
	cmd.PersistentFlags().StringVar(&g.store, "store", "", "run store: a `DIR` or s3://BUCKET/PREFIX (default $BURST_STORE, else $XDG_DATA_HOME/burst)")
	cmd.PersistentFlags().StringVar(&g.profile, "profile", "", "AWS `PROFILE` for s3:// stores (default $AWS_PROFILE, else the default chain)")
	cmd.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log diagnostics to stderr")

	cmd.AddCommand(
		newSubmitCmd(g),
		newPlanCmd(g),
		newResumeCmd(g),
		newWorkerCmd(g),
		newRunsCmd(g),
		newStatusCmd(g),
		newWatchCmd(g),
		newResultsCmd(g),
		newLogsCmd(g),
		newCancelCmd(g),
		newReproCmd(g),
		newDownCmd(g),
		newGCCmd(g),
		newInitCmd(g),
		newImageCmd(g),
	)
	return cmd
}

// isFlagError recognizes cobra's own usage errors, which it does not type.
func isFlagError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "invalid argument", "accepts ", "requires at least", "requires at most"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// exactArgs requires n arguments, naming them in the error.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usageErrorf("%s takes %s (got %d arguments; see --help)", cmd.CommandPath(), strings.Join(names, " "), len(args))
		}
		return nil
	}
}

// storeDir returns the run store location: --store, else $BURST_STORE,
// else the XDG data directory.
func (g *globalOptions) storeDir() (string, error) {
	if g.store != "" {
		return g.store, nil
	}
	if s := os.Getenv("BURST_STORE"); s != "" {
		return s, nil
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "burst"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no run store: set --store or BURST_STORE (%w)", err)
	}
	return filepath.Join(home, ".local", "share", "burst"), nil
}

// openStore opens a store location: a directory, or an s3:// URL.
func (g *globalOptions) openStore(ctx context.Context, loc string) (staging.Store, error) {
	if strings.HasPrefix(loc, "s3://") {
		s, err := g.openS3Store(ctx, loc)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	if strings.Contains(loc, "://") {
		return nil, usageErrorf("store %s: not a directory or s3:// URL", loc)
	}
	s, err := staging.OpenFS(loc)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// openRun finds a run from a command argument: a run id in the store, or
// a run's location (STORE/runs/ID), as burst prints it.
func (g *globalOptions) openRun(ctx context.Context, arg string) (*staging.Run, *staging.Manifest, error) {
	loc, id, err := staging.ParseRunArg(arg)
	if err != nil {
		return nil, nil, usageError{err}
	}
	if loc == "" {
		if loc, err = g.storeDir(); err != nil {
			return nil, nil, err
		}
	}
	s, err := g.openStore(ctx, loc)
	if err != nil {
		return nil, nil, err
	}
	run, err := staging.OpenRun(s, id)
	if err != nil {
		return nil, nil, usageError{err}
	}
	man, err := run.Manifest(ctx)
	if errors.Is(err, staging.ErrNoRun) {
		return nil, nil, usageErrorf("no run %s in %s (burst runs lists them)", id, s.Location())
	}
	if err != nil {
		return nil, nil, err
	}
	return run, man, nil
}
