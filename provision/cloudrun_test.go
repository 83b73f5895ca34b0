package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/slicerburst/burst/staging"
)

// simClock is a fake clock that jumps ahead by whatever a caller waits
// for: a follow loop of hours runs in milliseconds, one step at a time.
type simClock struct {
	mu  sync.Mutex
	now time.Time
}

func newSimClock() *simClock { return &simClock{now: time.Now().Truncate(time.Second)} }

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *simClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func (c *simClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// simRun is a run's progress as its fleet makes it: each live instance
// of the fake finishes one task per vCPU per taskTime of the fake clock.
// down, when set, makes the store unreachable.
type simRun struct {
	f        *fleetFake
	clock    *simClock
	run      string
	total    int
	taskTime time.Duration

	mu   sync.Mutex
	done float64
	last time.Time
	down func(now time.Time) bool
	// exitAtEnd: when the last task finishes, the workers exit and their
	// instances end, and that read still sees the run one task short (it
	// read the store before the last commit).
	exitAtEnd bool
	ended     bool
}

func (s *simRun) ReadProgress(_ context.Context, m *staging.Manifest) (staging.Progress, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	vcpus := 0
	s.f.mu.Lock()
	s.f.expire()
	for _, i := range s.f.instances {
		if i.state != "terminated" && i.state != "shutting-down" && i.tags[TagRun] == s.run {
			vcpus += s.f.vcpus[i.typ]
		}
	}
	s.f.mu.Unlock()
	if !s.last.IsZero() {
		s.done = math.Min(float64(s.total), s.done+float64(vcpus)*now.Sub(s.last).Seconds()/s.taskTime.Seconds())
	}
	s.last = now
	if s.down != nil && s.down(now) {
		return staging.Progress{}, errors.New("dial tcp: connection refused (store unreachable)")
	}
	p := staging.Progress{Run: s.run, Total: s.total, OK: int(s.done), State: staging.StateRunning}
	if s.exitAtEnd && p.OK == s.total && !s.ended {
		s.ended = true
		s.f.mu.Lock()
		for _, i := range s.f.instances {
			if i.state != "terminated" {
				i.state, i.ended = "terminated", now
			}
		}
		s.f.mu.Unlock()
		p.OK--
	}
	p.Running = min(vcpus, s.total-p.OK)
	p.Queued = s.total - p.OK - p.Running
	p.Finished = map[string]bool{}
	for i := range p.OK {
		p.Finished[m.Tasks[i]] = true
	}
	if p.OK == s.total {
		p.State = staging.StateDone
	}
	return p, nil
}

// s3Named is a filesystem store that calls itself an S3 bucket, for the
// boot script.
type s3Named struct{ staging.Store }

func (s3Named) Location() string { return "s3://test-bucket/fleet" }

// countingCollector counts what it collected, failing while fail says so
// (a full disk).
type countingCollector struct {
	clock *simClock
	fail  func(now time.Time) bool
	got   map[string]bool
}

func (c *countingCollector) CollectAll(_ context.Context, p staging.Progress) (int, error) {
	if c.fail != nil && c.fail(c.clock.Now()) {
		return 0, errors.New("writing outputs/0001.pkl: no space left on device")
	}
	n := 0
	for id := range p.Finished {
		if !c.got[id] {
			c.got[id] = true
			n++
		}
	}
	return n, nil
}

// cloudTest is a cloud run on the fake EC2, with a simulated fleet.
type cloudTest struct {
	t      *testing.T
	f      *fleetFake
	clock  *simClock
	sim    *simRun
	coll   *countingCollector
	quote  *Quote
	events []Event
	spec   CloudRunSpec
}

// newCloudTest plans tasks of taskTime on testOffers() within budget
// (0: none) and prepares a cloud run of them.
func newCloudTest(t *testing.T, tasks int, taskTime time.Duration, budget float64, markets ...Market) *cloudTest {
	t.Helper()
	fastRetry(t)
	clock := newSimClock()
	f := newLaunchFake(testOffers())
	f.now = clock.Now
	if len(markets) == 0 {
		markets = []Market{Spot, OnDemand}
	}
	var offers []Offer
	for _, o := range testOffers() {
		for _, m := range markets {
			if o.Market == m {
				offers = append(offers, o)
			}
		}
	}
	opts, err := Plan(PlanInput{Tasks: tasks, TaskTime: taskTime, Budget: budget, Offers: offers, BootTime: time.Minute, MaxInstances: 4})
	if err != nil {
		t.Fatal(err)
	}
	q := &Quote{Region: "us-east-1", Tasks: tasks, TaskTime: taskTime, Budget: budget, Markets: markets, BootTime: time.Minute, Options: opts}
	fs, err := staging.OpenFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	run, err := staging.OpenRun(s3Named{fs}, testRun)
	if err != nil {
		t.Fatal(err)
	}
	man := &staging.Manifest{ID: testRun}
	for i := range tasks {
		man.Tasks = append(man.Tasks, fmt.Sprintf("%04d", i))
	}
	ct := &cloudTest{t: t, f: f, clock: clock, quote: q}
	ct.sim = &simRun{f: f, clock: clock, run: testRun, total: tasks, taskTime: taskTime}
	ct.coll = &countingCollector{clock: clock, got: map[string]bool{}}
	ct.spec = CloudRunSpec{
		EC2: f, Run: run, Manifest: man, Quote: q, Progress: ct.sim, Collector: ct.coll,
		AMI: "ami-0123456789abcdef0", InstanceProfile: "burst-worker", SubnetIDs: []string{"subnet-a", "subnet-b"},
		Region: "us-east-1", Owner: "ana", Poll: 5 * time.Second, Clock: clock,
		Events: func(e Event) { ct.events = append(ct.events, e) },
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
	return ct
}

func (ct *cloudTest) messages(kind EventKind) []string {
	var out []string
	for _, e := range ct.events {
		if e.Kind == kind {
			out = append(out, e.Message)
		}
	}
	return out
}

// execute runs the cloud run to its end, which must come without error.
func (ct *cloudTest) execute() *CloudResult {
	ct.t.Helper()
	cr, err := NewCloudRun(ct.spec)
	if err != nil {
		ct.t.Fatal(err)
	}
	res, err := cr.Execute(context.Background())
	if err != nil {
		ct.t.Fatal(err)
	}
	return res
}

// checkSpend asserts the budget invariant on what the fake EC2 billed:
// spend <= budget + one billing minute per instance.
func (ct *cloudTest) checkSpend() {
	ct.t.Helper()
	spent, minutes := ct.f.spend()
	if b := ct.quote.Budget; b > 0 && spent > b+minutes+1e-9 {
		ct.t.Errorf("EC2 billed $%.4f, over the budget of $%.4f plus a minute per instance ($%.4f)", spent, b, minutes)
	}
}

// A run that goes well: the planned fleet is launched, finishes the run,
// and is gone; spend stays within the budget.
func TestCloudRunFinishes(t *testing.T) {
	ct := newCloudTest(t, 200, time.Minute, 5)
	res := ct.execute()
	if res.State != staging.StateDone || len(ct.coll.got) != 200 {
		t.Fatalf("state %q, %d collected", res.State, len(ct.coll.got))
	}
	if live := ct.f.live(testRun); len(live) > 0 {
		t.Errorf("left running: %v", live)
	}
	if f := ct.messages(EventFault); len(f) > 0 {
		t.Errorf("faults in a clean run: %v", f)
	}
	ct.checkSpend()
}

// Faults on the laptop's side change nothing but the log: EC2 failing a
// third of its calls for a minute, the store unreachable for five
// minutes and a full --out disk for two never end the fleet, and the run
// finishes with every result collected.
func TestCloudRunRidesOutFaults(t *testing.T) {
	ct := newCloudTest(t, 400, time.Minute, 0)
	t0 := ct.clock.Now()
	window := func(from, to time.Duration) func(time.Time) bool {
		return func(now time.Time) bool { return !now.Before(t0.Add(from)) && now.Before(t0.Add(to)) }
	}
	n := 0
	flakyEC2 := window(2*time.Minute, 3*time.Minute)
	ct.f.flaky = func(method string) error {
		if method == "CreateFleet" || method == "CreateLaunchTemplate" || !flakyEC2(ct.clock.Now()) {
			return nil
		}
		switch n++; n % 3 {
		case 0:
			return fakeAPIErr("InternalError", "An internal error has occurred")
		case 1:
			if n%2 == 1 {
				return fakeAPIErr("RequestLimitExceeded", "Request limit exceeded.")
			}
		}
		return nil
	}
	// One failed call of a flaky minute fails all its retries: the
	// follow loop, not the SDK, must ride it out.
	ec2Retry = retryPolicy{attempts: 1}
	ct.sim.down = window(3*time.Minute, 8*time.Minute)
	ct.coll.fail = window(9*time.Minute, 11*time.Minute)
	res := ct.execute()
	if res.State != staging.StateDone || len(ct.coll.got) != 400 {
		t.Fatalf("state %q, %d of 400 collected", res.State, len(ct.coll.got))
	}
	faults := strings.Join(ct.messages(EventFault), "\n")
	for _, want := range []string{"listing the fleet's instances", "reading the run's progress", "collecting results"} {
		if !strings.Contains(faults, want) {
			t.Errorf("no fault reported for %q:\n%s", want, faults)
		}
	}
	// Nothing was terminated before the run was done.
	if len(ct.f.terminated) != 1 {
		t.Errorf("%d terminate calls, want one, at the end: %v", len(ct.f.terminated), ct.f.terminated)
	}
	if ct.f.calls["CreateFleet"] != 1 {
		t.Errorf("%d fleet requests: capacity was replaced though none was lost", ct.f.calls["CreateFleet"])
	}
	ct.checkSpend()
}

// An instance that ends without notice while work remains is replaced,
// by another type first after a spot instance ended, and the run
// finishes; spend stays within the budget.
func TestCloudRunReplacesLostCapacity(t *testing.T) {
	ct := newCloudTest(t, 300, time.Minute, 10, Spot)
	var killed string
	ct.sim.down = func(now time.Time) bool {
		// Kill one instance five minutes in (a read of the store is
		// where the test gets a word in).
		ct.f.mu.Lock()
		first := ""
		if len(ct.f.instances) > 0 && now.Sub(ct.f.instances[0].launched) > 5*time.Minute {
			first = ct.f.instances[0].id
		}
		ct.f.mu.Unlock()
		if killed == "" && first != "" {
			killed = first
			ct.f.end(killed)
		}
		return false
	}
	res := ct.execute()
	if killed == "" {
		t.Fatal("no instance was killed")
	}
	if res.State != staging.StateDone || len(ct.coll.got) != 300 {
		t.Fatalf("state %q, %d collected", res.State, len(ct.coll.got))
	}
	if ct.f.calls["CreateFleet"] < 2 {
		t.Fatalf("no replacement launched (%d fleet requests)", ct.f.calls["CreateFleet"])
	}
	notes := strings.Join(ct.messages(EventNote), "\n")
	if !strings.Contains(notes, "launching replacements") {
		t.Errorf("the replacement was not announced:\n%s", notes)
	}
	// The first replacement request stayed out of the lost pool, and
	// put the other types first.
	var lostType, lostSubnet string
	for _, i := range ct.f.instances {
		if i.id == killed {
			lostType, lostSubnet = i.typ, i.subnet
		}
	}
	replacement := ct.f.fleetInputs[1]
	ovs := replacement.LaunchTemplateConfigs[0].Overrides
	for _, ov := range ovs {
		if string(ov.InstanceType) == lostType && aws.ToString(ov.SubnetId) == lostSubnet {
			t.Errorf("the replacement asks again for the lost pool %s in %s", lostType, lostSubnet)
		}
		if string(ov.InstanceType) == lostType && *ov.Priority < *ovs[len(ovs)-1].Priority {
			t.Errorf("replacement prefers %s, the type that was lost", lostType)
		}
	}
	if live := ct.f.live(testRun); len(live) > 0 {
		t.Errorf("left running: %v", live)
	}
	ct.checkSpend()
}

// Workers that finish the run and end their instances between two looks
// of the follow are not replaced: the follow reads the run again before
// launching anything for a fleet that is gone.
func TestCloudRunNoReplacementAtTheEnd(t *testing.T) {
	ct := newCloudTest(t, 100, time.Minute, 5)
	ct.sim.exitAtEnd = true
	res := ct.execute()
	if !ct.sim.ended || res.State != staging.StateDone {
		t.Fatalf("ended %v, state %q", ct.sim.ended, res.State)
	}
	if n := ct.f.calls["CreateFleet"]; n != 1 {
		t.Errorf("%d fleet requests: replacements launched for a finished run", n)
	}
}

// Tasks that take three times longer than quoted: the follow ends the
// fleet before the budget is spent, keeping what was finished.
func TestCloudRunStopsAtBudget(t *testing.T) {
	ct := newCloudTest(t, 400, time.Minute, 0.2)
	ct.sim.taskTime = 3 * time.Minute
	res := ct.execute()
	if res.State != StateBudget {
		t.Fatalf("state %q, want %q", res.State, StateBudget)
	}
	if live := ct.f.live(testRun); len(live) > 0 {
		t.Errorf("left running: %v", live)
	}
	if res.Spent > ct.quote.Budget {
		t.Errorf("the meter says $%.4f, over the budget", res.Spent)
	}
	ct.checkSpend()
}

// The budget holds without the CLI: killed after any number of its EC2
// calls (no teardown then), with spot prices at their cap and one
// instance dying mid-run, the fleet ends itself and EC2 bills no more
// than the budget plus one billing minute per instance.
func TestCloudRunBudgetHoldsWhenCLIKilled(t *testing.T) {
	for _, market := range []Market{Spot, OnDemand} {
		// A run left alone tells how many EC2 calls the CLI makes; it is
		// then killed after a spread of those, from the first call of
		// the launch to its teardown.
		total := killedRun(t, market, math.MaxInt)
		if total < 50 {
			t.Fatalf("%s: a whole run makes only %d EC2 calls", market, total)
		}
		kills := []int{1, 2, 3, 4, 5, 6, 8}
		for i := 1; i <= 12; i++ {
			kills = append(kills, total*i/12)
		}
		for _, kill := range kills {
			t.Run(fmt.Sprintf("%s/after %d of %d calls", market, kill, total), func(t *testing.T) {
				killedRun(t, market, kill)
			})
		}
	}
}

// killedRun runs a cloud run whose CLI dies at its kill-th EC2 call, with
// tasks slower than quoted, spot prices at their cap and one instance
// dying ten minutes in, checks
// that EC2's bill two days later is within the budget plus a billing
// minute per instance, and returns how many EC2 calls the CLI made.
func killedRun(t *testing.T, market Market, kill int) int {
	t.Helper()
	// Tasks five times slower than quoted: the budget, not the run's
	// end, is what stops the fleet.
	ct := newCloudTest(t, 600, time.Minute, 0.5, market)
	ct.sim.taskTime = 5 * time.Minute
	calls := 0
	ct.f.flaky = func(string) error {
		if calls++; calls >= kill {
			ct.f.dead = true
		}
		return nil
	}
	ct.sim.down = func(now time.Time) bool {
		ct.f.mu.Lock()
		defer ct.f.mu.Unlock()
		if len(ct.f.instances) > 0 && ct.f.instances[0].state == "running" && now.Sub(ct.f.instances[0].launched) > 10*time.Minute {
			i := ct.f.instances[0]
			i.state, i.ended = "terminated", now
		}
		return false
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ct.spec.Events = func(e Event) {
		if ct.f.dead {
			cancel() // the process is gone: nothing more happens
		}
	}
	cr, err := NewCloudRun(ct.spec)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = cr.Execute(ctx)
	cancel()
	made := calls
	// Long after: whatever is left ended itself.
	ct.clock.advance(48 * time.Hour)
	if live := ct.f.live(testRun); len(live) > 0 {
		t.Errorf("still running two days later: %v", live)
	}
	ct.checkSpend()
	return made
}

// --deadline reaches the instances: their user data holds the run's
// deadline, no later than --deadline from launch, and the fleet ends
// itself then, with the CLI gone.
func TestCloudRunDeadlineOnInstances(t *testing.T) {
	ct := newCloudTest(t, 2000, time.Minute, 0)
	ct.quote.Deadline = 20 * time.Minute
	cr, err := NewCloudRun(ct.spec)
	if err != nil {
		t.Fatal(err)
	}
	start := ct.clock.Now()
	if _, err := cr.Launch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := cr.Deadline(); d.After(start.Add(20 * time.Minute)) {
		t.Errorf("deadline %s, past --deadline from launch (%s)", d, start.Add(20*time.Minute))
	}
	for _, i := range ct.f.instances {
		if !i.deadline.Equal(cr.Deadline()) {
			t.Errorf("instance %s ends itself at %s, want %s", i.id, i.deadline, cr.Deadline())
		}
	}
	ct.clock.advance(20 * time.Minute)
	if live := ct.f.live(testRun); len(live) > 0 {
		t.Errorf("alive past --deadline: %v", live)
	}
}

// The hard deadline comes from the highest rate the launch may reach and
// never passes --deadline.
func TestRunDeadline(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		rate     float64
		budget   float64
		makespan time.Duration
		deadline time.Duration
		want     time.Duration
	}{
		{"budget", 2, 1, time.Hour, 0, 30 * time.Minute},
		{"no budget", 2, 0, time.Hour, 0, 2*time.Hour + 30*time.Minute},
		{"large budget", 2, 100, time.Hour, 0, 2*time.Hour + 30*time.Minute},
		{"user deadline", 2, 100, time.Hour, 45 * time.Minute, 45 * time.Minute},
		{"budget before deadline", 4, 1, time.Hour, 45 * time.Minute, 15 * time.Minute},
	} {
		if got := RunDeadline(t0, tc.rate, tc.budget, tc.makespan, tc.deadline).Sub(t0); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// Cleanups run in reverse order, all of them even when one fails, once,
// and on a context that the caller's cancellation does not reach.
func TestCleanupsReverseOrder(t *testing.T) {
	var c cleanups
	var order []string
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, name := range []string{"a", "b", "c"} {
		c.add(name, func(ctx context.Context) error {
			order = append(order, name)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if name == "b" {
				return errors.New("b failed")
			}
			return nil
		})
	}
	err := c.run(ctx, time.Minute)
	if strings.Join(order, "") != "cba" {
		t.Errorf("order %v", order)
	}
	if err == nil || !strings.Contains(err.Error(), "b failed") || strings.Contains(err.Error(), "canceled") {
		t.Errorf("error %v", err)
	}
	if err := c.run(ctx, time.Minute); err != nil || len(order) != 3 {
		t.Errorf("second run: %v, %v", err, order)
	}
}

// A detached run, followed later from another process with its fleet
// record: an instance that ends while work remains is replaced within the
// recorded limits, and the run finishes.
func TestMaintainReplacesForDetachedRun(t *testing.T) {
	ct := newCloudTest(t, 300, time.Minute, 10)
	cr, err := NewCloudRun(ct.spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cr.Launch(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec, err := LoadFleetRecord(context.Background(), ct.spec.Run)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Launch.MaxPerHour != ct.quote.MaxPerHour() || !rec.Launch.Expires.Equal(cr.Deadline()) {
		t.Errorf("record %+v", rec)
	}
	ct.clock.advance(3 * time.Minute)
	ct.f.end(ct.f.instances[0].id)
	res, err := Maintain(context.Background(), MaintainSpec{
		EC2: ct.f, Run: ct.spec.Run, Manifest: ct.spec.Manifest, Record: rec, Progress: ct.sim,
		Poll: 5 * time.Second, Teardown: true, Clock: ct.clock, Logger: ct.spec.Logger,
		Events: func(e Event) { ct.events = append(ct.events, e) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.State != staging.StateDone {
		t.Fatalf("state %q", res.State)
	}
	if ct.f.calls["CreateFleet"] < 2 {
		t.Errorf("no replacement: %d fleet requests", ct.f.calls["CreateFleet"])
	}
	// The new process's requests are new ones, not replays of the launch.
	tokens := map[string]bool{}
	for _, in := range ct.f.fleetInputs {
		if tokens[*in.ClientToken] {
			t.Errorf("client token %s reused", *in.ClientToken)
		}
		tokens[*in.ClientToken] = true
	}
	if live := ct.f.live(testRun); len(live) > 0 {
		t.Errorf("left running: %v", live)
	}
	ct.checkSpend()
}

// A run without a fleet record cannot be maintained.
func TestLoadFleetRecordMissing(t *testing.T) {
	ct := newCloudTest(t, 10, time.Minute, 0)
	if _, err := LoadFleetRecord(context.Background(), ct.spec.Run); !errors.Is(err, ErrNoFleet) {
		t.Errorf("err %v, want ErrNoFleet", err)
	}
}
