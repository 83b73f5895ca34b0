package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/slicerburst/burst/staging"
)

func newResultsCmd(g *globalOptions) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "results RUN",
		Short: "Collect a run's results into a directory",
		Long: `Copy a run's finished tasks from the store into a directory: outputs/<task>.pkl,
results.jsonl (one line per task: params, status, timings and the decoded
output) and failed/<task>/ (input.pkl and stderr.log). Only what the
directory does not have yet is fetched.`,
		Args: exactArgs("RUN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runResults(cmd.Context(), g, args[0], out)
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "`DIR` to collect into (default: where submit collected, else ./burst-results/RUN)")
	return cmd
}

func runResults(ctx context.Context, g *globalOptions, arg, out string) error {
	run, man, err := g.openRun(ctx, arg)
	if err != nil {
		return err
	}
	if out == "" {
		out = man.OutDir
	}
	if out == "" {
		out = filepath.Join("burst-results", run.ID)
	}
	p, n, err := staging.CollectRun(ctx, run, man, out)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.io.Out, "run %s (%s): %d ok, %d failed, %d unfinished; fetched %d new\n", run.ID, p.State, p.OK, p.Failed, p.Total-p.Done(), n)
	fmt.Fprintf(g.io.Out, "results: %s\n", filepath.Join(out, "results.jsonl"))
	return nil
}
