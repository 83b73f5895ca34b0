package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/slicerburst/burst/staging"
)

// Clock is the time a cloud run follows: the real one, or a test's.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// RealClock is the machine's clock.
var RealClock Clock = realClock{}

// Collector takes a run's finished results into --out as they arrive
// (staging.Collector). An error leaves the results in the store, to be
// collected at the next call.
type Collector interface {
	CollectAll(ctx context.Context, p staging.Progress) (int, error)
}

// ProgressReader reads a run's progress from its store (*staging.Run).
type ProgressReader interface {
	ReadProgress(ctx context.Context, m *staging.Manifest) (staging.Progress, error)
}

// Run states that only a cloud run has: why the fleet was ended before
// the run was done.
const (
	StateBudget   = "stopped at the budget"
	StateDeadline = "stopped at the deadline"
	StateGone     = "stopped: every instance ended"
)

// EventKind says what a cloud run's Event reports.
type EventKind int

const (
	// EventNote is a line for people (Message).
	EventNote EventKind = iota
	// EventLaunched: instances were launched (Launched), at the start or
	// as replacements.
	EventLaunched
	// EventProgress: the run's state as last read (Progress, Instances,
	// Spent).
	EventProgress
	// EventFault: something failed and is retried (Message, Err); the
	// fleet is not touched.
	EventFault
	// EventStopping: the fleet is being ended (Message says why).
	EventStopping
	// EventTeardown: a wait for termination (Teardown).
	EventTeardown
)

// Event is what a cloud run reports as it goes, for the CLI to render.
type Event struct {
	Kind      EventKind
	Message   string
	Err       error
	Progress  staging.Progress
	Instances int
	Spent     float64
	Launched  *Launched
	Teardown  TeardownProgress
}

// CloudRunSpec is a staged run to send to a fleet, as a quote sized it.
type CloudRunSpec struct {
	EC2      EC2API
	Run      *staging.Run
	Manifest *staging.Manifest
	Quote    *Quote
	// AMI, InstanceProfile, SecurityGroupIDs and SubnetIDs are as in
	// LaunchSpec.
	AMI              string
	InstanceProfile  string
	SecurityGroupIDs []string
	SubnetIDs        []string
	// Region is the store's and the fleet's region.
	Region string
	// Owner is the burst:owner tag.
	Owner string
	// Collector, when set, collects results as they arrive.
	Collector Collector
	// Progress reads the run's progress; Run when nil.
	Progress ProgressReader
	// Poll is the interval between looks at the run and the fleet; 5 s
	// when zero.
	Poll time.Duration
	// NoReplace: instances that end while work remains are not replaced.
	NoReplace bool
	// Clock is RealClock when nil.
	Clock Clock
	// Events, when set, receives the run's events, from one goroutine.
	Events func(Event)
	// Logger receives diagnostics; slog.Default() when nil.
	Logger *slog.Logger
}

// CloudRun is a run on its way through a fleet: Launch, Follow (which
// replaces lost capacity), and Teardown, which runs the cleanups that the
// other steps registered, in reverse order, whatever happened. Execute
// does all three. A CloudRun is used from one goroutine.
type CloudRun struct {
	spec     CloudRunSpec
	clock    Clock
	log      *slog.Logger
	poll     time.Duration
	start    time.Time
	deadline time.Time
	launch   LaunchSpec
	meter    *Meter
	// ids are every instance launched for the run, for teardown by id.
	ids      []string
	attempt  int
	cleanups cleanups
	// interrupted: a launch did not return normally, so EC2 may hold
	// instances that no answer named: teardown searches by tag a while.
	interrupted bool
	// record is what the run's fleet.json says.
	record *FleetRecord
}

// CloudResult is how a cloud run ended.
type CloudResult struct {
	// State is the store's state of the run, or one of StateBudget,
	// StateDeadline and StateGone when the fleet stopped it.
	State    string
	Progress staging.Progress
	// Instances is how many instances the run had, Spent what they cost
	// (as EC2 bills, at the prices they were counted at).
	Instances int
	Spent     float64
	Deadline  time.Time
	// CollectErr is a failure to collect the results at the end.
	CollectErr error
}

