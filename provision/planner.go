package provision

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// The planner's model of a run on a fleet. An instance of type T runs
// slots(T) = min(vCPUs, floor(memory / memory per task)) tasks at once, one
// worker per core; n instances run n*slots(T). Every instance boots for
// BootTime, then the tasks run in waves over all slots:
//
//	makespan = boot + ceil(tasks / (n*slots)) * time per task
//	cost     = n * price per hour * max(60 s, makespan) / 1 h
//
// which is EC2's per-second billing with its one-minute minimum. The model
// ignores staging, the spread of task times and spot interruptions: it is
// a quote, and the run's hard deadline (RunDeadline) is what caps the
// bill.
const (
	// DefaultBootTime is an instance's time from launch to its first task:
	// the AMI's boot and the worker's start.
	DefaultBootTime = 90 * time.Second
	// MinBilled is the least time EC2 bills a Linux instance for.
	MinBilled = 60 * time.Second
	// CostSlack is how much dearer than the cheapest feasible option the
	// recommended option may be, as a fraction, in exchange for speed.
	CostSlack = 0.10
	// Alternatives is how many faster and how many cheaper options Plan
	// returns beside the recommended one, at most.
	Alternatives = 3
)

// PlanInput is what a plan is made from.
type PlanInput struct {
	// Tasks is the number of tasks, at least 1.
	Tasks int
	// TaskTime is the time one task takes on one core.
	TaskTime time.Duration
	// TaskMemoryMiB is the memory one task needs; 0 means it does not
	// limit how many tasks share an instance.
	TaskMemoryMiB int64
	// Budget is the most the run may cost, in US dollars; 0 means none.
	Budget float64
	// Deadline is the longest the run may take from launch; 0 means none.
	Deadline time.Duration
	// MaxInstances and MaxVCPUs are the account's quotas (or the user's
	// limits) on the fleet; 0 means no limit.
	MaxInstances int
	MaxVCPUs     int
	// Offers are the candidate instance types, markets and prices.
	Offers []Offer
	// BootTime is an instance's time from launch to its first task;
	// DefaultBootTime when zero.
	BootTime time.Duration
}

// Option is one way to run the tasks: Count instances of one offer.
type Option struct {
	Offer Offer
	Count int
	// Slots is how many tasks the whole fleet runs at once.
	Slots    int
	Makespan time.Duration
	// Cost is the quoted total, in US dollars.
	Cost float64
}

// PerInstance returns how many tasks one instance runs at once.
func (o Option) PerInstance() int {
	if o.Count == 0 {
		return 0
	}
	return o.Slots / o.Count
}

// PerHour returns what the whole fleet costs per hour.
func (o Option) PerHour() float64 { return float64(o.Count) * o.Offer.PerHour }

// String describes an option in one line, for messages.
func (o Option) String() string {
	return fmt.Sprintf("%d × %s %s, %s, %s", o.Count, o.Offer.Type.Name, o.Offer.Market, FormatDuration(o.Makespan), FormatDollars(o.Cost))
}

// Errors Plan returns, besides *NoPlanError; they wrap these (errors.Is).
var (
	// ErrNoOffers: no instance type could run a task (none given, or none
	// with the memory one task needs, or none within the vCPU quota).
	ErrNoOffers = errors.New("no instance type can run the tasks")
	// ErrBudgetTooSmall: the budget does not cover even one task on the
	// cheapest offer.
	ErrBudgetTooSmall = errors.New("budget too small")
)

// NoPlanError is a refusal: no option meets both the budget and the
// deadline. Nearest holds the options closest to doing so: the cheapest
// that meets the deadline (when the budget is what fails) and the fastest
// within the budget (when the deadline is).
type NoPlanError struct {
	// Reason says which limit fails, for people.
	Reason  string
	Nearest []Option
}

func (e *NoPlanError) Error() string {
	if len(e.Nearest) == 0 {
		return "no plan: " + e.Reason
	}
	var near []string
	for _, o := range e.Nearest {
		near = append(near, o.String())
	}
	return fmt.Sprintf("no plan: %s; nearest: %s", e.Reason, strings.Join(near, "; "))
}

