package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/slicerburst/burst/images"
	"github.com/slicerburst/burst/provision"
	"github.com/slicerburst/burst/staging"
)

// runCloudSubmit sends a run to a fleet: it checks everything it can
// before anything is staged or launched (flags, configuration, the quote,
// the image), asks, stages the run on the configuration's S3 store, and
// hands it to provision's cloud run, which launches, follows, replaces
// and tears down; this renders what it reports.
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

	var probe func(context.Context) (provision.ProbeResult, error)
	if o.plan.probe {
		if probe, err = probeFirst(o.g.io.Err, o.script, o.python, inputs, o.shared); err != nil {
			return err
		}
	}
	q, err := o.plan.quote(ctx, cs, len(inputs), probe)
	if err != nil {
		return quoteError(human, err)
	}
	chosen := q.Chosen()

	ami, err := o.image(ctx, cs)
	if err != nil {
		return err
	}
	fmt.Fprintf(human, "%d tasks from %s, %s each: %d × %s (%s) in %s, about %s and %s\n",
		len(inputs), source, provision.FormatDuration(q.TaskTime), chosen.Count, chosen.Offer.Type.Name, chosen.Offer.Market,
		cs.region, provision.FormatDuration(chosen.Makespan), provision.FormatDollars(chosen.Cost))
	for _, n := range q.Notes {
		fmt.Fprintln(human, "note:", n)
	}
	if !o.yes {
		ok, err := confirm(o.g.io.In, human, fmt.Sprintf("launch %s (image %s)?", countOf(chosen.Count, "instance"), ami))
		if err != nil || !ok {
			return exitError{code: exitUsage, msg: "nothing was launched"}
		}
	}

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
	// Results are collected as they arrive; an --out that cannot take
	// them is found out before any money is spent.
	coll, err := staging.NewCollector(run, man, out)
	if err != nil {
		return err
	}
	defer coll.Close()

	io := o.g.io
	view := newCloudView(human, io.OutTTY && !o.json, io.Width, max(10*time.Second, o.poll))
	cr, err := provision.NewCloudRun(provision.CloudRunSpec{
		EC2: cs.api, Run: run, Manifest: man, Quote: q,
		AMI: ami, InstanceProfile: cs.cfg.InstanceProfile, SecurityGroupIDs: cs.cfg.SecurityGroups, SubnetIDs: cs.cfg.Subnets,
		Region: cs.region, Owner: provision.Owner(), Collector: coll, Poll: o.poll,
		Events: view.event, Logger: slog.Default(),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(human, "launching %d × %s; instances end themselves by %s at the latest\n", chosen.Count, chosen.Offer.Type.Name, cr.Deadline().Local().Format("15:04 MST"))
	if o.detach {
		launched, err := cr.Launch(ctx)
		if err != nil {
			return launchError(ctx, run.ID, err)
		}
		fmt.Fprintf(human, "detached: follow it with burst watch %s (--maintain replaces instances that end early); burst results %s collects; burst down %s ends it early\n", run.Location(), run.Location(), run.ID)
		if o.json {
			return writeJSON(o.g.io.Out, map[string]any{"run": run.ID, "location": run.Location(), "total": len(man.Tasks), "state": "launched", "instances": launched.IDs()})
		}
		return nil
	}

	start := time.Now()
	res, err := cr.Execute(ctx)
	if res == nil {
		return launchError(ctx, run.ID, err)
	}
	if cerr := coll.Close(); cerr != nil && res.CollectErr == nil {
		res.CollectErr = cerr
	}
	return reportCloud(o, view, run, man, out, res, err, time.Since(start))
}

// image is the worker image: --ami, else the configuration's, else the
// newest burst image of this protocol in the region.
func (o *submitOptions) image(ctx context.Context, cs *cloudSession) (string, error) {
	ami := o.ami
	if ami == "" {
		ami = cs.cfg.AMI
	}
	if ami != "" {
		if !strings.HasPrefix(ami, "ami-") {
			return "", usageErrorf("--ami %q is not an image id (ami-...)", ami)
		}
		return ami, nil
	}
	img, err := images.Newest(ctx, cs.api, cs.region, staging.Protocol)
	if errors.Is(err, images.ErrNoImage) {
		return "", usageError{err}
	}
	if err != nil {
		return "", fmt.Errorf("looking for the worker image: %w", err)
	}
	return img.ID, nil
}

// quoteError renders a quote's refusal: the nearest options, and a usage
// error.
func quoteError(w io.Writer, err error) error {
	var np *provision.NoPlanError
	switch {
	case errors.As(err, &np):
		fmt.Fprintln(w, "nearest options:")
		writePlanTable(w, np.Nearest, false)
		return usageError{np}
	case errors.Is(err, provision.ErrBudgetTooSmall), errors.Is(err, provision.ErrNoOffers):
		return usageError{err}
	}
	var ee exitError
	var ue usageError
	if errors.As(err, &ee) || errors.As(err, &ue) {
		return err
	}
	return fmt.Errorf("planning the fleet: %w", err)
}

// launchError maps a failed launch to its exit: a quota is the user's to
// raise, an interrupt is 130.
func launchError(ctx context.Context, runID string, err error) error {
	var qe *provision.QuotaError
	var sr *provision.StillRunningError
	switch {
	case errors.As(err, &sr):
		return stillRunning(runID, err)
	case errors.As(err, &qe):
		return usageError{err}
	case ctx.Err() != nil:
		return exitError{code: exitInterrupted, msg: "interrupted while launching; nothing is left running"}
	}
	return err
}

// cloudSummary is a cloud run's final report, printed as JSON with --json.
type cloudSummary struct {
	runSummary
	Instances int     `json:"instances"`
	Spent     float64 `json:"spent_usd"`
}

// reportCloud prints how a cloud run ended and maps it to an exit.
func reportCloud(o *submitOptions, view *cloudView, run *staging.Run, man *staging.Manifest, out string, res *provision.CloudResult, err error, took time.Duration) error {
	p := res.Progress
	s := cloudSummary{
		runSummary: runSummary{
			Run: run.ID, State: res.State, Total: len(man.Tasks), OK: p.OK, Failed: p.Failed,
			Unfinish: len(man.Tasks) - p.Done(), DurationS: round1(took),
			Out: out, Results: filepath.Join(out, "results.jsonl"), Store: run.Store.Location(),
		},
		Instances: res.Instances,
		Spent:     res.Spent,
	}
	human := view.w
	(&localRun{}).report(human, s.runSummary)
	ended := "all terminated"
	if err != nil && !errors.Is(err, context.Canceled) {
		ended = "teardown failed"
	}
	fmt.Fprintf(human, "fleet:   %s, about %s, %s\n", countOf(s.Instances, "instance"), provision.FormatDollars(s.Spent), ended)
	if o.json {
		_ = writeJSON(o.g.io.Out, s)
	}
	var sr *provision.StillRunningError
	switch {
	case errors.As(err, &sr):
		return stillRunning(run.ID, err)
	case errors.Is(err, context.Canceled):
		return exitError{code: exitInterrupted, msg: fmt.Sprintf("interrupted: %d of %d tasks finished, and the fleet is terminated; burst worker %s finishes the rest here", p.Done(), len(man.Tasks), run.Location())}
	case err != nil:
		return fmt.Errorf("run %s: %w\ninstances of the run may still be running: end them with burst down %s", run.ID, err, run.ID)
	case res.CollectErr != nil:
		return fmt.Errorf("collecting results: %w (burst results %s tries again)", res.CollectErr, run.Location())
	case s.Unfinish > 0:
		return exitError{code: exitTaskFailed, msg: fmt.Sprintf("run %s %s with %d of %d tasks unfinished; burst worker %s finishes them here", run.ID, s.State, s.Unfinish, s.Total, run.Location())}
	case s.Failed > 0:
		return exitError{code: exitTaskFailed}
	}
	return nil
}

// cloudView renders a cloud run's events: progress on a bar or in plain
// lines, notes and faults as lines of their own.
type cloudView struct {
	w        io.Writer
	progress *progressView
	last     counts
	teardown int
	// lastFault and faultAt rate-limit fault lines: one a minute for the
	// same fault.
	lastFault string
	faultAt   time.Time
}

func newCloudView(w io.Writer, tty bool, width int, every time.Duration) *cloudView {
	v := &cloudView{w: w, progress: newProgressView(w, tty, width, 0), teardown: -1}
	v.progress.every = every
	return v
}

func (v *cloudView) line(format string, args ...any) {
	if v.progress.tty && v.progress.drawn {
		fmt.Fprint(v.w, "\r\x1b[K")
	}
	fmt.Fprintf(v.w, format+"\n", args...)
}

func (v *cloudView) event(e provision.Event) {
	switch e.Kind {
	case provision.EventNote:
		v.line("%s", e.Message)
	case provision.EventLaunched:
		for _, n := range e.Launched.Notes {
			v.line("note: %s", n)
		}
		v.line("launched %s (%d vCPUs, %s/h): %s", countOf(len(e.Launched.Instances), "instance"), e.Launched.VCPUs, provision.FormatDollars(e.Launched.PerHour), strings.Join(e.Launched.IDs(), " "))
	case provision.EventProgress:
		p := e.Progress
		v.last = counts{Total: p.Total, OK: p.OK, Failed: p.Failed, Running: p.Running, Cloud: true, Instances: e.Instances, Spent: e.Spent}
		v.progress.Update(v.last)
	case provision.EventFault:
		if e.Message != v.lastFault || time.Since(v.faultAt) >= time.Minute {
			v.line("warning: %s failed (%v); retrying, the fleet is untouched", e.Message, e.Err)
			v.lastFault, v.faultAt = e.Message, time.Now()
		}
	case provision.EventStopping:
		v.progress.Done(v.last)
		v.line("%s", e.Message)
	case provision.EventTeardown:
		if e.Teardown.Terminated != v.teardown {
			v.line("waiting for instances to terminate: %d of %d terminated", e.Teardown.Terminated, e.Teardown.Total)
			v.teardown = e.Teardown.Terminated
		}
	}
}

// runMaintain follows a detached cloud run and keeps its fleet at its
// capacity (burst watch --maintain).
func runMaintain(ctx context.Context, g *globalOptions, arg string, every time.Duration) error {
	if every < 100*time.Millisecond {
		return usageErrorf("--every must be at least 100ms")
	}
	run, man, err := g.openRun(ctx, arg)
	if err != nil {
		return err
	}
	rec, err := provision.LoadFleetRecord(ctx, run)
	if errors.Is(err, provision.ErrNoFleet) {
		return usageErrorf("--maintain: run %s %v", run.ID, err)
	}
	if err != nil {
		return err
	}
	cs, err := g.openCloud(ctx, false)
	if err != nil {
		return err
	}
	view := newCloudView(g.io.Out, g.io.OutTTY, g.io.Width, max(10*time.Second, every))
	res, err := provision.Maintain(ctx, provision.MaintainSpec{
		EC2: cs.api, Run: run, Manifest: man, Record: rec, Poll: every,
		Events: view.event, Logger: slog.Default(),
	})
	view.progress.Done(view.last)
	if errors.Is(err, context.Canceled) {
		return exitError{code: exitInterrupted, msg: "interrupted: the fleet is untouched and ends itself by its deadline"}
	}
	if err != nil {
		return err
	}
	p := res.Progress
	fmt.Fprintf(g.io.Out, "run %s %s: %d ok, %d failed of %d; its instances cost about %s\n", run.ID, res.State, p.OK, p.Failed, p.Total, provision.FormatDollars(res.Spent))
	if p.Failed > 0 || p.Done() < p.Total {
		return exitError{code: exitTaskFailed}
	}
	return nil
}