// NewCloudRun checks spec and returns its run, with the instances' hard
// deadline fixed from now (see Deadline).
func NewCloudRun(spec CloudRunSpec) (*CloudRun, error) {
	switch {
	case spec.EC2 == nil || spec.Run == nil || spec.Manifest == nil || spec.Quote == nil || len(spec.Quote.Options) == 0:
		return nil, errors.New("cloud run: needs EC2, a run, its manifest and a quote with an option")
	}
	c := newCloudRun(spec)
	c.start = c.clock.Now()
	q := spec.Quote
	c.deadline = RunDeadline(c.start, q.MaxPerHour(), q.Budget, q.Chosen().Makespan, q.Deadline)
	ud, err := UserData(UserDataSpec{
		Run:      spec.Run.Location(),
		Region:   spec.Region,
		Deadline: c.deadline,
		Python:   spec.Manifest.Python,
		Workers:  q.WorkersPerInstance(),
	})
	if err != nil {
		return nil, fmt.Errorf("writing the instances' user data: %w", err)
	}
	chosen := q.Chosen()
	c.launch = LaunchSpec{
		RunID:            spec.Run.ID,
		Owner:            spec.Owner,
		Expires:          c.deadline,
		AMI:              spec.AMI,
		InstanceProfile:  spec.InstanceProfile,
		SecurityGroupIDs: spec.SecurityGroupIDs,
		SubnetIDs:        spec.SubnetIDs,
		UserData:         ud,
		Offers:           q.FallbackOffers(),
		TargetVCPUs:      chosen.Count * chosen.Offer.Type.VCPUs,
		MaxPerHour:       q.MaxPerHour(),
		SpotCap:          CostSlack,
		AllowSpot:        slices.Contains(q.Markets, Spot),
		AllowOnDemand:    slices.Contains(q.Markets, OnDemand),
		Logger:           c.log,
	}
	c.record = &FleetRecord{Launch: c.launch, Budget: q.Budget, Started: c.start, BootTime: q.BootTime}
	c.meter = NewMeter(nil)
	return c, nil
}

// Deadline is the instant by which every instance of the run ends itself,
// CLI or not.
func (c *CloudRun) Deadline() time.Time { return c.deadline }

// Meter is what the run's instances have cost so far.
func (c *CloudRun) Meter() *Meter { return c.meter }

func (c *CloudRun) emit(e Event) {
	if c.spec.Events != nil {
		c.spec.Events(e)
	}
}

// RunDeadline returns the instant after which a run's instances must be
// gone: when the budget is spent at the highest rate the launch may reach
// (maxPerHour), at most twice the quoted makespan plus half an hour after
// launch (so that a run with a large budget or none still ends), and
// never past the user's deadline (0: none) from launch.
func RunDeadline(launch time.Time, maxPerHour, budget float64, makespan, deadline time.Duration) time.Time {
	limit := 2*makespan + 30*time.Minute
	if budget > 0 && maxPerHour > 0 {
		if hours := budget / maxPerHour; hours < limit.Hours() {
			limit = time.Duration(hours * float64(time.Hour))
		}
	}
	if deadline > 0 && deadline < limit {
		limit = deadline
	}
	return launch.Add(limit).Truncate(time.Second)
}

// Launch launches the planned fleet and registers its teardown. It
// records the fleet's limits in the run store (fleet.json) first, so that
// burst watch --maintain can replace capacity within them. On an error,
// whatever was launched is ended before Launch returns.
func (c *CloudRun) Launch(ctx context.Context) (*Launched, error) {
	c.cleanups.add("ending the fleet", c.down)
	if err := c.record.save(ctx, c.spec.Run); err != nil {
		_ = c.Teardown(ctx)
		return nil, err
	}
	launched, err := c.launchOnce(ctx, c.launch)
	if err != nil {
		if derr := c.Teardown(ctx); derr != nil {
			return launched, fmt.Errorf("launching the fleet: %w; and then: %w", err, derr)
		}
		return launched, fmt.Errorf("launching the fleet: %w (nothing is left running)", err)
	}
	return launched, nil
}

// launchOnce calls Launch, keeping every id it names for the teardown.
func (c *CloudRun) launchOnce(ctx context.Context, spec LaunchSpec) (*Launched, error) {
	spec.Attempt = c.attempt
	c.attempt++
	launched, err := Launch(ctx, c.spec.EC2, spec)
	if err != nil {
		// EC2 may hold instances that no answer named.
		c.interrupted = true
	}
	if launched != nil {
		for _, in := range launched.Instances {
			if !slices.Contains(c.ids, in.ID) {
				c.ids = append(c.ids, in.ID)
			}
		}
		c.meter.Add(launched.Instances)
	}
	if err == nil {
		c.emit(Event{Kind: EventLaunched, Launched: launched})
	}
	return launched, err
}

