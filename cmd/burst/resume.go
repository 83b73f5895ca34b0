package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/provision"
	"github.com/slicerburst/burst/staging"
)

type resumeOptions struct {
	g       *globalOptions
	run     string
	workers int
	python  string
	out     string
	json    bool
	ssh     sshOptions
}

func newResumeCmd(g *globalOptions) *cobra.Command {
	o := &resumeOptions{g: g}
	cmd := &cobra.Command{
		Use:   "resume RUN",
		Short: "Carry on with an interrupted or cancelled run",
		Long: `Run the unfinished tasks of a run on this machine: tasks that finished
(ok or failed) are not run again. A cancelled run is un-cancelled. Results
are collected into the run's results directory, or --out.`,
		Args: exactArgs("RUN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.run = args[0]
			return runResume(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.IntVarP(&o.workers, "workers", "w", provision.Cores(), "tasks to run at once here (0: none here, with --ssh)")
	o.ssh.addFlags(f)
	f.StringVar(&o.python, "python", "", "interpreter `PATH` (default: the one the run was submitted with)")
	f.StringVarP(&o.out, "out", "o", "", "collect results into `DIR` (default: where submit collected them)")
	f.BoolVar(&o.json, "json", false, "print the final summary as JSON on stdout")
	return cmd
}

func runResume(ctx context.Context, o *resumeOptions) error {
	if err := o.ssh.parse(); err != nil {
		return err
	}
	if o.workers < 0 || o.workers == 0 && len(o.ssh.hosts) == 0 {
		return usageErrorf("--workers must be at least 1 (or 0 with --ssh), got %d", o.workers)
	}
	run, man, err := o.g.openRun(ctx, o.run)
	if err != nil {
		return err
	}
	if err := checkSeal(ctx, run); err != nil {
		return err
	}
	python := o.python
	if python == "" {
		python = man.Python
	}
	if python, err = executor.ResolvePython(python); err != nil {
		return usageError{err}
	}
	out := o.out
	if out == "" {
		out = man.OutDir
	}
	if out == "" {
		out = "burst-results/" + run.ID
	}
	prog, err := run.ReadProgress(ctx, man)
	if err != nil {
		return err
	}
	human := o.g.io.Out
	if o.json {
		human = o.g.io.Err
	}
	switch prog.State {
	case staging.StateRunning:
		fmt.Fprintf(human, "run %s has %d live workers; joining them\n", run.ID, prog.Workers)
	case staging.StateCancelled:
		if err := run.Uncancel(ctx); err != nil {
			return err
		}
		fmt.Fprintf(human, "run %s was cancelled; resuming it\n", run.ID)
	}
	fmt.Fprintf(human, "run %s: %d of %d tasks finished, %d to go, %s\n", run.ID, prog.Done(), prog.Total, prog.Total-prog.Done(), workersLine(o.workers, o.ssh.specs))
	lr := &localRun{g: o.g, run: run, man: man, workers: o.workers, python: python, out: out, json: o.json, hosts: o.ssh.hosts, sshPython: o.python, keepalive: o.ssh.keepalive}
	return lr.execute(ctx)
}
