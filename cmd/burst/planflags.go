package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
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

var typeName = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9-]+$`)

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
	if _, err := p.markets(); err != nil {
		return err
	}
	for _, t := range p.types {
		if !typeName.MatchString(t) {
			return usageErrorf("--types: %q is not an instance type name (like c7i.2xlarge)", t)
		}
	}
	if changed("types") && len(p.types) == 0 {
		return usageErrorf("--types: give at least one instance type")
	}
	p.memoryMiB = 0
	if p.memory != "" || changed("memory") {
		m, err := parseMiB(p.memory)
		if err != nil {
			return usageErrorf("--memory: %v", err)
		}
		p.memoryMiB = m
	}
	return nil
}

// parseMiB reads a memory size: a number of MiB, or a number with a unit
// (MiB, GiB, M, G; any case).
func parseMiB(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"gib", 1024}, {"mib", 1}, {"gb", 1024}, {"mb", 1}, {"g", 1024}, {"m", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a size like 512MiB or 3GiB", s)
	}
	mib := math.Ceil(v * mult)
	if mib < 1 || mib > 1<<40 {
		return 0, fmt.Errorf("%q: must be between 1 MiB and 1 EiB", s)
	}
	return int64(mib), nil
}

// markets returns the markets that --market allows, preferred first.
func (p *planOptions) markets() ([]provision.Market, error) {
	switch p.market {
	case "any":
		return []provision.Market{provision.Spot, provision.OnDemand}, nil
	case "spot":
		return []provision.Market{provision.Spot}, nil
	case "on-demand", "ondemand":
		return []provision.Market{provision.OnDemand}, nil
	}
	return nil, usageErrorf("--market must be spot, on-demand or any, got %q", p.market)
}

// probeResult is what running one task here measured.
type probeResult struct {
	Task     string        `json:"task"`
	Duration time.Duration `json:"-"`
	PeakMiB  int64         `json:"peak_mib"`
	Seconds  float64       `json:"seconds"`
}

// planRequest is what a plan needs besides the flags.
type planRequest struct {
	tasks  int
	region string
	// probe measures one task here; it is called only with --probe.
	probe func(ctx context.Context) (probeResult, error)
}

// planResult is a plan: the inputs it was made from, the ranked options
// (the recommended one first), and notes for people.
type planResult struct {
	Region    string
	Tasks     int
	TaskTime  time.Duration
	MemoryMiB int64
	Probe     *probeResult
	Budget    float64
	Deadline  time.Duration
	Options   []provision.Option
	Notes     []string
}

// plan sizes a fleet for req.tasks tasks in region: it validates the
// flags, reads the instance types and spot prices from EC2 (read-only
// calls), measures a task with --probe, and ranks the options (see
// provision.Plan). An unknown instance type or a type the worker image
// cannot run is a usage error. When no option meets the limits, the
// error is provision's (*provision.NoPlanError, ErrBudgetTooSmall,
// ErrNoOffers), with the partial result for its notes.
func (p *planOptions) plan(ctx context.Context, api provision.EC2API, req planRequest) (*planResult, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	markets, _ := p.markets()
	res := &planResult{Region: req.region, Tasks: req.tasks, TaskTime: p.taskTime, MemoryMiB: p.memoryMiB, Budget: p.budget, Deadline: p.deadline}
	its, err := provision.Catalog(ctx, api, p.types)
	if errors.Is(err, provision.ErrUnknownType) {
		return nil, usageErrorf("--types: %v in %s", err, req.region)
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, it := range its {
		if it.Arch != "x86_64" {
			return nil, usageErrorf("--types: %s is %s; burst's worker image, like 3D Slicer on Linux, is x86_64 only", it.Name, it.Arch)
		}
		names = append(names, it.Name)
	}
	spot := map[string]float64{}
	if slices.Contains(markets, provision.Spot) {
		if spot, err = provision.SpotPrices(ctx, api, names); err != nil {
			return nil, err
		}
	}
	offers, notes := provision.Offers(req.region, its, spot, markets)
	res.Notes = append(res.Notes, notes...)
	if p.probe {
		if req.probe == nil {
			return nil, usageErrorf("--probe needs the tasks' inputs (--sweep or --inputs)")
		}
		pr, err := req.probe(ctx)
		if err != nil {
			return nil, err
		}
		res.Probe = &pr
		res.TaskTime = max(pr.Duration, time.Millisecond)
		if res.MemoryMiB == 0 {
			res.MemoryMiB = pr.PeakMiB
		}
		res.Notes = append(res.Notes, fmt.Sprintf("time per task measured here on task %s: %s, peak memory %d MiB; an instance's core may be faster or slower", pr.Task, fmtSeconds(pr.Duration), pr.PeakMiB))
	}
	res.Options, err = provision.Plan(provision.PlanInput{
		Tasks:         req.tasks,
		TaskTime:      res.TaskTime,
		TaskMemoryMiB: res.MemoryMiB,
		Budget:        p.budget,
		Deadline:      p.deadline,
		MaxInstances:  p.maxInstances,
		MaxVCPUs:      p.maxVCPUs,
		Offers:        offers,
		BootTime:      p.bootTime,
	})
	return res, err
}

func fmtSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) + "s"
}

// probeTask runs one task here, as a worker would (a throw-away run store
// holding just its input, the script and the shared files, and the
// executor's task runner), and measures it. The task's stderr goes to
// stderr. A failing task is an error: its time would mean nothing.
func probeTask(ctx context.Context, script, python string, in staging.Input, shared []string, stderr io.Writer) (probeResult, error) {
	dir, err := os.MkdirTemp("", "burst-probe-")
	if err != nil {
		return probeResult{}, err
	}
	defer os.RemoveAll(dir)
	store, err := staging.OpenFS(filepath.Join(dir, "store"))
	if err != nil {
		return probeResult{}, err
	}
	defer store.Close()
	run, err := staging.Stage(ctx, store, staging.StageRequest{
		ScriptPath:  script,
		Inputs:      []staging.Input{in},
		SharedPaths: shared,
		Manifest:    staging.Manifest{Python: python, Source: "probe", Slots: 1, LeaseTTL: staging.Duration(time.Minute)},
		Logger:      slog.Default(),
	})
	if err != nil {
		return probeResult{}, fmt.Errorf("probe: staging task %s: %w", in.ID, err)
	}
	man, err := run.Manifest(ctx)
	if err != nil {
		return probeResult{}, err
	}
	r, err := executor.Repro(ctx, run, man, python, filepath.Join(dir, "work"), provision.CacheDir(provision.DefaultDir()), in.ID, stderr)
	if err != nil {
		return probeResult{}, fmt.Errorf("probe: running task %s: %w", in.ID, err)
	}
	if r.Error != "" {
		return probeResult{}, exitError{code: exitTaskFailed, msg: fmt.Sprintf("probe: task %s failed here: %s", in.ID, r.Error)}
	}
	d := time.Duration(r.DurationS * float64(time.Second))
	return probeResult{Task: in.ID, Duration: d, Seconds: r.DurationS, PeakMiB: (r.MaxRSSKB + 1023) / 1024}, nil
}

// probeFirst returns a planRequest.probe that runs the first of inputs
// here with the interpreter that --python names, saying so on w.
func probeFirst(w io.Writer, script, pythonFlag string, inputs []staging.Input, shared []string) (func(context.Context) (probeResult, error), error) {
	python, err := executor.ResolvePython(pythonFlag)
	if err != nil {
		return nil, usageError{err}
	}
	return func(ctx context.Context) (probeResult, error) {
		fmt.Fprintf(w, "probe: running task %s here with %s\n", inputs[0].ID, python)
		return probeTask(ctx, script, python, inputs[0], shared, w)
	}, nil
}
