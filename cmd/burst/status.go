package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/slicerburst/burst/staging"
)

// statusReport is burst status's output.
type statusReport struct {
	staging.Progress
	Store      string           `json:"store"`
	Source     string           `json:"source"`
	Script     string           `json:"script"`
	FailedList []staging.Status `json:"failed_tasks"`
	// Hosts lists the live workers by host.
	Hosts []statusHost `json:"hosts"`
}

type statusHost struct {
	Host    string `json:"host"`
	Workers int    `json:"workers"`
	Slots   int    `json:"slots"`
	Running int    `json:"running"`
}

// maxFailedShown bounds how many failed tasks status reads and shows.
const maxFailedShown = 20

func newStatusCmd(g *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status RUN",
		Short: "Show a run's progress, from the store alone",
		Long: `Show a run's state (running, done, cancelled, or stopped: unfinished with no
live worker, see burst resume), its counts, live workers, and why tasks
failed. It reads only the run store, so it works from any machine that can
read it.`,
		Args: exactArgs("RUN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStatus(cmd.Context(), g, args[0], asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

func runStatus(ctx context.Context, g *globalOptions, arg string, asJSON bool) error {
	run, man, err := g.openRun(ctx, arg)
	if err != nil {
		return err
	}
	p, err := run.ReadProgress(ctx, man)
	if err != nil {
		return err
	}
	failed, err := run.FailedStatuses(ctx, man, p, maxFailedShown)
	if err != nil {
		return err
	}
	rep := statusReport{Progress: p, Store: run.Store.Location(), Source: man.Source, Script: man.Script, FailedList: failed}
	hosts := staging.HostsOf(p.Beats, p.Now)
	rep.Hosts = []statusHost{}
	for _, h := range hosts {
		rep.Hosts = append(rep.Hosts, statusHost{Host: h.Host, Workers: h.Workers, Slots: h.Slots, Running: h.Running})
	}
	if asJSON {
		return writeJSON(g.io.Out, rep)
	}
	w := g.io.Out
	fmt.Fprintf(w, "run:      %s (%s)\n", run.ID, run.Location())
	fmt.Fprintf(w, "script:   %s, %s\n", man.Script, man.Source)
	fmt.Fprintf(w, "state:    %s\n", p.State)
	fmt.Fprintf(w, "tasks:    %d total: %d ok, %d failed, %d running, %d queued\n", p.Total, p.OK, p.Failed, p.Running, p.Queued)
	fmt.Fprintf(w, "workers:  %d live\n", p.Workers)
	for _, h := range hosts {
		fmt.Fprintf(w, "          on %s: %s, %d slots, %d running, last seen %s ago\n", h.Host, countOf(h.Workers, "worker"), h.Slots, h.Running, p.Now.Sub(h.LastSeen).Round(time.Second))
	}
	if len(rep.FailedList) > 0 {
		fmt.Fprintf(w, "failed:\n")
		for _, st := range rep.FailedList {
			fmt.Fprintf(w, "  %s  %s\n", st.Task, st.Error)
		}
		if p.Failed > len(rep.FailedList) {
			fmt.Fprintf(w, "  ... and %d more\n", p.Failed-len(rep.FailedList))
		}
	}
	if p.State == staging.StateStopped {
		fmt.Fprintf(w, "nobody is working on it: burst resume %s\n", run.ID)
	}
	return nil
}

// watchOptions are burst watch's flags.
type watchOptions struct {
	every    time.Duration
	json     bool
	out      string
	grace    time.Duration
	maintain bool
}

func newWatchCmd(g *globalOptions) *cobra.Command {
	var o watchOptions
	cmd := &cobra.Command{
		Use:   "watch RUN",
		Short: "Follow a run's progress until it ends",
		Long: `Show a run's progress live, read from the store alone, until it is done,
cancelled, or stopped with nobody working on it (after --grace, for
workers that are still starting).

With --json, watch collects each task into --out as it finishes (as burst
results does) and prints one JSON line for it on stdout, those already
finished first: the task's results.jsonl line (task, status, params,
output, error, attempts, duration_s, max_rss_kb, host) with output_file, the
path of its pickled output (ok tasks), and stderr_file, the path of its
last stderr (failed tasks). Every finished task is printed once; nothing
else is printed on stdout. burst status RUN --json tells the final state.

With --maintain, for a run submitted with --cloud aws --detach, watch
follows its fleet too (with the AWS credentials) and launches
replacements for instances that end while work remains, within the rate,
budget and deadline that the submit recorded; the instances still end
themselves at the run's deadline whether or not this keeps watching.

Exit status: 0 when the run ended with no failed task, 1 when some failed
(or watching failed), 2 for bad usage.`,
		Example: `  burst watch offset-20261126-093012-1a2b
  burst watch s3://my-bucket/burst/runs/offset-20261126-093012-1a2b --json --out res/`,
		Args: exactArgs("RUN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.maintain {
				if o.json {
					return usageErrorf("give --maintain or --json, not both")
				}
				return runMaintain(cmd.Context(), g, args[0], o.every)
			}
			return runWatch(cmd.Context(), g, args[0], o)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.every, "every", 2*time.Second, "how often to read the store")
	f.BoolVar(&o.json, "json", false, "print one JSON line per finished task, collecting it into --out")
	f.StringVarP(&o.out, "out", "o", "", "with --json, `DIR` to collect into (default: where submit collected, else ./burst-results/RUN)")
	f.DurationVar(&o.grace, "grace", 0, "how long to keep following a run that nobody is working on, for workers still starting")
	f.BoolVar(&o.maintain, "maintain", false, "replace a cloud run's instances that end while work remains")
	return cmd
}

func runWatch(ctx context.Context, g *globalOptions, arg string, o watchOptions) error {
	if o.every < 100*time.Millisecond {
		return usageErrorf("--every must be at least 100ms")
	}
	if o.grace < 0 {
		return usageErrorf("--grace must not be negative")
	}
	if o.out != "" && !o.json {
		return usageErrorf("--out is for --json")
	}
	run, man, err := g.openRun(ctx, arg)
	if err != nil {
		return err
	}
	var (
		view   *progressView
		tasks  *staging.TaskStream
		since  time.Time // when the run was first seen stopped
		failed bool
	)
	if o.json {
		if tasks, err = staging.NewTaskStream(run, man, o.out, g.io.Out); err != nil {
			return err
		}
		defer tasks.Close()
	}
	for {
		p, err := run.ReadProgress(ctx, man)
		if err != nil {
			return err
		}
		ended := p.State != staging.StateRunning
		if p.State == staging.StateStopped {
			if since.IsZero() {
				since = time.Now()
			}
			ended = time.Since(since) >= o.grace
		} else {
			since = time.Time{}
		}
		failed = p.Failed > 0
		if tasks != nil {
			if err := tasks.Emit(ctx, p); err != nil {
				return err
			}
		} else {
			c := counts{Total: p.Total, OK: p.OK, Failed: p.Failed, Running: p.Running}
			if view == nil {
				view = newProgressView(g.io.Out, g.io.OutTTY, g.io.Width, c.done())
				view.every = o.every * 5
			}
			view.Update(c)
			if ended {
				view.Done(c)
				fmt.Fprintf(g.io.Out, "run %s %s: %d ok, %d failed of %d\n", run.ID, p.State, p.OK, p.Failed, p.Total)
			}
		}
		if ended {
			break
		}
		select {
		case <-ctx.Done():
			if view != nil {
				view.Done(counts{Total: p.Total, OK: p.OK, Failed: p.Failed, Running: p.Running})
			}
			return ctx.Err()
		case <-time.After(o.every):
		}
	}
	if tasks != nil {
		if err := tasks.Close(); err != nil {
			return err
		}
	}
	if failed {
		return exitError{code: exitTaskFailed}
	}
	return nil
}