// Plan returns the options for running the tasks, ranked: first the
// recommended one, then up to Alternatives faster and Alternatives cheaper
// ones, these in order of makespan. Only options that meet the budget, the
// deadline and the quotas, and that no other option beats on both cost and
// makespan, are returned.
//
// The recommended option is the fastest one whose cost is within
// CostSlack of the cheapest feasible option: with a budget and an
// overnight deadline, the run finishes as early as a few percent more
// money buys, but the budget is a cap, not a target. Ties go to the
// cheaper option, then to fewer instances, then to fewer vCPUs, then to
// spot.
//
// When no option is feasible Plan returns a *NoPlanError with the nearest
// options; when the budget does not cover one task, an error wrapping
// ErrBudgetTooSmall; when no offer can run a task, ErrNoOffers.
func Plan(in PlanInput) ([]Option, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	all := in.candidates()
	if len(all) == 0 {
		return nil, in.noOffersError()
	}
	if in.Budget > 0 {
		if cheapest, cost := in.cheapestTask(); cost > in.Budget {
			return nil, fmt.Errorf("%w: %s does not cover one task: the cheapest, on %s %s at %s/h, costs %s (boot %s, task %s, at least %s billed)",
				ErrBudgetTooSmall, FormatDollars(in.Budget), cheapest.Type.Name, cheapest.Market, FormatDollars(cheapest.PerHour), FormatDollars(cost),
				FormatDuration(in.boot()), FormatDuration(in.TaskTime), FormatDuration(MinBilled))
		}
	}
	front := frontier(all)
	var ok []Option
	for _, o := range front {
		if in.withinBudget(o) && in.withinDeadline(o) {
			ok = append(ok, o)
		}
	}
	if len(ok) == 0 {
		return nil, in.refusal(front)
	}
	// ok is ordered by makespan, so by falling cost: find the fastest
	// within the slack of the cheapest (the last).
	limit := ok[len(ok)-1].Cost * (1 + CostSlack)
	best := slices.IndexFunc(ok, func(o Option) bool { return o.Cost <= limit })
	out := []Option{ok[best]}
	out = append(out, spread(ok[:best], Alternatives)...)
	out = append(out, spread(ok[best+1:], Alternatives)...)
	return out, nil
}

func (in PlanInput) validate() error {
	switch {
	case in.Tasks < 1:
		return fmt.Errorf("planning: %d tasks: need at least one", in.Tasks)
	case in.TaskTime <= 0:
		return fmt.Errorf("planning: time per task must be positive, got %s", in.TaskTime)
	case in.TaskMemoryMiB < 0, in.Budget < 0, math.IsNaN(in.Budget), math.IsInf(in.Budget, 0), in.Deadline < 0,
		in.MaxInstances < 0, in.MaxVCPUs < 0, in.BootTime < 0:
		return errors.New("planning: memory, budget, deadline, quotas and boot time must not be negative")
	}
	return nil
}

func (in PlanInput) boot() time.Duration {
	if in.BootTime == 0 {
		return DefaultBootTime
	}
	return in.BootTime
}

// slotsPer returns how many tasks one instance of t runs at once.
func (in PlanInput) slotsPer(t InstanceType) int {
	s := t.VCPUs
	if in.TaskMemoryMiB > 0 {
		s = min(s, int(min(t.MemoryMiB/in.TaskMemoryMiB, math.MaxInt32)))
	}
	return max(s, 0)
}

// maxCount returns the most instances of t worth considering: no more
// than the quotas allow, nor more slots than tasks.
func (in PlanInput) maxCount(t InstanceType, per int) int {
	n := (in.Tasks + per - 1) / per
	if in.MaxInstances > 0 {
		n = min(n, in.MaxInstances)
	}
	if in.MaxVCPUs > 0 {
		n = min(n, in.MaxVCPUs/max(t.VCPUs, 1))
	}
	return n
}

// evaluate applies the model to count instances of offer.
func (in PlanInput) evaluate(offer Offer, count int) Option {
	per := in.slotsPer(offer.Type)
	slots := count * per
	waves := (in.Tasks + slots - 1) / slots
	makespan := in.boot() + time.Duration(waves)*in.TaskTime
	billed := max(makespan, MinBilled)
	return Option{
		Offer:    offer,
		Count:    count,
		Slots:    slots,
		Makespan: makespan,
		Cost:     float64(count) * offer.PerHour * billed.Hours(),
	}
}

// candidates lists, for every offer, the counts worth considering: of
// the counts that give the same number of waves (so the same makespan),
// only the smallest, which costs least.
func (in PlanInput) candidates() []Option {
	var out []Option
	for _, offer := range in.Offers {
		per := in.slotsPer(offer.Type)
		if per < 1 || offer.PerHour <= 0 {
			continue
		}
		lastWaves := -1
		for n := 1; n <= in.maxCount(offer.Type, per); n++ {
			waves := (in.Tasks + n*per - 1) / (n * per)
			if waves == lastWaves {
				continue
			}
			lastWaves = waves
			out = append(out, in.evaluate(offer, n))
		}
	}
	return out
}

func (in PlanInput) noOffersError() error {
	var why []string
	if len(in.Offers) == 0 {
		why = append(why, "no instance types with prices to choose from")
	}
	if in.TaskMemoryMiB > 0 {
		why = append(why, fmt.Sprintf("a task needs %d MiB", in.TaskMemoryMiB))
	}
	if in.MaxVCPUs > 0 {
		why = append(why, fmt.Sprintf("at most %d vCPUs", in.MaxVCPUs))
	}
	return fmt.Errorf("%w (%s)", ErrNoOffers, strings.Join(why, "; "))
}

// cheapestTask returns the offer on which one task alone costs least,
// and that cost.
func (in PlanInput) cheapestTask() (Offer, float64) {
	var best Offer
	cost := math.Inf(1)
	billed := max(in.boot()+in.TaskTime, MinBilled)
	for _, o := range in.Offers {
		if in.slotsPer(o.Type) < 1 || o.PerHour <= 0 || in.maxCount(o.Type, 1) < 1 {
			continue
		}
		if c := o.PerHour * billed.Hours(); c < cost {
			best, cost = o, c
		}
	}
	return best, cost
}

