package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
)

func newCancelCmd(g *globalOptions) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "cancel RUN",
		Short: "Stop a run: running tasks end, nothing new starts",
		Long: `Cancel a run: every worker stops its running tasks (their process groups are
killed), claims nothing more and exits; the run's state becomes cancelled.
Finished results stay. burst resume RUN carries on later.`,
		Args: exactArgs("RUN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCancel(cmd.Context(), g, args[0], wait)
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long to wait for workers to stop (0: do not wait)")
	return cmd
}

func runCancel(ctx context.Context, g *globalOptions, arg string, wait time.Duration) error {
	run, man, err := g.openRun(ctx, arg)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	if err := run.Cancel(ctx, host); err != nil {
		return err
	}
	fmt.Fprintf(g.io.Out, "run %s: cancel requested\n", run.ID)
	deadline := time.Now().Add(wait)
	for {
		p, err := run.ReadProgress(ctx, man)
		if err != nil {
			return err
		}
		if p.Workers == 0 {
			fmt.Fprintf(g.io.Out, "run %s %s: %d ok, %d failed, %d unfinished\n", run.ID, p.State, p.OK, p.Failed, p.Total-p.Done())
			return nil
		}
		if !time.Now().Before(deadline) {
			fmt.Fprintf(g.io.Out, "%d workers still stopping; they check for cancel every few seconds\n", p.Workers)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
