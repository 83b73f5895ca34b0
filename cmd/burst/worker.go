package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/provision"
)

type workerOptions struct {
	g         *globalOptions
	run       string
	slots     int
	python    string
	workDir   string
	heartbeat time.Duration
}

func newWorkerCmd(g *globalOptions) *cobra.Command {
	o := &workerOptions{g: g}
	cmd := &cobra.Command{
		Use:   "worker RUN",
		Short: "Join a run as a worker until nothing is left to do",
		Long: `Work on a run's tasks alongside any other workers: claim chunks of tasks,
run them (one interpreter per slot), write their results, and exit when
nothing is left to claim (every task is finished, or the rest is held by
live workers) or the run is cancelled. A worker that dies is replaced
without loss: its leases lapse and other workers take its chunks over.

RUN is a run id in --store, or a run location as burst prints it:
STORE/runs/ID, for example s3://my-bucket/burst/runs/offset-20261126-0930-1a2b.
This is what each cloud VM runs; on any machine with access to the store it
adds workers to a run. Results are not collected here: use burst results.`,
		Example: `  burst submit job.py --sweep sweep.yaml --store s3://my-bucket/burst --detach
  burst worker s3://my-bucket/burst/runs/job-20261126-093012-1a2b --workers 8
`,
		Args: exactArgs("RUN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.run = args[0]
			return runWorker(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.IntVarP(&o.slots, "workers", "w", provision.Cores(), "tasks to run at once")
	f.StringVar(&o.python, "python", "", "interpreter `PATH` (default PythonSlicer when on PATH, else python3)")
	f.StringVar(&o.workDir, "work-dir", "", "`DIR` for scratch space and the shared-file cache (default: burst in the user cache directory)")
	f.DurationVar(&o.heartbeat, "heartbeat", 5*time.Second, "how often to report liveness and check for cancel")
	return cmd
}

func runWorker(ctx context.Context, o *workerOptions) error {
	if o.slots < 1 {
		return usageErrorf("--workers must be at least 1, got %d", o.slots)
	}
	run, _, err := o.g.openRun(ctx, o.run)
	if err != nil {
		return err
	}
	python, err := executor.ResolvePython(o.python)
	if err != nil {
		return usageError{err}
	}
	id := executor.NewWorkerID()
	log := slog.Default()
	if !o.g.verbose {
		log = slog.New(slog.NewTextHandler(o.g.io.Err, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	log.Info("worker starting", "worker", id, "run", run.Location(), "slots", o.slots, "python", python)
	local := provision.Local{Slots: o.slots, Python: python, ID: id, Dir: o.workDir, Heartbeat: o.heartbeat, Logger: log}
	sum, err := local.Run(ctx, run)
	fmt.Fprintf(o.g.io.Out, "worker %s: %d ok, %d failed\n", id, sum.OK, sum.Failed)
	switch {
	case errors.Is(err, executor.ErrCancelled):
		fmt.Fprintf(o.g.io.Out, "run %s was cancelled\n", run.ID)
		return nil
	case err != nil:
		return err
	}
	return nil
}
