package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/slicerburst/burst/images"
	"github.com/slicerburst/burst/provision"
	"github.com/slicerburst/burst/staging"
)

// runCloudSubmit sends a run to a fleet: it checks everything it can
// before anything is staged or launched (flags, configuration, the plan,
// the image), asks, stages the run on the configuration's S3 store,
// launches the planned fleet and follows the run until it ends, then
// terminates every instance of the run, whatever happened: completion,
// cancel, Ctrl-C or an error. The instances end themselves too (their
// user data shuts them down when their worker exits, and at the run's
// hard deadline), so a CLI that dies leaves nothing running for long.
func runCloudSubmit(ctx context.Context, o *submitOptions) error {
	if o.cloud != "aws" {
		return usageErrorf("--cloud %q: the only cloud is aws", o.cloud)
	}
	if err := o.plan.validate(); err != nil {
		return err
	}
	if !o.yes && !(o.g.io.InTTY && !o.json) {
		return usageErrorf("launching instances needs a yes: pass --yes (burst plan shows the plan without launching)")
	}
	if o.poll < 100*time.Millisecond {
		return usageErrorf("--poll must be at least 100ms")
	}
	cs, err := o.g.openCloud(ctx, true)
	if err != nil {
		return err
	}
	o.applyConfigDefaults(cs.cfg) // checked again when planning
	storeLoc := cs.cfg.Store
	if o.g.store != "" {
		storeLoc = o.g.store
	}
	if !strings.HasPrefix(storeLoc, "s3://") {
		return usageErrorf("a cloud run needs an s3:// run store, not %s (see store in %s)", storeLoc, cs.cfg.Path)
	}
	inputs, source, err := o.loadInputs()
	if err != nil {
		return err
	}
	human := o.g.io.Out
	if o.json {
		human = o.g.io.Err
	}

	// The plan.
	req := planRequest{tasks: len(inputs), region: cs.region}
	if o.plan.probe {
		if req.probe, err = probeFirst(o.g.io.Err, o.script, o.python, inputs, o.shared); err != nil {
			return err
		}
	}
	plan, err := o.plan.plan(ctx, cs.api, req)
	var np *provision.NoPlanError
	switch {
	case err == nil:
	case errors.As(err, &np):
		fmt.Fprintln(human, "nearest options:")
		writePlanTable(human, np.Nearest, false)
		return usageError{np}
	case errors.Is(err, provision.ErrBudgetTooSmall), errors.Is(err, provision.ErrNoOffers):
		return usageError{err}
	default:
		return fmt.Errorf("planning the fleet: %w", err)
	}
	chosen := plan.Options[0]

	// The image.
	ami := o.ami
	if ami == "" {
		ami = cs.cfg.AMI
	}
	if ami == "" {
		img, err := images.Newest(ctx, cs.api, cs.region, staging.Protocol)
		if errors.Is(err, images.ErrNoImage) {
			return usageError{err}
		}
		if err != nil {
			return fmt.Errorf("looking for the worker image: %w", err)
		}
		ami = img.ID
	} else if !strings.HasPrefix(ami, "ami-") {
		return usageErrorf("--ami %q is not an image id (ami-...)", ami)
	}

	fmt.Fprintf(human, "%d tasks from %s, %s each: %d × %s (%s) in %s, about %s and %s\n",
		len(inputs), source, provision.FormatDuration(plan.TaskTime), chosen.Count, chosen.Offer.Type.Name, chosen.Offer.Market,
		cs.region, provision.FormatDuration(chosen.Makespan), provision.FormatDollars(chosen.Cost))
	for _, n := range plan.Notes {
		fmt.Fprintln(human, "note:", n)
	}
	if !o.yes {
		ok, err := confirm(o.g.io.In, human, fmt.Sprintf("launch %s (image %s)?", countOf(chosen.Count, "instance"), ami))
		if err != nil || !ok {
			return exitError{code: exitUsage, msg: "nothing was launched"}
		}
	}

	// Stage the run.
	store, err := o.g.openStore(ctx, storeLoc)
	if err != nil {
		return err
	}
	// The interpreter on the instances: as given, else the worker's
	// default there (PythonSlicer in burst's image).
	run, man, out, err := o.stage(ctx, store, inputs, source, o.python, chosen.Slots)
	if err != nil {
		return err
	}
	fmt.Fprintf(human, "run %s staged in %s\n", run.ID, run.Location())

	cr := &cloudRun{o: o, cs: cs, run: run, man: man, plan: plan, chosen: chosen, ami: ami, out: out, human: human}
	return cr.execute(ctx)
}

// applyConfigDefaults fills the plan flags that were not given from
// burst's configuration.
func (o *submitOptions) applyConfigDefaults(cfg cloudConfig) {
	changed := func(name string) bool { return o.plan.flags != nil && o.plan.flags.Changed(name) }
	if !changed("types") && len(cfg.InstanceTypes) > 0 {
		o.plan.types = slices.Clone(cfg.InstanceTypes)
	}
	if !changed("market") && cfg.Market != "" {
		o.plan.market = string(cfg.Market)
	}
	if !changed("budget") && cfg.Budget > 0 {
		o.plan.budget = cfg.Budget
	}
}