// Teardown runs the registered cleanups in reverse order, on a context of
// their own (not cancelled with ctx, bounded), and returns their errors.
// It may be called more than once: the cleanups run once.
func (c *CloudRun) Teardown(ctx context.Context) error {
	return c.cleanups.run(ctx, 15*time.Minute)
}

// down ends every instance of the run: those launched, by id, and any
// other with the run's tag.
func (c *CloudRun) down(ctx context.Context) error {
	opts := DownOptions{
		Poll:     min(c.poll, 5*time.Second),
		IDs:      slices.Clone(c.ids),
		Progress: func(p TeardownProgress) { c.emit(Event{Kind: EventTeardown, Teardown: p}) },
		Logger:   c.log,
	}
	if c.interrupted {
		opts.Grace = TagGrace
	}
	res, err := Down(ctx, c.spec.EC2, c.spec.Run.ID, opts)
	now := c.clock.Now()
	if list, lerr := RunInstances(ctx, c.spec.EC2, c.spec.Run.ID, c.log); lerr == nil {
		c.meter.Observe(list, now)
	}
	for _, in := range res.Instances {
		c.meter.End(in.ID, now)
	}
	return err
}

// Execute launches the fleet, follows the run until it ends (see Follow),
// ends the fleet whatever happened, and collects what the fleet finished.
// The error is the launch's, Follow's (only ctx's end) or the teardown's;
// the result is set whenever the fleet was launched.
func (c *CloudRun) Execute(ctx context.Context) (*CloudResult, error) {
	if _, err := c.Launch(ctx); err != nil {
		return nil, err
	}
	state, followErr := c.Follow(ctx)
	c.emit(Event{Kind: EventStopping, Message: stoppingMessage(state, followErr)})
	downErr := c.Teardown(ctx)
	res := c.finish(ctx, state)
	switch {
	case downErr != nil:
		return res, downErr
	case followErr != nil:
		return res, followErr
	}
	return res, nil
}

func stoppingMessage(state string, err error) string {
	switch {
	case err != nil:
		return "interrupted: ending the fleet"
	case state == "":
		return "the run has ended: ending the fleet"
	}
	return state + ": ending the fleet"
}

// finish reads the run's last state and collects what is left to collect.
func (c *CloudRun) finish(ctx context.Context, state string) *CloudResult {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
	defer cancel()
	now := c.clock.Now()
	res := &CloudResult{Instances: len(c.meter.Seen()), Spent: c.meter.Spent(now), Deadline: c.deadline}
	p, err := c.spec.Progress.ReadProgress(cctx, c.spec.Manifest)
	res.Progress, res.State = p, p.State
	if err == nil && c.spec.Collector != nil {
		_, err = c.spec.Collector.CollectAll(cctx, p)
	}
	res.CollectErr = err
	if state != "" {
		res.State = state
	}
	return res
}

// maxBackoff bounds the wait between looks after failures, which grows
// from the poll interval to at most 16 times it.
const maxBackoff = time.Minute

// Follow watches the run and its fleet until the run is done or
// cancelled, the budget or the deadline is reached, or ctx ends; it
// collects results as they arrive and replaces instances that end while
// work remains (unless NoReplace). Errors of the store, of EC2 and of
// the collection are logged, reported as EventFault and retried with
// backoff: they never end the fleet. It returns the state that stopped
// the fleet (StateBudget, StateDeadline, StateGone; "" when the run
// ended), or ctx's error.
func (c *CloudRun) Follow(ctx context.Context) (string, error) {
	f := follower{c: c}
	for {
		state, done := f.step(ctx)
		if done {
			return state, nil
		}
		wait := c.poll
		if f.failures > 0 {
			wait = min(maxBackoff, c.poll<<min(f.failures, 4))
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-c.clock.After(wait):
		}
	}
}

// follower is the state of one Follow.
type follower struct {
	c *CloudRun
	// last is the progress last read; fresh says it was read at this
	// step.
	last     staging.Progress
	haveLast bool
	// failures counts the steps in a row with an error.
	failures int
	// listed: EC2 listed the run's instances at least once since launch.
	listed bool
	// nextReplace is the earliest time of another replacement attempt.
	nextReplace time.Time
	// replaceFailures counts replacement attempts in a row that got
	// nothing.
	replaceFailures int
}

