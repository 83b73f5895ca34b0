package provision

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/slicerburst/burst/staging"
)

// RunInstances lists every instance tagged with the run's id, in any
// state EC2 still reports (terminated instances stay visible for about an
// hour), throttling retried.
func RunInstances(ctx context.Context, api EC2API, runID string, log *slog.Logger) ([]Instance, error) {
	if !staging.ValidID(runID) {
		return nil, fmt.Errorf("listing instances of run %q: invalid run id", runID)
	}
	if log == nil {
		log = slog.Default()
	}
	var out []Instance
	err := describeInstances(ctx, api, log, []types.Filter{
		{Name: aws.String("tag:" + TagRun), Values: []string{runID}},
	}, func(in Instance) { out = append(out, in) })
	if err != nil {
		return nil, fmt.Errorf("listing instances of run %s: %w", runID, err)
	}
	return out, nil
}

// Live reports whether an instance may still be running, and billed.
func (i Instance) Live() bool {
	switch i.State {
	case "terminated", "stopped":
		return false
	}
	return true
}

// Meter adds up what a run's instances have cost so far: EC2 bills each
// instance by the second from launch to termination, with a minimum of
// MinBilled. It keeps the prices of the instances it was told about and
// when it first saw each one ended.
type Meter struct {
	price map[string]float64
	vcpus map[string]int
	ended map[string]time.Time
	seen  map[string]Instance
	// prices, when set, gives the price and vCPUs of an instance the
	// meter was not told about.
	prices func(Instance) (float64, int)
}

// NewMeter returns a Meter for the launched instances, whose prices it
// knows.
func NewMeter(launched []Instance) *Meter {
	m := &Meter{price: map[string]float64{}, vcpus: map[string]int{}, ended: map[string]time.Time{}, seen: map[string]Instance{}}
	m.Add(launched)
	return m
}

// Add tells the meter of launched instances, whose prices it then knows.
func (m *Meter) Add(launched []Instance) {
	for _, in := range launched {
		m.price[in.ID] = in.PerHour
		m.vcpus[in.ID] = in.VCPUs
		if _, ok := m.seen[in.ID]; !ok {
			m.seen[in.ID] = in
		}
	}
}

// End records that an instance was seen ended at now, if not already.
func (m *Meter) End(id string, now time.Time) {
	if _, ok := m.seen[id]; ok {
		if _, done := m.ended[id]; !done {
			m.ended[id] = now
		}
	}
}

// LiveVCPUs returns the vCPUs of the instances that may still be running.
func (m *Meter) LiveVCPUs() int {
	n := 0
	for id := range m.seen {
		if _, done := m.ended[id]; !done {
			n += m.vcpus[id]
		}
	}
	return n
}

// EndedSpot lists the pools of the spot instances that ended.
func (m *Meter) EndedSpot() []Pool {
	var out []Pool
	for id := range m.ended {
		in := m.seen[id]
		if p := (Pool{Market: Spot, Type: in.Type, Subnet: in.Subnet}); in.Market == Spot && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// Observe records the instances' states as of now.
func (m *Meter) Observe(list []Instance, now time.Time) {
	for _, in := range list {
		if _, ok := m.price[in.ID]; !ok && m.prices != nil {
			m.price[in.ID], m.vcpus[in.ID] = m.prices(in)
		}
		if p, ok := m.price[in.ID]; ok && in.PerHour == 0 {
			in.PerHour = p
		}
		if in.VCPUs == 0 {
			in.VCPUs = m.vcpus[in.ID]
		}
		if in.LaunchTime.IsZero() {
			in.LaunchTime = m.seen[in.ID].LaunchTime
		}
		if in.Subnet == "" {
			in.Subnet = m.seen[in.ID].Subnet
		}
		m.seen[in.ID] = in
		if _, done := m.ended[in.ID]; !done && !in.Live() {
			m.ended[in.ID] = now
		}
	}
}

// Live returns how many of the instances seen may still be running.
func (m *Meter) Live() int {
	n := 0
	for id := range m.seen {
		if _, done := m.ended[id]; !done {
			n++
		}
	}
	return n
}

// Spent returns the dollars spent as of now.
func (m *Meter) Spent(now time.Time) float64 {
	total := 0.0
	for id, in := range m.seen {
		end, done := m.ended[id]
		if !done {
			end = now
		}
		total += in.PerHour * max(end.Sub(in.LaunchTime), MinBilled).Hours()
	}
	return total
}

// PerHour returns the spending rate of the live instances.
func (m *Meter) PerHour() float64 {
	total := 0.0
	for id, in := range m.seen {
		if _, done := m.ended[id]; !done {
			total += in.PerHour
		}
	}
	return total
}

// Seen returns the instances the meter knows of.
func (m *Meter) Seen() []Instance {
	out := make([]Instance, 0, len(m.seen))
	for _, in := range m.seen {
		out = append(out, in)
	}
	return out
}