// cloudRun is a staged run on its way through a fleet.
type cloudRun struct {
	o      *submitOptions
	cs     *cloudSession
	run    *staging.Run
	man    *staging.Manifest
	plan   *planResult
	chosen provision.Option
	ami    string
	out    string
	human  io.Writer
}

// cloudSummary is a cloud run's final report, printed as JSON with --json.
type cloudSummary struct {
	runSummary
	Instances int     `json:"instances"`
	Spent     float64 `json:"spent_usd"`
}

func (c *cloudRun) execute(ctx context.Context) error {
	// Results are collected as they arrive; an --out that cannot take
	// them is found out before any money is spent.
	coll, err := staging.NewCollector(c.run, c.man, c.out)
	if err != nil {
		return err
	}
	defer coll.Close()
	start := time.Now()
	deadline := provision.HardDeadline(start, c.chosen, c.plan.Budget)
	ud, err := provision.UserData(provision.UserDataSpec{
		Run:      c.run.Location(),
		Region:   c.cs.region,
		Deadline: deadline,
		Python:   c.man.Python,
		Workers:  workersPerInstance(c.chosen),
	})
	if err != nil {
		return fmt.Errorf("writing the instances' user data: %w", err)
	}
	markets, _ := c.o.plan.markets()
	spec := provision.LaunchSpec{
		RunID:            c.run.ID,
		Owner:            owner(),
		Expires:          deadline,
		AMI:              c.ami,
		InstanceProfile:  c.cs.cfg.InstanceProfile,
		SecurityGroupIDs: c.cs.cfg.SecurityGroups,
		SubnetIDs:        c.cs.cfg.Subnets,
		UserData:         ud,
		Offers:           fallbackOffers(c.chosen, c.plan.Options),
		TargetVCPUs:      c.chosen.Count * c.chosen.Offer.Type.VCPUs,
		MaxPerHour:       c.chosen.PerHour() * (1 + provision.CostSlack),
		AllowSpot:        slices.Contains(markets, provision.Spot),
		AllowOnDemand:    slices.Contains(markets, provision.OnDemand),
		Logger:           slog.Default(),
	}
	fmt.Fprintf(c.human, "launching %d × %s; instances end themselves by %s at the latest\n", c.chosen.Count, c.chosen.Offer.Type.Name, deadline.Local().Format("15:04 MST"))
	launched, err := provision.Launch(ctx, c.cs.api, spec)
	if err != nil {
		// Launch keeps what it launched only in its result; whatever
		// happened, make sure nothing of the run is left running.
		derr := c.down(ctx)
		var qe *provision.QuotaError
		switch {
		case derr != nil:
			return fmt.Errorf("launching the fleet: %w; and then: %w", err, derr)
		case errors.As(err, &qe):
			return usageError{fmt.Errorf("launching the fleet: %w", err)}
		case ctx.Err() != nil:
			return exitError{code: exitInterrupted, msg: "interrupted while launching; nothing is left running"}
		}
		return fmt.Errorf("launching the fleet: %w (nothing is left running)", err)
	}
	for _, n := range launched.Notes {
		fmt.Fprintln(c.human, "note:", n)
	}
	fmt.Fprintf(c.human, "launched %s (%d vCPUs, %s/h): %s\n", countOf(len(launched.Instances), "instance"), launched.VCPUs, provision.FormatDollars(launched.PerHour), strings.Join(launched.IDs(), " "))
	if c.o.detach {
		fmt.Fprintf(c.human, "detached: follow it with burst watch %s; burst results %s collects; burst down %s ends it early\n", c.run.Location(), c.run.Location(), c.run.ID)
		if c.o.json {
			return writeJSON(c.o.g.io.Out, map[string]any{"run": c.run.ID, "location": c.run.Location(), "total": len(c.man.Tasks), "state": "launched", "instances": launched.IDs()})
		}
		return nil
	}

	meter := provision.NewMeter(launched.Instances)
	state, followErr := c.follow(ctx, coll, meter, start)
	downErr := c.down(ctx)
	now := time.Now()
	if list, err := provision.RunInstances(context.WithoutCancel(ctx), c.cs.api, c.run.ID, slog.Default()); err == nil {
		meter.Observe(list, now)
	}

	// Collect what the fleet finished.
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	prog, collErr := c.run.ReadProgress(cctx, c.man)
	if collErr == nil {
		_, collErr = coll.CollectAll(cctx, prog)
	}
	if err := coll.Close(); err != nil && collErr == nil {
		collErr = err
	}
	s := cloudSummary{
		runSummary: runSummary{
			Run: c.run.ID, State: prog.State, Total: len(c.man.Tasks), OK: prog.OK, Failed: prog.Failed,
			Unfinish: len(c.man.Tasks) - prog.Done(), DurationS: round1(now.Sub(start)),
			Out: c.out, Results: filepath.Join(c.out, "results.jsonl"), Store: c.run.Store.Location(),
		},
		Instances: len(meter.Seen()),
		Spent:     meter.Spent(now),
	}
	if state != "" {
		s.State = state
	}
	(&localRun{}).report(c.human, s.runSummary)
	fmt.Fprintf(c.human, "fleet:   %s, about %s, all terminated\n", countOf(s.Instances, "instance"), provision.FormatDollars(s.Spent))
	if c.o.json {
		_ = writeJSON(c.o.g.io.Out, s)
	}
	switch {
	case downErr != nil:
		return downErr
	case followErr != nil && ctx.Err() != nil:
		return exitError{code: exitInterrupted, msg: fmt.Sprintf("interrupted: %d of %d tasks finished, and the fleet is terminated; burst worker %s finishes the rest here", prog.Done(), len(c.man.Tasks), c.run.Location())}
	case followErr != nil:
		return fmt.Errorf("run %s: %w (the fleet is terminated; burst worker %s finishes the rest here)", c.run.ID, followErr, c.run.Location())
	case collErr != nil:
		return fmt.Errorf("collecting results: %w (burst results %s tries again)", collErr, c.run.Location())
	case s.Unfinish > 0:
		return exitError{code: exitTaskFailed, msg: fmt.Sprintf("run %s %s with %d of %d tasks unfinished; burst worker %s finishes them here", c.run.ID, s.State, s.Unfinish, s.Total, c.run.Location())}
	case s.Failed > 0:
		return exitError{code: exitTaskFailed}
	}
	return nil
}