func (f *follower) fault(what string, err error) {
	f.c.log.Warn(what+": retrying", "err", err)
	f.c.emit(Event{Kind: EventFault, Message: what, Err: err})
}

// step looks once at the run and the fleet and acts; done says the fleet
// must end, with state.
func (f *follower) step(ctx context.Context) (state string, done bool) {
	c := f.c
	failed := false
	p, err := c.spec.Progress.ReadProgress(ctx, c.spec.Manifest)
	fresh := err == nil
	if err != nil {
		if ctx.Err() != nil {
			return "", false
		}
		failed = true
		f.fault("reading the run's progress", err)
	} else {
		f.last, f.haveLast = p, true
		if c.spec.Collector != nil {
			if _, err := c.spec.Collector.CollectAll(ctx, p); err != nil && ctx.Err() == nil {
				failed = true
				f.fault("collecting results", err)
			}
		}
	}
	// A listing that EC2 keeps failing is given up after a while: the
	// loop retries it, and meanwhile keeps following the store.
	lctx, cancel := context.WithTimeout(ctx, max(2*c.poll, 5*time.Second))
	list, err := RunInstances(lctx, c.spec.EC2, c.spec.Run.ID, c.log)
	cancel()
	now := c.clock.Now()
	if err != nil {
		if ctx.Err() != nil {
			return "", false
		}
		failed = true
		f.fault("listing the fleet's instances", err)
	} else {
		c.meter.Observe(list, now)
		f.listed = f.listed || len(list) > 0
	}
	if failed {
		f.failures++
	} else {
		f.failures = 0
	}
	spent := c.meter.Spent(now)
	c.emit(Event{Kind: EventProgress, Progress: f.last, Instances: c.meter.Live(), Spent: spent})

	budget := c.spec.Quote.Budget
	switch {
	case f.haveLast && (f.last.State == staging.StateDone || f.last.State == staging.StateCancelled):
		return "", true
	case budget > 0 && spent+c.meter.PerHour()*(c.poll+time.Minute).Hours() >= budget:
		// Another look could cross the budget: stop here, keeping
		// everything finished so far.
		c.emit(Event{Kind: EventNote, Message: fmt.Sprintf("budget %s nearly spent (%s so far)", FormatDollars(budget), FormatDollars(spent))})
		return StateBudget, true
	case !now.Before(c.deadline):
		return StateDeadline, true
	}
	if err == nil && fresh {
		if gone := f.maintain(ctx, now); gone {
			return StateGone, true
		}
	}
	return "", false
}

// maintain replaces capacity that ended while work remains, and reports
// whether the fleet is gone for good (nothing live, nothing launched).
func (f *follower) maintain(ctx context.Context, now time.Time) bool {
	c := f.c
	live := c.meter.Live()
	if !f.listed && live > 0 {
		return false // EC2 does not list the fleet yet
	}
	if live > 0 && f.last.Queued == 0 {
		return false // the live instances hold all the work left
	}
	liveVCPUs := c.meter.LiveVCPUs()
	missing := c.launch.TargetVCPUs - liveVCPUs
	if missing <= 0 {
		return false
	}
	if live == 0 {
		// The last workers may have finished the run and ended their
		// instances since the progress was read: read it again before
		// launching anything.
		p, err := c.spec.Progress.ReadProgress(ctx, c.spec.Manifest)
		if err != nil {
			return false
		}
		f.last = p
		if p.State == staging.StateDone || p.State == staging.StateCancelled {
			return false
		}
	}
	// No more capacity than the queue can use.
	if live > 0 {
		missing = min(missing, max(f.last.Queued, 1))
	}
	if c.spec.NoReplace {
		return live == 0
	}
	if now.Before(f.nextReplace) {
		return false
	}
	ok := f.replace(ctx, now, missing)
	if !ok && live == 0 && f.replaceFailures >= replaceTries {
		return true
	}
	return false
}

// replaceTries is how many replacement attempts in a row may get nothing
// while no instance is live, before the fleet counts as gone.
const replaceTries = 3

