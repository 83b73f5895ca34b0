package staging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Heartbeat is the content of runs/<id>/workers/<worker>.json, rewritten
// by each worker every HeartbeatS seconds.
type Heartbeat struct {
	Worker   string `json:"worker"`
	Host     string `json:"host"`
	PID      int    `json:"pid"`
	Instance string `json:"instance,omitempty"`
	// InstanceType and Zone describe the cloud machine, when on one.
	InstanceType string   `json:"instance_type,omitempty"`
	Zone         string   `json:"zone,omitempty"`
	Slots        int      `json:"slots"`
	Running      []string `json:"running"`
	OK           int      `json:"ok"`
	Failed       int      `json:"failed"`
	State        string   `json:"state"` // running, draining or exited
	// Reason says why the worker is draining or exited, when it was not
	// for want of work (a spot interruption notice, for one).
	Reason     string    `json:"reason,omitempty"`
	Started    time.Time `json:"started"`
	LastSeen   time.Time `json:"last_seen"` // on the worker's clock, for people
	HeartbeatS float64   `json:"heartbeat_s"`
	// Written is when the store received the heartbeat, on its clock:
	// what liveness is judged by (see Live). Not stored.
	Written time.Time `json:"-"`
}

// Live reports whether the worker is still working: it has not exited and
// its heartbeat was written within three heartbeats of now, the store's
// time (Store.Now). Only the store's clock is used, when Written is known.
func (h Heartbeat) Live(now time.Time) bool {
	every := time.Duration(h.HeartbeatS * float64(time.Second))
	if every <= 0 {
		every = 5 * time.Second
	}
	seen := h.Written
	if seen.IsZero() {
		seen = h.LastSeen
	}
	return h.State != "exited" && now.Sub(seen) < 3*every+2*time.Second
}

// Run states, derived from the store alone.
const (
	StateRunning   = "running"   // some worker is live
	StateDone      = "done"      // every task finished (ok or failed)
	StateCancelled = "cancelled" // burst cancel was called
	StateStopped   = "stopped"   // unfinished and nobody is working: burst resume
)

// CancelFlag is the control object whose presence cancels a run.
const CancelFlag = "cancel"

