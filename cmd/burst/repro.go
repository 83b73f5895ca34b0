package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/provision"
	"github.com/slicerburst/burst/staging/pickle"
)

func newReproCmd(g *globalOptions) *cobra.Command {
	var python string
	cmd := &cobra.Command{
		Use:   "repro RUN TASK",
		Short: "Run one task here, in the foreground, with its stored input",
		Long: `Run one task of a run on this machine with the run's script, shared files and
the task's stored input, showing its stderr as it runs and its decoded
output at the end. Nothing is written to the run. Exit status 0 when the
task succeeds, 1 when it fails.`,
		Args: exactArgs("RUN", "TASK"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRepro(cmd.Context(), g, args[0], args[1], python)
		},
	}
	cmd.Flags().StringVar(&python, "python", "", "interpreter `PATH` (default: the one the run was submitted with)")
	return cmd
}

func runRepro(ctx context.Context, g *globalOptions, arg, task, python string) error {
	run, man, err := g.openRun(ctx, arg)
	if err != nil {
		return err
	}
	if !hasTask(man, task) {
		return usageErrorf("run %s has no task %q", run.ID, task)
	}
	if err := checkSeal(ctx, run); err != nil {
		return err
	}
	if python == "" {
		python = man.Python
	}
	if python, err = executor.ResolvePython(python); err != nil {
		return usageError{err}
	}
	dir, err := os.MkdirTemp("", "burst-repro-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(g.io.Err, "--- running task %s of %s with %s\n", task, run.ID, python)
	res, err := executor.Repro(ctx, run, man, python, dir, provision.CacheDir(provision.DefaultDir()), task, g.io.Err)
	if err != nil {
		return err
	}
	if res.Error != "" {
		return exitError{code: exitTaskFailed, msg: fmt.Sprintf("task %s failed: %s", task, res.Error)}
	}
	v, err := pickle.Unmarshal(res.Output)
	if err != nil {
		return err
	}
	if err := writeJSON(g.io.Out, pickle.ToJSON(v)); err != nil {
		return err
	}
	fmt.Fprintf(g.io.Err, "--- ok in %.3fs, peak memory %d KiB\n", res.DurationS, res.MaxRSSKB)
	return nil
}
