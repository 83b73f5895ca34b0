package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/slicerburst/burst/staging"
)

func newLogsCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logs RUN TASK",
		Short: "Print a finished task's stderr",
		Long: `Print what a task wrote to stderr, for each attempt whose full log was
kept, else the tail kept with its status, followed by why it failed.`,
		Args: exactArgs("RUN", "TASK"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLogs(cmd.Context(), g, args[0], args[1])
		},
	}
	return cmd
}

func runLogs(ctx context.Context, g *globalOptions, arg, task string) error {
	run, man, err := g.openRun(ctx, arg)
	if err != nil {
		return err
	}
	if !hasTask(man, task) {
		return usageErrorf("run %s has no task %q", run.ID, task)
	}
	st, err := run.ReadStatus(ctx, task)
	if errors.Is(err, staging.ErrNotFound) {
		return exitError{code: exitTaskFailed, msg: fmt.Sprintf("task %s has not finished yet (queued or running): see burst status %s", task, run.ID)}
	}
	if err != nil {
		return err
	}
	w := g.io.Out
	shown := false
	for _, a := range st.LogAttempts {
		data, _, err := run.Store.Get(ctx, run.LogKey(task, st.Exec, a))
		if err != nil {
			return fmt.Errorf("reading log of attempt %d: %w", a, err)
		}
		fmt.Fprintf(w, "--- task %s, attempt %d ---\n%s", task, a, data)
		shown = shown || a == st.Attempts
	}
	if !shown {
		fmt.Fprintf(w, "--- task %s, attempt %d ---\n%s", task, st.Attempts, st.StderrTail)
	}
	if st.Status == staging.StatusFailed {
		fmt.Fprintf(w, "--- failed after %d attempts: %s\n", st.Attempts, st.Error)
	} else {
		fmt.Fprintf(w, "--- ok after %d attempt(s), %.3fs, peak memory %d KiB\n", st.Attempts, st.DurationS, st.MaxRSSKB)
	}
	return nil
}

func hasTask(m *staging.Manifest, task string) bool {
	for _, t := range m.Tasks {
		if t == task {
			return true
		}
	}
	return false
}
