package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/slicerburst/burst/provision"
)

type downOptions struct {
	g    *globalOptions
	run  string
	json bool
}

func newDownCmd(g *globalOptions) *cobra.Command {
	o := &downOptions{g: g}
	cmd := &cobra.Command{
		Use:   "down RUN",
		Short: "Terminate every EC2 instance of a run, and wait until they are gone",
		Long: `Find every instance tagged with the run's id (burst:run) that is not yet
terminated, terminate it, and wait until EC2 reports it terminated; then
delete the run's launch template. It works from any machine with the AWS
credentials, whether or not the run is finished: a run's workers that are
ended early release nothing, and burst resume RUN carries on later.

Running it again, or on a run with nothing left, is success. RUN is a run
id, or a run location as burst prints it (s3://BUCKET/PREFIX/runs/ID).
The region is burst's configuration's (burst init), else AWS_REGION.`,
		Example: `  burst down offset-20261126-093012-1a2b`,
		Args:    exactArgs("RUN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.run = args[0]
			return runDown(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print what was ended as JSON")
	return cmd
}

func runDown(ctx context.Context, o *downOptions) error {
	id, err := runIDArg(o.run)
	if err != nil {
		return err
	}
	cs, err := o.g.openCloud(ctx, false)
	if err != nil {
		return err
	}
	human := o.g.io.Out
	if o.json {
		human = o.g.io.Err
	}
	res, err := provision.Down(ctx, cs.api, id, provision.DownOptions{Progress: teardownProgress(human), Logger: slog.Default()})
	if err != nil {
		return stillRunning(id, err)
	}
	if o.json {
		ids := make([]string, 0, len(res.Instances))
		for _, in := range res.Instances {
			ids = append(ids, in.ID)
		}
		return writeJSON(o.g.io.Out, map[string]any{"run": id, "region": cs.region, "terminated": ids, "template_deleted": res.TemplateDeleted})
	}
	if len(res.Instances) == 0 {
		fmt.Fprintf(human, "run %s: no instances running in %s\n", id, cs.region)
		return nil
	}
	fmt.Fprintf(human, "run %s: %s terminated in %s\n", id, countOf(len(res.Instances), "instance"), cs.region)
	return nil
}
