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
	rep := statusReport{Progress: p, Store: run.Store.Location(), Source: man.Source, Script: man.Script, FailedList: []staging.Status{}}
	for _, id := range man.Tasks {
		if len(rep.FailedList) >= maxFailedShown {
			break
		}
		if p.Finished[id] && !p.OKSet[id] {
			st, err := run.ReadStatus(ctx, id)
			if err != nil {
				return err
			}
			st.StderrTail = ""
			rep.FailedList = append(rep.FailedList, *st)
		}
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
	for _, hb := range p.Beats {
		if hb.Live(time.Now()) {
			fmt.Fprintf(w, "          %s on %s: %d slots, %d running, last seen %s ago\n", hb.Worker, hb.Host, hb.Slots, len(hb.Running), time.Since(hb.LastSeen).Round(time.Second))
		}
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

func newWatchCmd(g *globalOptions) *cobra.Command {
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "watch RUN",
		Short: "Follow a run's progress until it ends",
		Long: `Show a run's progress live, read from the store alone, until it is done,
cancelled, or stopped with nobody working on it.`,
		Args: exactArgs("RUN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWatch(cmd.Context(), g, args[0], every)
		},
	}
	cmd.Flags().DurationVar(&every, "every", 2*time.Second, "how often to read the store")
	return cmd
}

func runWatch(ctx context.Context, g *globalOptions, arg string, every time.Duration) error {
	if every < 100*time.Millisecond {
		return usageErrorf("--every must be at least 100ms")
	}
	run, man, err := g.openRun(ctx, arg)
	if err != nil {
		return err
	}
	var view *progressView
	for {
		p, err := run.ReadProgress(ctx, man)
		if err != nil {
			return err
		}
		c := counts{Total: p.Total, OK: p.OK, Failed: p.Failed, Running: p.Running}
		if view == nil {
			view = newProgressView(g.io.Out, g.io.OutTTY, g.io.Width, c.done())
			view.every = every * 5
		}
		view.Update(c)
		if p.State != staging.StateRunning {
			view.Done(c)
			fmt.Fprintf(g.io.Out, "run %s %s: %d ok, %d failed of %d\n", run.ID, p.State, p.OK, p.Failed, p.Total)
			if p.Failed > 0 {
				return exitError{code: exitTaskFailed}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			view.Done(c)
			return ctx.Err()
		case <-time.After(every):
		}
	}
}