// Run states that only a cloud run has.
const (
	stateBudget = "stopped at the budget"
	stateGone   = "stopped: every instance ended"
)

// follow shows the run's progress, collecting results as they arrive,
// until it is done or cancelled, every instance has ended, the budget is
// spent, or ctx ends. It returns a state when the run stopped for a
// reason of the fleet's.
func (c *cloudRun) follow(ctx context.Context, coll *staging.Collector, meter *provision.Meter, start time.Time) (string, error) {
	io := c.o.g.io
	view := newProgressView(c.human, io.OutTTY && !c.o.json, io.Width, 0)
	view.every = max(10*time.Second, c.o.poll)
	budget := c.plan.Budget
	for {
		p, err := c.run.ReadProgress(ctx, c.man)
		if err != nil {
			return "", err
		}
		if _, err := coll.CollectAll(ctx, p); err != nil {
			return "", fmt.Errorf("collecting results: %w", err)
		}
		now := time.Now()
		list, err := provision.RunInstances(ctx, c.cs.api, c.run.ID, slog.Default())
		if err != nil {
			return "", err
		}
		meter.Observe(list, now)
		cnt := counts{Total: p.Total, OK: p.OK, Failed: p.Failed, Running: p.Running, Cloud: true, Instances: meter.Live(), Spent: meter.Spent(now)}
		view.Update(cnt)
		switch {
		case p.State == staging.StateDone || p.State == staging.StateCancelled:
			view.Done(cnt)
			return "", nil
		case meter.Live() == 0 && now.Sub(start) > time.Second:
			view.Done(cnt)
			return stateGone, nil
		case budget > 0 && meter.Spent(now)+meter.PerHour()*(c.o.poll+time.Minute).Hours() >= budget:
			// Another poll could cross the budget: stop here, keeping
			// everything finished so far.
			view.Done(cnt)
			fmt.Fprintf(c.human, "budget %s nearly spent (%s so far): ending the fleet\n", provision.FormatDollars(budget), provision.FormatDollars(meter.Spent(now)))
			return stateBudget, nil
		}
		select {
		case <-ctx.Done():
			view.Done(cnt)
			return "", ctx.Err()
		case <-time.After(c.o.poll):
		}
	}
}

// down terminates every instance of the run and waits until they are
// gone, with a context of its own: it runs after Ctrl-C too.
func (c *cloudRun) down(ctx context.Context) error {
	dctx, cancel := cleanupContext(ctx)
	defer cancel()
	res, err := provision.Down(dctx, c.cs.api, c.run.ID, provision.DownOptions{Poll: min(c.o.poll, 5*time.Second), Progress: teardownProgress(c.human), Logger: slog.Default()})
	if err != nil {
		return stillRunning(c.run.ID, err)
	}
	if len(res.Instances) > 0 {
		fmt.Fprintf(c.human, "terminated %s\n", countOf(len(res.Instances), "instance"))
	}
	return nil
}

// fallbackOffers lists the offers a launch may use: the chosen one first,
// then those of the other options, each once.
func fallbackOffers(chosen provision.Option, all []provision.Option) []provision.Offer {
	out := []provision.Offer{chosen.Offer}
	for _, o := range all {
		if !slices.ContainsFunc(out, func(x provision.Offer) bool { return x.Type.Name == o.Offer.Type.Name && x.Market == o.Offer.Market }) {
			out = append(out, o.Offer)
		}
	}
	return out
}

// workersPerInstance is the --workers an instance's worker runs with:
// zero (one per core) unless memory limits it to fewer.
func workersPerInstance(o provision.Option) int {
	if per := o.PerInstance(); per < o.Offer.Type.VCPUs {
		return per
	}
	return 0
}

// owner names who launched a fleet, for its burst:owner tag.
func owner() string {
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		name += "@" + h
	}
	return name
}
