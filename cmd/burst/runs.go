package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/slicerburst/burst/staging"
)

func newRunsCmd(g *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List the runs in the store",
		Long:  "List the runs in the run store, newest first, with their state and counts.",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRuns(cmd.Context(), g, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	return cmd
}

func runRuns(ctx context.Context, g *globalOptions, asJSON bool) error {
	loc, err := g.storeDir()
	if err != nil {
		return err
	}
	store, err := g.openStore(ctx, loc)
	if err != nil {
		return err
	}
	list, err := staging.ListRuns(ctx, store)
	if err != nil {
		return err
	}
	if asJSON {
		if list == nil {
			list = []staging.Progress{}
		}
		return writeJSON(g.io.Out, list)
	}
	if len(list) == 0 {
		fmt.Fprintf(g.io.Out, "no runs in %s\n", store.Location())
		return nil
	}
	tw := tabwriter.NewWriter(g.io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTATE\tOK\tFAILED\tTOTAL\tCREATED")
	for _, p := range list {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", p.Run, p.State, p.OK, p.Failed, p.Total, p.Created.Local().Format("2006-01-02 15:04"))
	}
	return tw.Flush()
}
