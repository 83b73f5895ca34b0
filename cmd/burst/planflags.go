package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/provision"
	"github.com/slicerburst/burst/staging"
)

// planOptions are the flags that size a fleet for a run: shared by
// burst plan, which only quotes, and by submitting to the cloud, which
// launches what it quotes.
type planOptions struct {
	flags        *pflag.FlagSet
	taskTime     time.Duration
	probe        bool
	memory       string
	budget       float64
	deadline     time.Duration
	maxInstances int
	maxVCPUs     int
	types        []string
	market       string
	bootTime     time.Duration

	memoryMiB int64 // parsed from memory by validate
}

func (p *planOptions) addFlags(f *pflag.FlagSet) {
	p.flags = f
	f.DurationVar(&p.taskTime, "task-time", 0, "time one task takes on one core, e.g. 40s or 5m")
	f.BoolVar(&p.probe, "probe", false, "measure the time per task by running the first task here first")
	f.StringVar(&p.memory, "memory", "", "memory one task needs: `SIZE` in MiB, or with a unit (512MiB, 3GiB); default: does not limit (with --probe: the measured peak)")
	f.Float64Var(&p.budget, "budget", 0, "most the run may cost, in US `DOLLARS` (default no limit)")
	f.DurationVar(&p.deadline, "deadline", 0, "longest the run may take from launch, e.g. 8h (default no limit)")
	f.IntVar(&p.maxInstances, "max-instances", 0, "most instances to run at once (default no limit)")
	f.IntVar(&p.maxVCPUs, "max-vcpus", 0, "most vCPUs to run at once, e.g. the account's quota (default no limit)")
	f.StringSliceVar(&p.types, "types", nil, "instance `TYPES` to choose from, comma-separated (default: "+strings.Join(provision.DefaultFamilies, ", ")+" families, large to 8xlarge)")
	f.StringVar(&p.market, "market", "any", "`MARKET` to buy on: spot, on-demand, or any (spot preferred where cheaper)")
	f.DurationVar(&p.bootTime, "boot-time", provision.DefaultBootTime, "time from launch to an instance's first task")
}

// validate checks the flags alone, before any AWS call.
func (p *planOptions) validate() error {
	changed := func(name string) bool { return p.flags != nil && p.flags.Changed(name) }
	switch {
	case p.taskTime < 0 || (changed("task-time") && p.taskTime == 0):
		return usageErrorf("--task-time must be positive, got %s", p.taskTime)
	case p.taskTime == 0 && !p.probe:
		return usageErrorf("give the time per task with --task-time DURATION, or measure it with --probe")
	case p.taskTime > 0 && p.probe:
		return usageErrorf("give --task-time or --probe, not both")
	case p.budget < 0 || math.IsNaN(p.budget) || math.IsInf(p.budget, 0) || (changed("budget") && p.budget == 0):
		return usageErrorf("--budget must be a positive number of dollars, got %v", p.budget)
	case p.deadline < 0 || (changed("deadline") && p.deadline == 0):
		return usageErrorf("--deadline must be positive, got %s", p.deadline)
	case p.maxInstances < 0 || (changed("max-instances") && p.maxInstances == 0):
		return usageErrorf("--max-instances must be at least 1, got %d", p.maxInstances)
	case p.maxVCPUs < 0 || (changed("max-vcpus") && p.maxVCPUs == 0):
		return usageErrorf("--max-vcpus must be at least 1, got %d", p.maxVCPUs)
	case p.bootTime <= 0:
		return usageErrorf("--boot-time must be positive, got %s", p.bootTime)
	}
	if _, err := provision.ParseMarket(p.market); err != nil {
		return usageErrorf("--%v", err)
	}
	for _, t := range p.types {
		if !provision.ValidInstanceType(t) {
			return usageErrorf("--types: %q is not an instance type name (like c7i.2xlarge)", t)
		}
	}
	if changed("types") && len(p.types) == 0 {
		return usageErrorf("--types: give at least one instance type")
	}
	p.memoryMiB = 0
	if p.memory != "" || changed("memory") {
		m, err := provision.ParseMiB(p.memory)
		if err != nil {
			return usageErrorf("--memory: %v", err)
		}
		p.memoryMiB = m
	}
	return nil
}

// quoteRequest is what the flags ask of a quote for tasks tasks in
// region: a flag not given is left zero, for the configuration's default
// (see provision.MakeQuote).
func (p *planOptions) quoteRequest(tasks int, region string, probe func(context.Context) (provision.ProbeResult, error)) provision.QuoteRequest {
	changed := func(name string) bool { return p.flags != nil && p.flags.Changed(name) }
	req := provision.QuoteRequest{
		Tasks: tasks, Region: region, TaskTime: p.taskTime, MemoryMiB: p.memoryMiB,
		Budget: p.budget, Deadline: p.deadline, MaxInstances: p.maxInstances, MaxVCPUs: p.maxVCPUs,
		BootTime: p.bootTime, Probe: probe,
	}
	if changed("types") {
		req.Types = slices.Clone(p.types)
	}
	if changed("market") {
		req.Market = p.market
	}
	return req
}

// quote validates the flags and makes the quote for tasks tasks in the
// cloud session's region, with its configuration's defaults: the one
// quote that burst plan shows and a cloud submit launches. A refusal for
// the inputs is a usage error; Plan's errors (*provision.NoPlanError,
// ErrBudgetTooSmall, ErrNoOffers) come with the partial quote.
func (p *planOptions) quote(ctx context.Context, cs *cloudSession, tasks int, probe func(context.Context) (provision.ProbeResult, error)) (*provision.Quote, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	if p.probe && probe == nil {
		return nil, usageErrorf("--probe needs the tasks' inputs (--sweep or --inputs)")
	}
	req := p.quoteRequest(tasks, cs.region, probe)
	req.Prices = cs.prices
	q, err := provision.MakeQuote(ctx, cs.api, req, cs.cfg.QuoteDefaults())
	var ie *provision.InputError
	var pf *provision.ProbeFailedError
	switch {
	case errors.As(err, &ie):
		return nil, usageErrorf("--%s", ie.Msg)
	case errors.As(err, &pf):
		return nil, exitError{code: exitTaskFailed, msg: pf.Error()}
	}
	return q, err
}

// probeFirst returns a probe that runs the first of inputs here with the
// interpreter that --python names, saying so on w.
func probeFirst(w io.Writer, script, pythonFlag string, inputs []staging.Input, shared []string) (func(context.Context) (provision.ProbeResult, error), error) {
	python, err := executor.ResolvePython(pythonFlag)
	if err != nil {
		return nil, usageError{err}
	}
	return func(ctx context.Context) (provision.ProbeResult, error) {
		fmt.Fprintf(w, "probe: running task %s here with %s\n", inputs[0].ID, python)
		return provision.ProbeTask(ctx, script, python, inputs[0], shared, w)
	}, nil
}
