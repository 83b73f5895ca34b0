package provision

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func approx(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

var (
	c6i2x = InstanceType{Name: "c6i.2xlarge", VCPUs: 8, MemoryMiB: 16384, Arch: "x86_64"}
	small = InstanceType{Name: "s.large", VCPUs: 2, MemoryMiB: 4096, Arch: "x86_64"}
)

func TestModel(t *testing.T) {
	od := Offer{Type: c6i2x, Market: OnDemand, PerHour: 0.34}
	for _, c := range []struct {
		name     string
		in       PlanInput
		offer    Offer
		count    int
		slots    int
		makespan time.Duration
		cost     float64
	}{
		// 100 tasks of 1 min on 8 slots: 13 waves after 90 s of boot.
		{"one instance", PlanInput{Tasks: 100, TaskTime: time.Minute}, od, 1, 8, 870 * time.Second, 0.34 * 870 / 3600},
		{"two instances", PlanInput{Tasks: 100, TaskTime: time.Minute}, od, 2, 16, 510 * time.Second, 2 * 0.34 * 510 / 3600},
		{"one wave", PlanInput{Tasks: 100, TaskTime: time.Minute}, od, 13, 104, 150 * time.Second, 13 * 0.34 * 150 / 3600},
		// 4 GiB a task: 16 GiB hold 4 tasks, not 8; 25 waves.
		{"memory limits slots", PlanInput{Tasks: 100, TaskTime: time.Minute, TaskMemoryMiB: 4096}, od, 1, 4, 1590 * time.Second, 0.34 * 1590 / 3600},
		{"memory not limiting", PlanInput{Tasks: 100, TaskTime: time.Minute, TaskMemoryMiB: 1024}, od, 1, 8, 870 * time.Second, 0.34 * 870 / 3600},
		// 30 s of work is billed as 60.
		{"60 s minimum", PlanInput{Tasks: 1, TaskTime: 10 * time.Second, BootTime: 20 * time.Second}, Offer{Type: small, Market: Spot, PerHour: 0.36}, 3, 6, 30 * time.Second, 3 * 0.36 * 60 / 3600},
		{"boot time given", PlanInput{Tasks: 3, TaskTime: time.Hour, BootTime: 6 * time.Minute}, Offer{Type: small, Market: Spot, PerHour: 0.1}, 1, 2, 2*time.Hour + 6*time.Minute, 0.1 * 2.1},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := c.in.evaluate(c.offer, c.count)
			if o.Slots != c.slots || o.Makespan != c.makespan || !approx(o.Cost, c.cost) || o.Count != c.count {
				t.Errorf("got %d slots, %s, $%v; want %d slots, %s, $%v", o.Slots, o.Makespan, o.Cost, c.slots, c.makespan, c.cost)
			}
			if o.PerInstance() != c.slots/c.count {
				t.Errorf("PerInstance = %d", o.PerInstance())
			}
		})
	}
}

// The ranking cases share one offer: 16 tasks of an hour, 6 minutes of
// boot, on 2-slot instances at $0.10/h. By hand:
//
//	n=1: 8 waves, 8.1 h, $0.81     n=4: 2 waves, 2.1 h, $0.84
//	n=2: 4 waves, 4.1 h, $0.82     n=8: 1 wave,  1.1 h, $0.88
//	n=3: 3 waves, 3.1 h, $0.93 (beaten by n=4 on both)
func rankInput() PlanInput {
	return PlanInput{
		Tasks: 16, TaskTime: time.Hour, BootTime: 6 * time.Minute,
		Offers: []Offer{{Type: small, Market: Spot, PerHour: 0.1}},
	}
}

