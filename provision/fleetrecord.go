package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/slicerburst/burst/staging"
)

// FleetRecord is what a cloud run's CLI launched with, kept in the run
// store (runs/<id>/fleet.json, which workers cannot write) so that a
// later burst watch --maintain, from any machine, replaces lost capacity
// within the same limits.
type FleetRecord struct {
	// Launch is the launch's spec: offers, rate cap, target, user data
	// (with the instances' deadline).
	Launch LaunchSpec `json:"launch"`
	// Budget is the run's budget in US dollars (0: none).
	Budget float64 `json:"budget_usd"`
	// Started is when the fleet was launched.
	Started time.Time `json:"started"`
	// BootTime is an instance's time from launch to its first task.
	BootTime time.Duration `json:"boot_time_ns"`
}

// FleetRecordKey is the key of the run's fleet record.
func FleetRecordKey(run *staging.Run) string {
	return strings.TrimSuffix(run.ManifestKey(), "manifest.json") + "fleet.json"
}

func (r *FleetRecord) save(ctx context.Context, run *staging.Run) error {
	rec := *r
	rec.Launch.Logger = nil
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if _, err := run.Store.Put(ctx, FleetRecordKey(run), data); err != nil {
		return fmt.Errorf("recording the fleet's limits in the run store: %w", err)
	}
	return nil
}

// ErrNoFleet means the run has no fleet record: it was not launched by
// burst submit --cloud.
var ErrNoFleet = errors.New("the run has no fleet record (it was not submitted to a cloud)")

// LoadFleetRecord reads the run's fleet record.
func LoadFleetRecord(ctx context.Context, run *staging.Run) (*FleetRecord, error) {
	data, _, err := run.Store.Get(ctx, FleetRecordKey(run))
	if errors.Is(err, staging.ErrNotFound) {
		return nil, ErrNoFleet
	}
	if err != nil {
		return nil, fmt.Errorf("reading the fleet record: %w", err)
	}
	var r FleetRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("reading the fleet record: %w", err)
	}
	if err := r.Launch.validateShape(); err != nil {
		return nil, fmt.Errorf("fleet record of run %s: %w", run.ID, err)
	}
	return &r, nil
}

// MaintainSpec is a launched run to follow and keep at its capacity, from
// its fleet record, without launching it.
type MaintainSpec struct {
	EC2       EC2API
	Run       *staging.Run
	Manifest  *staging.Manifest
	Record    *FleetRecord
	Collector Collector
	// Progress reads the run's progress; Run when nil.
	Progress ProgressReader
	Poll     time.Duration
	// Teardown: end the fleet when the follow ends (as a submit does);
	// otherwise leave it to end itself.
	Teardown bool
	Clock    Clock
	Events   func(Event)
	Logger   *slog.Logger
}

// Maintain follows a launched run as Follow does, replacing instances
// that end while work remains within the record's rate, budget and
// deadline. It returns as Execute does; with spec.Teardown the fleet is
// ended however the follow ends.
func Maintain(ctx context.Context, spec MaintainSpec) (*CloudResult, error) {
	c := newCloudRun(CloudRunSpec{
		EC2: spec.EC2, Run: spec.Run, Manifest: spec.Manifest, Collector: spec.Collector, Progress: spec.Progress,
		Quote: &Quote{Budget: spec.Record.Budget, BootTime: spec.Record.BootTime},
		Poll:  spec.Poll, Clock: spec.Clock, Events: spec.Events, Logger: spec.Logger,
	})
	c.record = spec.Record
	c.launch = spec.Record.Launch
	c.launch.Logger = c.log
	c.start = spec.Record.Started
	c.deadline = spec.Record.Launch.Expires
	// A new process: client tokens of its own, never a replay of an
	// earlier launch's.
	c.attempt = int(c.clock.Now().Unix() % (1 << 30))
	c.meter = NewMeter(nil)
	c.meter.prices = spec.Record.Launch.priceOf
	if spec.Teardown {
		c.cleanups.add("ending the fleet", c.down)
	}
	state, err := c.Follow(ctx)
	var downErr error
	if spec.Teardown {
		c.emit(Event{Kind: EventStopping, Message: stoppingMessage(state, err)})
		downErr = c.Teardown(ctx)
	}
	res := c.finish(ctx, state)
	if downErr != nil {
		return res, downErr
	}
	return res, err
}
