package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/slicerburst/burst/provision"
)

type planCmdOptions struct {
	g      *globalOptions
	script string
	sweep  string
	inputs string
	tasks  int
	python string
	shared []string
	json   bool
	plan   planOptions
}

func newPlanCmd(g *globalOptions) *cobra.Command {
	o := &planCmdOptions{g: g}
	cmd := &cobra.Command{
		Use:   "plan SCRIPT (--sweep FILE | --inputs DIR | --tasks N) (--task-time DURATION | --probe)",
		Short: "Quote the EC2 fleet for a run: instance type, count, time and dollars",
		Long: `Size an EC2 fleet for a run and quote it, changing nothing: no run is
staged and no instance is launched. It reads the instance types and the
current spot prices from EC2 (DescribeInstanceTypes,
DescribeSpotPriceHistory) in the region of burst's configuration, else of
the AWS configuration (AWS_REGION or the profile's). On-demand prices come
from the AWS Price List API (pricing:GetProducts), cached for a day under
the user's cache folder; when that fails, from a table built into burst,
and the plan says which, with the table's date. The configuration's
instance_types, market and budget apply when the flags do not give them,
as for burst submit --cloud aws: the same inputs give the same quote.

The model: an instance runs one task per vCPU at once (fewer when
--memory per task does not fit), tasks run in waves over all the fleet's
slots after --boot-time, and EC2 bills per second with a one-minute
minimum. For every type and market it weighs every instance count up to
--max-instances and --max-vcpus, keeps those that meet --budget and
--deadline, and recommends the fastest whose cost is within 10% of the
cheapest: the budget is a cap, not a target. A few faster and cheaper
alternatives follow it.

The time per task is --task-time, or with --probe the time of the first
task run here with the resolved interpreter (--python); a task on an
instance's core may be faster or slower. With --probe and no --memory, the
task's measured peak memory is what each task is given.

Exit status: 0 with a plan; 2 for bad usage or input, an unknown instance
type, or when no option meets --budget and --deadline (the nearest
options are shown).`,
		Example: `  burst plan offset.py --sweep sweep.yaml --task-time 40s --budget 5 --deadline 8h
  burst plan filter.py --sweep radii.yaml --shared volume.nrrd --probe --market spot
  burst plan seg.py --tasks 20000 --task-time 3m --memory 3GiB --types c7i.4xlarge,m7i.4xlarge --max-vcpus 256
  burst plan seg.py --tasks 500 --task-time 2m --json`,
		Args: exactArgs("SCRIPT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.script = args[0]
			return runPlan(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.sweep, "sweep", "", "sweep spec `FILE` (YAML) to expand into tasks")
	f.StringVar(&o.inputs, "inputs", "", "`DIR` of *.pkl inputs, one task each")
	f.IntVar(&o.tasks, "tasks", 0, "plan for `N` tasks, without their inputs")
	f.StringVar(&o.python, "python", "", "interpreter `PATH` for --probe (default PythonSlicer when on PATH, else python3)")
	f.StringArrayVar(&o.shared, "shared", nil, "`FILE` every task reads, for --probe (repeatable)")
	f.BoolVar(&o.json, "json", false, "print the plan as JSON on stdout")
	o.plan.addFlags(f)
	return cmd
}

// validate checks everything that needs no AWS call.
func (o *planCmdOptions) validate() error {
	given := 0
	for _, s := range []bool{o.sweep != "", o.inputs != "", o.plan.flags.Changed("tasks")} {
		if s {
			given++
		}
	}
	if given != 1 {
		return usageErrorf("give exactly one of --sweep FILE, --inputs DIR or --tasks N")
	}
	if o.plan.flags.Changed("tasks") && o.tasks < 1 {
		return usageErrorf("--tasks must be at least 1, got %d", o.tasks)
	}
	if o.plan.probe && o.plan.flags.Changed("tasks") {
		return usageErrorf("--probe runs the first task: give --sweep or --inputs, not --tasks")
	}
	if err := o.plan.validate(); err != nil {
		return err
	}
	if err := readableFile(o.script, "script"); err != nil {
		return err
	}
	for _, s := range o.shared {
		if err := readableFile(s, "shared file"); err != nil {
			return err
		}
	}
	return nil
}

func runPlan(ctx context.Context, o *planCmdOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	tasks := o.tasks
	var probe func(context.Context) (provision.ProbeResult, error)
	if o.sweep != "" || o.inputs != "" {
		so := &submitOptions{sweep: o.sweep, inputs: o.inputs}
		inputs, _, err := so.loadInputs()
		if err != nil {
			return err
		}
		tasks = len(inputs)
		if o.plan.probe {
			if probe, err = probeFirst(o.g.io.Err, o.script, o.python, inputs, o.shared); err != nil {
				return err
			}
		}
	}
	// The configuration's defaults apply as they do to a cloud submit.
	cs, err := o.g.openCloud(ctx, false)
	if err != nil {
		return err
	}
	res, err := o.plan.quote(ctx, cs, tasks, probe)
	var np *provision.NoPlanError
	if errors.As(err, &np) && o.json {
		if jerr := writeJSON(o.g.io.Out, planJSON(res, np.Nearest, np.Error())); jerr != nil {
			return jerr
		}
		return usageError{np}
	}
	if err != nil {
		return quoteError(o.g.io.Out, err)
	}
	if o.json {
		return writeJSON(o.g.io.Out, planJSON(res, res.Options, ""))
	}
	writePlan(o.g.io.Out, res)
	return nil
}

// writePlan prints a plan for people: what it was made from, the table,
// and the notes.
func writePlan(w io.Writer, res *provision.Quote) {
	how := "given"
	if res.Probe != nil {
		how = "measured"
	}
	fmt.Fprintf(w, "%d tasks of %s each (%s)", res.Tasks, provision.FormatDuration(res.TaskTime), how)
	if res.MemoryMiB > 0 {
		fmt.Fprintf(w, ", %d MiB each", res.MemoryMiB)
	}
	fmt.Fprintf(w, ", in %s", res.Region)
	if res.Budget > 0 {
		fmt.Fprintf(w, ", budget %s", provision.FormatDollars(res.Budget))
	}
	if res.Deadline > 0 {
		fmt.Fprintf(w, ", deadline %s", provision.FormatDuration(res.Deadline))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)
	writePlanTable(w, res.Options, true)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "* recommended: the fastest within 10% of the cheapest; the others trade time for money. Nothing was launched.")
	if res.PriceSource != "" {
		fmt.Fprintf(w, "Spot prices are EC2's now; on-demand prices are from %s.\n", res.PriceSource)
	}
	for _, n := range res.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}

// writePlanTable prints options as a table, fastest first; with mark, the
// first of opts is marked as the recommended one.
func writePlanTable(w io.Writer, opts []provision.Option, mark bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tTYPE\tMARKET\tCOUNT\tSLOTS\tMAKESPAN\tCOST\t$/H EACH\t")
	rows := slices.Clone(opts)
	slices.SortStableFunc(rows, func(a, b provision.Option) int { return cmp.Compare(a.Makespan, b.Makespan) })
	for _, o := range rows {
		star := ""
		if mark && o == opts[0] {
			star = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t\n", star, o.Offer.Type.Name, o.Offer.Market, o.Count, o.Slots,
			provision.FormatDuration(o.Makespan), provision.FormatDollars(o.Cost), provision.FormatDollars(o.Offer.PerHour))
	}
	tw.Flush()
}

type optionJSON struct {
	Recommended bool    `json:"recommended,omitempty"`
	Type        string  `json:"type"`
	Market      string  `json:"market"`
	Count       int     `json:"count"`
	VCPUs       int     `json:"vcpus_each"`
	MemoryMiB   int64   `json:"memory_mib_each"`
	SlotsEach   int     `json:"slots_each"`
	Slots       int     `json:"slots"`
	MakespanS   float64 `json:"makespan_s"`
	Cost        float64 `json:"cost_usd"`
	PerHour     float64 `json:"usd_per_hour_each"`
}

type planJSONOut struct {
	Region        string                 `json:"region"`
	Tasks         int                    `json:"tasks"`
	TaskTimeS     float64                `json:"task_time_s"`
	TaskMemoryMiB int64                  `json:"task_memory_mib,omitempty"`
	Probe         *provision.ProbeResult `json:"probe,omitempty"`
	Budget        float64                `json:"budget_usd,omitempty"`
	DeadlineS     float64                `json:"deadline_s,omitempty"`
	OnDemandAsOf  string                 `json:"on_demand_prices_as_of"`
	PriceSource   string                 `json:"on_demand_prices_source,omitempty"`
	Error         string                 `json:"error,omitempty"`
	Options       []optionJSON           `json:"options"`
	Notes         []string               `json:"notes,omitempty"`
}

// planJSON is what --json prints: a plan, or a refusal (its message) with
// the nearest options.
func planJSON(res *provision.Quote, opts []provision.Option, refusal string) planJSONOut {
	out := planJSONOut{Error: refusal, Options: []optionJSON{}}
	if res != nil {
		out.Region, out.Tasks, out.TaskTimeS, out.TaskMemoryMiB = res.Region, res.Tasks, res.TaskTime.Seconds(), res.MemoryMiB
		out.Probe, out.Budget, out.DeadlineS, out.Notes = res.Probe, res.Budget, res.Deadline.Seconds(), res.Notes
		out.PriceSource = res.PriceSource
	}
	if t, err := provision.OnDemandPrices(); err == nil {
		out.OnDemandAsOf = t.AsOf
	}
	for i, o := range opts {
		out.Options = append(out.Options, optionJSON{
			Recommended: refusal == "" && i == 0,
			Type:        o.Offer.Type.Name,
			Market:      string(o.Offer.Market),
			Count:       o.Count,
			VCPUs:       o.Offer.Type.VCPUs,
			MemoryMiB:   o.Offer.Type.MemoryMiB,
			SlotsEach:   o.PerInstance(),
			Slots:       o.Slots,
			MakespanS:   o.Makespan.Seconds(),
			Cost:        o.Cost,
			PerHour:     o.Offer.PerHour,
		})
	}
	return out
}
