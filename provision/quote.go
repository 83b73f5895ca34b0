package provision

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// QuoteRequest is what a quote is made from: the run's size, the user's
// limits and choices. A zero Types, Market or Budget means "not given":
// QuoteDefaults (burst's configuration) fills them, then burst's own
// defaults. Both burst plan and a cloud submit build their quote from a
// QuoteRequest and the same QuoteDefaults, so the same inputs give the
// same quote.
type QuoteRequest struct {
	// Tasks is the number of tasks, at least 1.
	Tasks int
	// Region is the EC2 region the quote is for.
	Region string
	// TaskTime is the time one task takes on one core; with Probe, the
	// measured time replaces it.
	TaskTime time.Duration
	// MemoryMiB is the memory one task needs (0: does not limit; with
	// Probe, the measured peak).
	MemoryMiB int64
	// Budget is the most the run may cost, in US dollars (0: the
	// default's, else none).
	Budget float64
	// Deadline is the longest the run may take from launch (0: none).
	Deadline time.Duration
	// MaxInstances and MaxVCPUs limit the fleet (0: no limit).
	MaxInstances, MaxVCPUs int
	// Types are the instance types to choose from (nil: the default's,
	// else DefaultTypes()).
	Types []string
	// Market is spot, on-demand or any ("": the default's, else any).
	Market string
	// BootTime is an instance's time from launch to its first task
	// (0: DefaultBootTime).
	BootTime time.Duration
	// Probe, when set, measures one task here; it is called once.
	Probe func(ctx context.Context) (ProbeResult, error)
	// Prices gives the on-demand prices; EmbeddedPrices when nil.
	Prices OnDemandSource
}

// QuoteDefaults are the configuration's defaults for what a QuoteRequest
// leaves out.
type QuoteDefaults struct {
	Types  []string
	Market string
	Budget float64
}

// ProbeResult is what running one task here measured.
type ProbeResult struct {
	Task     string        `json:"task"`
	Duration time.Duration `json:"-"`
	PeakMiB  int64         `json:"peak_mib"`
	Seconds  float64       `json:"seconds"`
}

// Quote is a plan for a run: the inputs it was made from, once every
// default is applied, the ranked options (the recommended one first) and
// notes for people.
type Quote struct {
	Region    string
	Tasks     int
	TaskTime  time.Duration
	MemoryMiB int64
	Probe     *ProbeResult
	Budget    float64
	Deadline  time.Duration
	// Markets are the markets allowed, preferred first.
	Markets []Market
	// Types are the instance types chosen from (empty: DefaultTypes()).
	Types    []string
	BootTime time.Duration
	Options  []Option
	Notes    []string
	// PriceSource says where the on-demand prices came from.
	PriceSource string
}

// InputError is a refusal for what the user gave: a quote's inputs (an
// unknown instance type, a type the worker image cannot run, a bad
// market), or an account setup that burst init cannot read (see
// ConfigFromTerraform). It is the user's to fix.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// ParseMarket reads a market choice: spot, on-demand or any (spot
// preferred), and returns the markets allowed, preferred first.
func ParseMarket(s string) ([]Market, error) {
	switch s {
	case "any":
		return []Market{Spot, OnDemand}, nil
	case "spot":
		return []Market{Spot}, nil
	case "on-demand", "ondemand":
		return []Market{OnDemand}, nil
	}
	return nil, &InputError{fmt.Sprintf("market must be spot, on-demand or any, got %q", s)}
}

// withDefaults returns the request with the configuration's defaults,
// then burst's, applied: the one place where defaults are decided.
func (r QuoteRequest) withDefaults(d QuoteDefaults) QuoteRequest {
	if len(r.Types) == 0 {
		r.Types = slices.Clone(d.Types)
	}
	if r.Market == "" {
		r.Market = d.Market
	}
	if r.Market == "" {
		r.Market = "any"
	}
	if r.Budget == 0 {
		r.Budget = d.Budget
	}
	if r.BootTime == 0 {
		r.BootTime = DefaultBootTime
	}
	if r.Prices == nil {
		r.Prices = EmbeddedPrices{}
	}
	return r
}