// replace launches instances for missing vCPUs within the rate and the
// time left, other types first after a spot instance ended, and reports
// whether it launched anything.
func (f *follower) replace(ctx context.Context, now time.Time, missing int) bool {
	c := f.c
	f.nextReplace = now.Add(max(c.poll, 10*time.Second) << min(f.replaceFailures, 5))
	spec, why := c.replacementSpec(now, missing, f.replaceFailures == 0)
	if why != "" {
		f.replaceFailures++
		c.log.Info("not replacing lost capacity", "reason", why)
		c.emit(Event{Kind: EventNote, Message: "not replacing lost capacity: " + why})
		return false
	}
	c.emit(Event{Kind: EventNote, Message: fmt.Sprintf("the fleet is %d vCPUs short with work left: launching replacements (up to %s/h more)", missing, FormatDollars(spec.MaxPerHour))})
	launched, err := c.launchOnce(ctx, spec)
	if err != nil {
		f.replaceFailures++
		if ctx.Err() == nil {
			f.fault("launching replacements", err)
		}
		return false
	}
	f.replaceFailures = 0
	c.emit(Event{Kind: EventNote, Message: fmt.Sprintf("launched %d replacement instances (%d vCPUs): %s", len(launched.Instances), launched.VCPUs, strings.Join(launched.IDs(), " "))})
	return true
}

// replacementSpec is the launch for missing vCPUs now, or why there is
// none: the rate left is the fleet's cap less what is live; the offers
// are the plan's, those of the types of spot instances that ended last;
// a first attempt avoids the pools (type and subnet) of those instances.
func (c *CloudRun) replacementSpec(now time.Time, missing int, first bool) (LaunchSpec, string) {
	spec := c.launch
	spec.TargetVCPUs = missing
	spec.MaxPerHour = c.launch.MaxPerHour - c.meter.PerHour()
	if left := c.deadline.Sub(now); left < c.record.BootTime+MinBilled {
		return spec, fmt.Sprintf("the run's deadline is %s away, too close to boot another instance", FormatDuration(left))
	}
	if spec.MaxPerHour <= 1e-9 {
		return spec, "the fleet's rate is at its cap"
	}
	lostPools := c.meter.EndedSpot()
	var lost []string
	for _, p := range lostPools {
		lost = append(lost, p.Type)
	}
	if first {
		// The first attempt after a spot interruption stays out of the
		// pools that were interrupted; later ones may use them again.
		spec.Avoid = append(slices.Clone(spec.Avoid), lostPools...)
	}
	spec.Offers = slices.Clone(c.launch.Offers)
	slices.SortStableFunc(spec.Offers, func(a, b Offer) int {
		la, lb := slices.Contains(lost, a.Type.Name), slices.Contains(lost, b.Type.Name)
		switch {
		case la == lb:
			return 0
		case lb:
			return -1
		}
		return 1
	})
	cheapest := math.Inf(1)
	for _, o := range spec.Offers {
		cheapest = min(cheapest, o.PerHour)
	}
	if cheapest > spec.MaxPerHour {
		return spec, fmt.Sprintf("no offer fits the %s/h left under the fleet's cap", FormatDollars(spec.MaxPerHour))
	}
	return spec, ""
}

// TagGrace is how long a teardown after an interrupted launch keeps
// searching by tag for instances that EC2 did not list yet.
var TagGrace = 30 * time.Second

// cleanups are teardown steps, run in reverse order of registration.
type cleanups struct {
	steps []cleanup
}

type cleanup struct {
	name string
	fn   func(context.Context) error
}

func (c *cleanups) add(name string, fn func(context.Context) error) {
	c.steps = append(c.steps, cleanup{name, fn})
}

// run runs every step, the last registered first, even when one fails,
// on a context that ctx's cancellation does not reach, bounded by
// timeout; each step runs once.
func (c *cleanups) run(ctx context.Context, timeout time.Duration) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	var errs []error
	for len(c.steps) > 0 {
		s := c.steps[len(c.steps)-1]
		c.steps = c.steps[:len(c.steps)-1]
		if err := s.fn(cctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
		}
	}
	return errors.Join(errs...)
}

// newCloudRun is a CloudRun of spec with its defaults applied: the run as
// its own progress, the real clock, the default logger, a 5 s poll.
func newCloudRun(spec CloudRunSpec) *CloudRun {
	if spec.Progress == nil {
		spec.Progress = spec.Run
	}
	c := &CloudRun{spec: spec, clock: spec.Clock, log: spec.Logger, poll: spec.Poll}
	if c.clock == nil {
		c.clock = RealClock
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.log = c.log.With("run", spec.Run.ID)
	if c.poll <= 0 {
		c.poll = 5 * time.Second
	}
	return c
}