func counts(opts []Option) []int {
	var n []int
	for _, o := range opts {
		n = append(n, o.Count)
	}
	return n
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPlanRanking(t *testing.T) {
	for _, c := range []struct {
		name   string
		modify func(*PlanInput)
		want   []int
	}{
		// $0.88 is within 10% of the cheapest ($0.81): the fastest wins.
		{"no limits", func(*PlanInput) {}, []int{8, 4, 2, 1}},
		{"budget caps", func(in *PlanInput) { in.Budget = 0.85 }, []int{4, 2, 1}},
		{"deadline drops the slow", func(in *PlanInput) { in.Deadline = 5 * time.Hour }, []int{8, 4, 2}},
		{"both leave one", func(in *PlanInput) { in.Budget, in.Deadline = 0.83, 5*time.Hour }, []int{2}},
		// At most 3 instances: n=3 ($0.93) is more than 10% over $0.81.
		{"instance quota", func(in *PlanInput) { in.MaxInstances = 3 }, []int{2, 3, 1}},
		{"vCPU quota", func(in *PlanInput) { in.MaxVCPUs = 5 }, []int{2, 1}},
		// The on-demand offer of the same type is beaten everywhere.
		{"spot beats on-demand", func(in *PlanInput) {
			in.Offers = append(in.Offers, Offer{Type: small, Market: OnDemand, PerHour: 0.3})
		}, []int{8, 4, 2, 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := rankInput()
			c.modify(&in)
			opts, err := Plan(in)
			if err != nil {
				t.Fatal(err)
			}
			if got := counts(opts); !equalInts(got, c.want) {
				t.Errorf("counts %v, want %v", got, c.want)
			}
			for _, o := range opts {
				if o.Offer.Market != Spot {
					t.Errorf("on-demand option %v kept", o)
				}
				if (in.Budget > 0 && o.Cost > in.Budget) || (in.Deadline > 0 && o.Makespan > in.Deadline) {
					t.Errorf("infeasible option %v returned", o)
				}
			}
		})
	}
}

func TestPlanAlternativesSpread(t *testing.T) {
	// Many tasks give a long frontier: at most Alternatives on each side,
	// including the extremes, faster ones first.
	in := PlanInput{Tasks: 1000, TaskTime: 10 * time.Minute, Offers: []Offer{{Type: small, Market: Spot, PerHour: 0.1}}, BootTime: 30 * time.Minute}
	opts, err := Plan(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(opts) > 1+2*Alternatives {
		t.Errorf("%d options", len(opts))
	}
	var faster, slower int
	for _, o := range opts[1:] {
		if o.Makespan < opts[0].Makespan {
			faster++
		} else {
			slower++
		}
	}
	if faster != Alternatives || slower != Alternatives {
		t.Errorf("%d faster, %d slower alternatives", faster, slower)
	}
	if opts[1].Count != 500 || opts[len(opts)-1].Count != 1 {
		t.Errorf("the extremes are missing: %v", counts(opts))
	}
	for i := 2; i < len(opts); i++ {
		if opts[i].Makespan <= opts[i-1].Makespan && i != 1+faster {
			t.Errorf("alternatives out of makespan order: %v", opts)
		}
	}
}

func TestPlanRefusals(t *testing.T) {
	for _, c := range []struct {
		name    string
		modify  func(*PlanInput)
		reason  string
		nearest []int
	}{
		{"budget", func(in *PlanInput) { in.Budget = 0.80 }, "budget of $0.8000 is too small", []int{1}},
		{"budget with deadline", func(in *PlanInput) { in.Budget, in.Deadline = 0.83, 2*time.Hour+30*time.Minute }, "meets both", []int{4, 2}},
		{"deadline", func(in *PlanInput) { in.Deadline = time.Hour }, "deadline of 1h00m is too short", []int{8}},
		{"deadline under quota", func(in *PlanInput) { in.Deadline, in.MaxInstances = 3*time.Hour, 3 }, "with at most 3 instances", []int{3}},
		{"neither", func(in *PlanInput) { in.Budget, in.Deadline = 0.5, time.Hour }, "meets the budget of $0.5000 or the deadline", []int{1, 8}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := rankInput()
			c.modify(&in)
			_, err := Plan(in)
			var np *NoPlanError
			if !errors.As(err, &np) {
				t.Fatalf("err = %v, want a NoPlanError", err)
			}
			if !strings.Contains(np.Reason, c.reason) {
				t.Errorf("reason %q lacks %q", np.Reason, c.reason)
			}
			if got := counts(np.Nearest); !equalInts(got, c.nearest) {
				t.Errorf("nearest %v, want %v (%v)", got, c.nearest, err)
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	in := rankInput()
	in.Budget = 0.05 // one task alone costs 1.1 h at $0.10
	if _, err := Plan(in); !errors.Is(err, ErrBudgetTooSmall) || !strings.Contains(err.Error(), "$0.1100") {
		t.Errorf("tiny budget: %v", err)
	}
	in = rankInput()
	in.TaskMemoryMiB = 5000
	if _, err := Plan(in); !errors.Is(err, ErrNoOffers) || !strings.Contains(err.Error(), "5000 MiB") {
		t.Errorf("task bigger than any instance: %v", err)
	}
	in = rankInput()
	in.MaxVCPUs = 1
	if _, err := Plan(in); !errors.Is(err, ErrNoOffers) {
		t.Errorf("quota below one instance: %v", err)
	}
	in = rankInput()
	in.Offers = nil
	if _, err := Plan(in); !errors.Is(err, ErrNoOffers) {
		t.Errorf("no offers: %v", err)
	}
	for _, bad := range []func(*PlanInput){
		func(in *PlanInput) { in.Tasks = 0 },
		func(in *PlanInput) { in.TaskTime = 0 },
		func(in *PlanInput) { in.Budget = -1 },
		func(in *PlanInput) { in.Budget = math.NaN() },
		func(in *PlanInput) { in.MaxInstances = -1 },
	} {
		in := rankInput()
		bad(&in)
		if _, err := Plan(in); err == nil {
			t.Errorf("bad input %+v accepted", in)
		}
	}
	// Memory fits on one type and not the other: the other is skipped.
	in = rankInput()
	in.TaskMemoryMiB = 3000
	in.Offers = append(in.Offers, Offer{Type: InstanceType{Name: "tiny", VCPUs: 2, MemoryMiB: 2048}, Market: Spot, PerHour: 0.01})
	opts, err := Plan(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		if o.Offer.Type.Name == "tiny" || o.PerInstance() != 1 {
			t.Errorf("option %v ignores the memory per task", o)
		}
	}
}

// TestPlanAgainstBruteForce checks the candidate pruning and the frontier
// against every count of every offer, on random inputs.
func TestPlanAgainstBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	types := []InstanceType{
		{Name: "a.large", VCPUs: 2, MemoryMiB: 4096}, {Name: "a.xlarge", VCPUs: 4, MemoryMiB: 8192},
		{Name: "b.2xlarge", VCPUs: 8, MemoryMiB: 65536}, {Name: "c.4xlarge", VCPUs: 16, MemoryMiB: 32768},
	}
	for i := range 300 {
		in := PlanInput{
			Tasks:         1 + r.IntN(400),
			TaskTime:      time.Duration(1+r.IntN(3600)) * time.Second,
			TaskMemoryMiB: int64(r.IntN(3)) * 1500,
			BootTime:      time.Duration(1+r.IntN(300)) * time.Second,
			MaxInstances:  r.IntN(20),
			MaxVCPUs:      r.IntN(3) * 64,
		}
		for _, ty := range types {
			in.Offers = append(in.Offers, Offer{Type: ty, Market: Spot, PerHour: 0.01 + r.Float64()})
		}
		if r.IntN(2) == 0 {
			in.Deadline = time.Duration(r.IntN(20000)) * time.Second
		}
		if r.IntN(2) == 0 {
			in.Budget = r.Float64() * 5
		}
		// Brute force: every feasible option, the cheapest cost, and the
		// best makespan within the slack.
		cheapest, bestMakespan := math.Inf(1), time.Duration(math.MaxInt64)
		var feasible []Option
		for _, of := range in.Offers {
			per := in.slotsPer(of.Type)
			if per < 1 {
				continue
			}
			for n := 1; n <= in.maxCount(of.Type, per); n++ {
				o := in.evaluate(of, n)
				if in.withinBudget(o) && in.withinDeadline(o) {
					feasible = append(feasible, o)
					cheapest = min(cheapest, o.Cost)
				}
			}
		}
		for _, o := range feasible {
			if o.Cost <= cheapest*(1+CostSlack) {
				bestMakespan = min(bestMakespan, o.Makespan)
			}
		}
		opts, err := Plan(in)
		if len(feasible) == 0 {
			if err == nil {
				t.Fatalf("case %d: %+v planned %v with nothing feasible", i, in, opts)
			}
			continue
		}
		if err != nil {
			t.Fatalf("case %d: %+v: %v, but %d options are feasible", i, in, err, len(feasible))
		}
		if opts[0].Makespan != bestMakespan || opts[0].Cost > cheapest*(1+CostSlack)+1e-12 {
			t.Fatalf("case %d: recommended %v; brute force: makespan %s within %v", i, opts[0], bestMakespan, cheapest*(1+CostSlack))
		}
		// Nothing returned is beaten on both counts by a feasible option.
		for _, o := range opts {
			for _, f := range feasible {
				if f.Cost < o.Cost && f.Makespan < o.Makespan {
					t.Fatalf("case %d: %v returned, but %v beats it", i, o, f)
				}
			}
		}
	}
}

func TestFormat(t *testing.T) {
	for d, want := range map[time.Duration]string{
		45 * time.Second:                    "45s",
		12*time.Minute + 30*time.Second:     "12m30s",
		3*time.Hour + 5*time.Minute + 700e6: "3h05m",
		1500 * time.Millisecond:             "2s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%s) = %q, want %q", d, got, want)
		}
	}
	for x, want := range map[float64]string{12.344: "$12.34", 0: "$0.00", 0.0765: "$0.0765", 0.00001: "$0.000010", 1: "$1.00"} {
		if got := FormatDollars(x); got != want {
			t.Errorf("FormatDollars(%v) = %q, want %q", x, got, want)
		}
	}
}