func (in PlanInput) withinBudget(o Option) bool { return in.Budget == 0 || o.Cost <= in.Budget }
func (in PlanInput) withinDeadline(o Option) bool {
	return in.Deadline == 0 || o.Makespan <= in.Deadline
}

// refusal explains why no option of front (the whole frontier, by
// makespan) is feasible, with the nearest options.
func (in PlanInput) refusal(front []Option) *NoPlanError {
	var quotas string
	if in.MaxInstances > 0 || in.MaxVCPUs > 0 {
		var q []string
		if in.MaxInstances > 0 {
			q = append(q, fmt.Sprintf("%d instances", in.MaxInstances))
		}
		if in.MaxVCPUs > 0 {
			q = append(q, fmt.Sprintf("%d vCPUs", in.MaxVCPUs))
		}
		quotas = " with at most " + strings.Join(q, " and ")
	}
	fastest, cheapest := front[0], front[len(front)-1]
	// The cheapest meeting the deadline is the last such in makespan
	// order; the fastest within budget, the first such.
	var meetsDeadline, inBudget *Option
	for i := range front {
		if in.withinDeadline(front[i]) {
			meetsDeadline = &front[i]
		}
		if inBudget == nil && in.withinBudget(front[i]) {
			inBudget = &front[i]
		}
	}
	budget, deadline := FormatDollars(in.Budget), FormatDuration(in.Deadline)
	switch {
	case meetsDeadline != nil && inBudget != nil:
		return &NoPlanError{
			Reason:  fmt.Sprintf("no option%s meets both the budget of %s and the deadline of %s", quotas, budget, deadline),
			Nearest: []Option{*meetsDeadline, *inBudget},
		}
	case meetsDeadline != nil:
		within := ""
		if in.Deadline > 0 {
			within = " within the deadline of " + deadline
		}
		return &NoPlanError{
			Reason:  fmt.Sprintf("the budget of %s is too small%s: the cheapest run%s costs %s", budget, quotas, within, FormatDollars(meetsDeadline.Cost)),
			Nearest: []Option{*meetsDeadline},
		}
	case inBudget != nil:
		within := ""
		if in.Budget > 0 {
			within = " within the budget of " + budget
		}
		return &NoPlanError{
			Reason:  fmt.Sprintf("the deadline of %s is too short%s: the fastest run%s takes %s", deadline, quotas, within, FormatDuration(inBudget.Makespan)),
			Nearest: []Option{*inBudget},
		}
	default:
		return &NoPlanError{
			Reason:  fmt.Sprintf("no option%s meets the budget of %s or the deadline of %s", quotas, budget, deadline),
			Nearest: []Option{cheapest, fastest},
		}
	}
}

// better orders options by makespan, then cost, then fewer instances,
// then fewer vCPUs (less of the quota), then spot first, then name.
func better(a, b Option) int {
	switch {
	case a.Makespan != b.Makespan:
		return cmp.Compare(a.Makespan, b.Makespan)
	case a.Cost != b.Cost:
		return cmp.Compare(a.Cost, b.Cost)
	case a.Count != b.Count:
		return cmp.Compare(a.Count, b.Count)
	case a.Count*a.Offer.Type.VCPUs != b.Count*b.Offer.Type.VCPUs:
		return cmp.Compare(a.Count*a.Offer.Type.VCPUs, b.Count*b.Offer.Type.VCPUs)
	case a.Offer.Market != b.Offer.Market:
		if a.Offer.Market == Spot {
			return -1
		}
		return 1
	}
	return strings.Compare(a.Offer.Type.Name, b.Offer.Type.Name)
}

// frontier returns the options that no other beats on both makespan and
// cost, by makespan (so by falling cost).
func frontier(all []Option) []Option {
	sorted := slices.Clone(all)
	slices.SortFunc(sorted, better)
	var out []Option
	for _, o := range sorted {
		if len(out) == 0 || o.Cost < out[len(out)-1].Cost {
			out = append(out, o)
		}
	}
	return out
}

// spread picks up to k options of s, evenly spaced and including both
// ends, in their order.
func spread(s []Option, k int) []Option {
	if len(s) <= k {
		return slices.Clone(s)
	}
	if k == 1 {
		return []Option{s[0]}
	}
	out := make([]Option, 0, k)
	for i := range k {
		out = append(out, s[i*(len(s)-1)/(k-1)])
	}
	return out
}

// FormatDuration writes a duration the way plans show it: 45s, 12m30s,
// 3h05m.
func FormatDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

// FormatDollars writes an amount of US dollars with cents, with four
// decimals under a dollar, and with six under a cent.
func FormatDollars(x float64) string {
	switch a := math.Abs(x); {
	case a == 0 || a >= 1:
		return fmt.Sprintf("$%.2f", x)
	case a >= 0.01:
		return fmt.Sprintf("$%.4f", x)
	}
	return fmt.Sprintf("$%.6f", x)
}