// MakeQuote sizes a fleet for a run: it applies the defaults, reads the
// instance types and spot prices from EC2 (read-only calls), the on-demand
// prices from req.Prices, measures a task with req.Probe, and ranks the
// options (see Plan). An unknown instance type, a type the worker image
// cannot run or a bad market is an *InputError. When no option meets the
// limits, the error is Plan's (*NoPlanError, ErrBudgetTooSmall,
// ErrNoOffers), returned with the partial quote for its notes.
func MakeQuote(ctx context.Context, api EC2API, req QuoteRequest, def QuoteDefaults) (*Quote, error) {
	req = req.withDefaults(def)
	markets, err := ParseMarket(req.Market)
	if err != nil {
		return nil, err
	}
	q := &Quote{Region: req.Region, Tasks: req.Tasks, TaskTime: req.TaskTime, MemoryMiB: req.MemoryMiB,
		Budget: req.Budget, Deadline: req.Deadline, Markets: markets, Types: req.Types, BootTime: req.BootTime}
	its, err := Catalog(ctx, api, req.Types)
	if errors.Is(err, ErrUnknownType) {
		return nil, &InputError{fmt.Sprintf("types: %v in %s", err, req.Region)}
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, it := range its {
		if it.Arch != "x86_64" {
			return nil, &InputError{fmt.Sprintf("types: %s is %s; burst's worker image, like 3D Slicer on Linux, is x86_64 only", it.Name, it.Arch)}
		}
		names = append(names, it.Name)
	}
	spot := map[string]float64{}
	if slices.Contains(markets, Spot) {
		if spot, err = SpotPrices(ctx, api, names); err != nil {
			return nil, err
		}
	}
	var od PriceList
	if slices.Contains(markets, OnDemand) {
		od = req.Prices.OnDemandPrices(ctx, req.Region, names)
		q.PriceSource = od.Source
		q.Notes = append(q.Notes, od.Notes...)
	}
	offers, notes := offersFrom(req.Region, its, spot, od, markets)
	q.Notes = append(q.Notes, notes...)
	if req.Probe != nil {
		pr, err := req.Probe(ctx)
		if err != nil {
			return nil, err
		}
		q.Probe = &pr
		q.TaskTime = max(pr.Duration, time.Millisecond)
		if q.MemoryMiB == 0 {
			q.MemoryMiB = pr.PeakMiB
		}
		q.Notes = append(q.Notes, fmt.Sprintf("time per task measured here on task %s: %ss, peak memory %d MiB; an instance's core may be faster or slower",
			pr.Task, strconv.FormatFloat(pr.Duration.Seconds(), 'f', 3, 64), pr.PeakMiB))
	}
	q.Options, err = Plan(PlanInput{
		Tasks:         req.Tasks,
		TaskTime:      q.TaskTime,
		TaskMemoryMiB: q.MemoryMiB,
		Budget:        q.Budget,
		Deadline:      q.Deadline,
		MaxInstances:  req.MaxInstances,
		MaxVCPUs:      req.MaxVCPUs,
		Offers:        offers,
		BootTime:      q.BootTime,
	})
	return q, err
}

// Chosen is the recommended option.
func (q *Quote) Chosen() Option { return q.Options[0] }

// FallbackOffers lists the offers a launch for the quote may use: the
// chosen one first, then those of the other options, each once.
func (q *Quote) FallbackOffers() []Offer {
	out := []Offer{q.Chosen().Offer}
	for _, o := range q.Options {
		if !slices.ContainsFunc(out, func(x Offer) bool { return x.Type.Name == o.Offer.Type.Name && x.Market == o.Offer.Market }) {
			out = append(out, o.Offer)
		}
	}
	return out
}

// MaxPerHour is the highest rate, in US dollars per hour, that a launch
// for the quote may reach: the chosen fleet's, with CostSlack for
// substitutes and for spot prices that rise (spot instances are capped at
// their offer's price plus that slack, and counted at that cap).
func (q *Quote) MaxPerHour() float64 { return q.Chosen().PerHour() * (1 + CostSlack) }

// WorkersPerInstance is the --workers an instance's worker runs with:
// zero (one per core) unless memory limits it to fewer.
func (q *Quote) WorkersPerInstance() int {
	o := q.Chosen()
	if per := o.PerInstance(); per < o.Offer.Type.VCPUs {
		return per
	}
	return 0
}

// ParseMiB reads a memory size, as a task's memory is given: a number of
// MiB, or a number with a unit (MiB, GiB, MB, GB, M, G; any case), rounded
// up to whole MiB.
func ParseMiB(s string) (int64, error) {
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