// Cancelled reports whether the run's cancel flag is set.
func (r *Run) Cancelled(ctx context.Context) (bool, error) {
	_, err := r.Store.Stat(ctx, r.ControlKey(CancelFlag))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Cancel sets the run's cancel flag: workers stop their tasks and claim no
// more. Cancelling twice is fine.
func (r *Run) Cancel(ctx context.Context, by string) error {
	data, _ := json.Marshal(map[string]any{"by": by, "at": time.Now().UTC()})
	if _, err := r.Store.Put(ctx, r.ControlKey(CancelFlag), data); err != nil {
		return fmt.Errorf("cancelling run %s: %w", r.ID, err)
	}
	return nil
}

// Uncancel clears the cancel flag, for resume.
func (r *Run) Uncancel(ctx context.Context) error {
	return r.Store.Delete(ctx, r.ControlKey(CancelFlag))
}

// Progress is a run's state as the store tells it.
type Progress struct {
	Run     string      `json:"run"`
	State   string      `json:"state"`
	Total   int         `json:"total"`
	OK      int         `json:"ok"`
	Failed  int         `json:"failed"`
	Running int         `json:"running"`
	Queued  int         `json:"queued"`
	Workers int         `json:"live_workers"`
	Created time.Time   `json:"created"`
	Beats   []Heartbeat `json:"-"`
	// Now is the store's time when the progress was read: judge the
	// heartbeats' liveness against it.
	Now time.Time `json:"-"`
	// Finished is the set of finished task ids, and OKSet those that
	// succeeded.
	Finished map[string]bool `json:"-"`
	OKSet    map[string]bool `json:"-"`
}

// Done returns the number of finished tasks.
func (p Progress) Done() int { return p.OK + p.Failed }

// ReadProgress rebuilds the run's progress from the commit points of its
// tasks (see Status) and its heartbeats: three listings and one read per
// worker, whatever the number of tasks, plus one read of each finished
// task (once per Run) in the chunks whose executions may have overlapped.
//
// A task is finished when its status exists. It failed when no execution
// wrote an output. When some did, it succeeded, unless its chunk was ever
// taken over (a takeover marker beside its lease): only then may an
// output be a losing execution's, and the status, which names the
// winner's, is read.
func (r *Run) ReadProgress(ctx context.Context, m *Manifest) (Progress, error) {
	p := Progress{Run: r.ID, Total: len(m.Tasks), Created: m.Created, Finished: map[string]bool{}, OKSet: map[string]bool{}}
	statuses, err := r.Store.List(ctx, r.prefix()+"status/")
	if err != nil {
		return p, fmt.Errorf("reading progress: %w", err)
	}
	results, err := r.Store.List(ctx, r.prefix()+"results/")
	if err != nil {
		return p, fmt.Errorf("reading progress: %w", err)
	}
	leases, err := r.Store.List(ctx, r.prefix()+"leases/")
	if err != nil {
		return p, fmt.Errorf("reading progress: %w", err)
	}
	withResult := map[string]bool{}
	for _, o := range results {
		name := strings.TrimSuffix(strings.TrimPrefix(o.Key, r.prefix()+"results/"), ".pkl")
		if i := strings.LastIndexByte(name, '.'); i > 0 {
			withResult[name[:i]] = true
		}
	}
	overlapped := map[string]bool{} // tasks of chunks taken over
	for _, o := range leases {
		name, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, r.prefix()+"leases/"), TakeoverMarker)
		if !ok {
			continue
		}
		if c, err := strconv.Atoi(name); err == nil && c >= 0 && c < len(m.Chunks) {
			for _, id := range m.Tasks[m.Chunks[c].Start:m.Chunks[c].End] {
				overlapped[id] = true
			}
		}
	}
	var check []string
	for _, o := range statuses {
		id := strings.TrimSuffix(strings.TrimPrefix(o.Key, r.prefix()+"status/"), ".json")
		p.Finished[id] = true
		switch {
		case !withResult[id]:
			p.Failed++
		case overlapped[id]:
			check = append(check, id)
		default:
			p.OKSet[id] = true
			p.OK++
		}
	}
	sts, err := r.readStatuses(ctx, check)
	if err != nil {
		return p, fmt.Errorf("reading progress: %w", err)
	}
	for _, st := range sts {
		if st.Status == StatusOK {
			p.OKSet[st.Task] = true
			p.OK++
		} else {
			p.Failed++
		}
	}
	beats, err := r.Store.List(ctx, r.prefix()+"workers/")
	if err != nil {
		return p, fmt.Errorf("reading progress: %w", err)
	}
	now, err := r.Store.Now(ctx)
	if err != nil {
		return p, fmt.Errorf("reading progress: %w", err)
	}
	p.Now = now
	for _, o := range beats {
		data, _, err := r.Store.Get(ctx, o.Key)
		if err != nil {
			continue // gone since listed
		}
		var hb Heartbeat
		if json.Unmarshal(data, &hb) != nil {
			continue
		}
		hb.Written = o.Modified
		p.Beats = append(p.Beats, hb)
		if hb.Live(now) {
			p.Workers++
			for _, id := range hb.Running {
				if !p.Finished[id] {
					p.Running++
				}
			}
		}
	}
	p.Queued = max(0, p.Total-p.Done()-p.Running)
	cancelled, err := r.Cancelled(ctx)
	if err != nil {
		return p, fmt.Errorf("reading progress: %w", err)
	}
	switch {
	case p.Done() >= p.Total:
		p.State = StateDone
	case cancelled:
		p.State = StateCancelled
	case p.Workers > 0:
		p.State = StateRunning
	default:
		p.State = StateStopped
	}
	return p, nil
}

// readStatuses reads the statuses of tasks, statusReaders at a time.
func (r *Run) readStatuses(ctx context.Context, tasks []string) ([]*Status, error) {
	out := make([]*Status, len(tasks))
	errs := make([]error, len(tasks))
	sem := make(chan struct{}, statusReaders)
	var wg sync.WaitGroup
	for i, id := range tasks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i], errs[i] = r.ReadStatus(ctx, id)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// statusReaders bounds concurrent status reads.
const statusReaders = 16
