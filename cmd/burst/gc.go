package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/slicerburst/burst/provision"
)

type gcOptions struct {
	g      *globalOptions
	dryRun bool
	yes    bool
	owner  string
	json   bool
}

func newGCCmd(g *globalOptions) *cobra.Command {
	o := &gcOptions{g: g}
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Terminate burst's EC2 instances that have no reason to run",
		Long: `Find every instance that burst launched (tagged burst:run) and that is not
terminated, and end those whose run has ended (finished or cancelled, read
from the run store in burst's configuration) or whose burst:expires time
has passed; then wait until they are terminated and delete their runs'
launch templates. Instances of live runs are left alone, and so are
instances whose expiry tag is missing and whose run cannot be read: they
are listed, and burst down RUN ends them.

It shows what it will end and asks first; without a terminal it needs
--yes. Running it again is success. It is safe to run from cron.`,
		Example: `  burst gc --dry-run
  burst gc --yes`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGC(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.dryRun, "dry-run", false, "list what would be ended, and end nothing")
	f.BoolVarP(&o.yes, "yes", "y", false, "do not ask")
	f.StringVar(&o.owner, "owner", "", "only instances launched by `OWNER` (their burst:owner tag)")
	f.BoolVar(&o.json, "json", false, "print what was found as JSON")
	return cmd
}

func runGC(ctx context.Context, o *gcOptions) error {
	io := o.g.io
	if !o.dryRun && !o.yes && !io.InTTY {
		return usageErrorf("burst gc terminates instances: pass --yes (or --dry-run to only list them)")
	}
	cs, err := o.g.openCloud(ctx, false)
	if err != nil {
		return err
	}
	human := io.Out
	if o.json {
		human = io.Err
	}
	opts := provision.GCOptions{Owner: o.owner, DryRun: true, Logger: slog.Default(), Progress: teardownProgress(human)}
	// Which runs have ended is read from the run store; without it, expiry
	// alone decides, which still ends every instance that outlived its run.
	switch {
	case !cs.hasCfg:
		fmt.Fprintln(human, "no burst configuration: judging instances by their expiry alone")
	default:
		store, err := o.g.openStore(ctx, cs.cfg.Store)
		if err != nil {
			fmt.Fprintf(human, "cannot read the run store (%v): judging instances by their expiry alone\n", err)
		} else {
			opts.Ended = provision.RunEnded(store)
		}
	}
	found, err := provision.GC(ctx, cs.api, opts)
	if err != nil {
		return fmt.Errorf("looking for burst instances: %w", err)
	}
	for _, k := range found.Kept {
		fmt.Fprintf(human, "keeping %s (run %s): %s\n", k.ID, k.RunID, k.Reason)
	}
	if len(found.Reaped) == 0 {
		fmt.Fprintf(human, "nothing to end in %s\n", cs.region)
		return o.report(found)
	}
	for _, r := range found.Reaped {
		fmt.Fprintf(human, "%s %s (run %s, %s): %s\n", map[bool]string{true: "would end", false: "ending"}[o.dryRun], r.ID, r.RunID, r.Type, r.Reason)
	}
	if o.dryRun {
		return o.report(found)
	}
	if !o.yes {
		ok, err := confirm(io.In, human, fmt.Sprintf("terminate %s?", countOf(len(found.Reaped), "instance")))
		if err != nil || !ok {
			return exitError{code: exitTaskFailed, msg: "nothing was terminated"}
		}
	}
	// Judge again now, ending only what is still to be ended.
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	opts.DryRun = false
	res, err := provision.GC(cctx, cs.api, opts)
	if err != nil {
		return fmt.Errorf("ending instances: %w", err)
	}
	fmt.Fprintf(human, "%s terminated in %s\n", countOf(len(res.Reaped), "instance"), cs.region)
	return o.report(res)
}

func (o *gcOptions) report(res provision.GCResult) error {
	if !o.json {
		return nil
	}
	type item struct {
		ID     string `json:"id"`
		Run    string `json:"run"`
		Type   string `json:"type"`
		Reason string `json:"reason"`
	}
	conv := func(in []provision.GCInstance) []item {
		out := []item{}
		for _, i := range in {
			out = append(out, item{i.ID, i.RunID, i.Type, i.Reason})
		}
		return out
	}
	return writeJSON(o.g.io.Out, map[string]any{"dry_run": o.dryRun, "ended": conv(res.Reaped), "kept": conv(res.Kept), "templates_deleted": res.Templates})
}

// confirm asks a yes/no question on a terminal; no is the default.
func confirm(in io.Reader, out io.Writer, question string) (bool, error) {
	fmt.Fprintf(out, "%s [y/N] ", question)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return false, err
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes", nil
}
