package staging

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Lease is the content of runs/<id>/leases/<chunk>: who works on a chunk
// and how far they got.
//
// The protocol (see Run.Claim):
//   - claim: Create the lease; ErrExists means someone else has it.
//   - renew: Replace it, naming the ETag we wrote, well before it lapses.
//   - take over a lapsed or released lease: Replace it naming the ETag we
//     read; of several takers, one wins.
//   - complete: Replace it with Done set; nobody claims the chunk again.
//
// Time is the store's: a lease has lapsed when the store's current time
// (Store.Now) is past the lease object's last-modified time (as the store
// stamped it) plus the TTL plus ClockGrace, so no two machines' clocks are
// ever compared. The holder, for its part, counts its lease as valid
// until the TTL has elapsed (on its own monotonic clock) since it sent the
// write that last succeeded: never longer than any taker would.
//
// Completing, releasing and taking over also leave a marker beside the
// lease (<chunk>.done, <chunk>.released, <chunk>.takeover), so that
// hundreds of workers can tell from one listing, without reading each
// lease, which chunks are finished and which were given up (see
// executor.Claimer), and so that progress knows which tasks may have run
// twice (see Run.ReadProgress). The lease itself stays the authority.
type Lease struct {
	Worker string `json:"worker"`
	// Token names one holding of the lease, from claim to loss: every
	// write of it carries the token, so a holder that is told its write
	// failed can recognise its own write in the store (see HeldLease).
	Token    string `json:"token"`
	Done     bool   `json:"done,omitempty"`
	Released bool   `json:"released,omitempty"`
	// Finished lists the positions within the chunk whose tasks are
	// finished (committed), so a taker skips them without a request.
	Finished []int `json:"finished,omitempty"`
	// Running lists the positions the holder was running when it last
	// wrote the lease: if the holder is lost, these tasks were running
	// when it was.
	Running []int `json:"running,omitempty"`
	// Lost counts, by position, how often a holder was lost while the
	// task ran (see MaxLost in Manifest).
	Lost map[int]int `json:"lost,omitempty"`
	// Takeovers counts how often the chunk changed hands after a lapse
	// or a release.
	Takeovers int `json:"takeovers,omitempty"`
}

// ClockGrace is added to a lease's TTL before anyone takes it over: it
// covers the one-second resolution of the store's timestamps.
const ClockGrace = time.Second

// ClaimOutcome says what a claim attempt found.
type ClaimOutcome int

const (
	// Claimed: the chunk is ours (fresh, or taken over: see HeldLease.TakenOver).
	Claimed ClaimOutcome = iota
	// Busy: another worker holds a live lease, or won the race for it.
	Busy
	// ChunkDone: the chunk is complete.
	ChunkDone
)

// ErrLeaseLost means the holder can no longer count on its lease: another
// worker took the chunk over, or the lease could not be renewed before it
// lapsed. The holder must stop starting the chunk's tasks; tasks it
// finishes anyway go through the write-once commit (see Status).
var ErrLeaseLost = errors.New("lease lost")

// HeldLease is a lease this worker holds. Its methods are safe for
// concurrent use, and every write of the lease is serialized: a renewal
// and a completion never race.
type HeldLease struct {
	run   *Run
	Chunk int
	// TakenOver is set when the chunk was claimed from a lapsed or
	// released lease: Lease().Finished then tells what the previous
	// holders completed.
	TakenOver bool
	ttl       time.Duration

	mu    sync.Mutex
	lease Lease
	etag  string
	valid time.Time // on the monotonic clock
	ended bool      // completed, released or lost: written no more
}

// Lease returns the lease as last written.
func (h *HeldLease) Lease() Lease {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lease
}

// ValidUntil returns the instant, on this machine's monotonic clock (compare
// it with time.Now()), until which nobody else can take the lease over:
// the TTL after the last successful write was sent.
func (h *HeldLease) ValidUntil() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.valid
}

func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Claim tries to take chunk for worker, with lease time ttl. It returns the
// held lease when the outcome is Claimed; Busy and ChunkDone are not
// errors. When the chunk is Busy, lapses says when, on the store's clock,
// the holder's lease lapses unless renewed (zero when another claimer has
// just won a race).
//
// A lost answer is no loss: a Create or Replace that took effect although
// the store reported an error is recognised by reading the lease back.
func (r *Run) Claim(ctx context.Context, chunk int, worker string, ttl time.Duration) (held *HeldLease, out ClaimOutcome, lapses time.Time, err error) {
	held, out, err = r.ClaimFresh(ctx, chunk, worker, ttl)
	if err != nil || out == Claimed {
		return held, out, time.Time{}, err
	}
	key := r.LeaseKey(chunk)
	data, etag, err := r.Store.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return nil, Busy, time.Time{}, nil // deleted since (run being removed)
	}
	if err != nil {
		return nil, 0, time.Time{}, fmt.Errorf("reading lease of chunk %d: %w", chunk, err)
	}
	var cur Lease
	if json.Unmarshal(data, &cur) != nil {
		// A lease we cannot read is treated as released, so that the
		// chunk is not stuck forever; its ETag still guards the takeover.
		cur = Lease{Released: true}
	}
	if cur.Done {
		return nil, ChunkDone, time.Time{}, nil
	}
	if !cur.Released {
		info, err := r.Store.Stat(ctx, key)
		if errors.Is(err, ErrNotFound) {
			return nil, Busy, time.Time{}, nil
		}
		if err != nil {
			return nil, 0, time.Time{}, fmt.Errorf("reading lease of chunk %d: %w", chunk, err)
		}
		if info.ETag != etag {
			return nil, Busy, time.Time{}, nil // rewritten since we read it: live
		}
		now, err := r.Store.Now(ctx)
		if err != nil {
			return nil, 0, time.Time{}, fmt.Errorf("reading the store's clock: %w", err)
		}
		lapses = info.Modified.Add(ttl + ClockGrace)
		if !now.After(lapses) {
			return nil, Busy, lapses, nil
		}
	}
	taken := Lease{Worker: worker, Token: newToken(), Finished: cur.Finished, Lost: cur.Lost, Takeovers: cur.Takeovers + 1}
	if !cur.Released {
		// The holder was lost: so were the tasks it was running.
		for _, p := range cur.Running {
			if !slices.Contains(cur.Finished, p) {
				if taken.Lost == nil {
					taken.Lost = map[int]int{}
				}
				taken.Lost[p]++
			}
		}
	}
	h := &HeldLease{run: r, Chunk: chunk, ttl: ttl, TakenOver: true}
	if err := h.replace(ctx, taken, etag); errors.Is(err, ErrLeaseLost) {
		return nil, Busy, time.Time{}, nil
	} else if err != nil {
		return nil, 0, time.Time{}, fmt.Errorf("taking over chunk %d: %w", chunk, err)
	}
	if err := h.mark(ctx, TakeoverMarker); err != nil {
		// Not one task of it has started: give it up again at once.
		h.Release(ctx, taken.Finished)
		return nil, 0, time.Time{}, err
	}
	return h, Claimed, time.Time{}, nil
}

// ClaimFresh claims a chunk that was seen without a lease: it only tries to
// create the lease, and reports Busy when another worker has created it
// first, without reading it (a lease just created is live).
func (r *Run) ClaimFresh(ctx context.Context, chunk int, worker string, ttl time.Duration) (*HeldLease, ClaimOutcome, error) {
	fresh := Lease{Worker: worker, Token: newToken()}
	data, _ := json.Marshal(fresh)
	key := r.LeaseKey(chunk)
	sent := time.Now()
	etag, err := r.Store.Create(ctx, key, data)
	if err != nil && !errors.Is(err, ErrExists) && ctx.Err() == nil {
		// The answer may have been lost on the way: read it back.
		if cur, tag, ok := r.ownLease(ctx, chunk, fresh.Token); ok {
			fresh, etag, err = cur, tag, nil
		}
	}
	switch {
	case err == nil:
		return &HeldLease{run: r, Chunk: chunk, ttl: ttl, lease: fresh, etag: etag, valid: sent.Add(ttl)}, Claimed, nil
	case errors.Is(err, ErrExists):
		return nil, Busy, nil
	}
	return nil, 0, fmt.Errorf("claiming chunk %d: %w", chunk, err)
}

// ownLease reads a chunk's lease back and reports whether it carries
// token: after a write whose answer was lost, whether the write (or an
// earlier one of this holding) took effect. Reads that fail are tried
// again for a few seconds, since the answer decides whether a lease that
// may well be ours is kept.
func (r *Run) ownLease(ctx context.Context, chunk int, token string) (Lease, string, bool) {
	wait := 50 * time.Millisecond
	for try := 0; ; try++ {
		data, etag, err := r.Store.Get(ctx, r.LeaseKey(chunk))
		if err == nil {
			var l Lease
			if json.Unmarshal(data, &l) != nil || l.Token != token {
				return Lease{}, "", false
			}
			return l, etag, true
		}
		if errors.Is(err, ErrNotFound) || ctx.Err() != nil || try == 5 {
			return Lease{}, "", false
		}
		select {
		case <-ctx.Done():
			return Lease{}, "", false
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// ReadLease returns a chunk's lease, or ErrNotFound when nobody claimed it.
func (r *Run) ReadLease(ctx context.Context, chunk int) (Lease, error) {
	data, _, err := r.Store.Get(ctx, r.LeaseKey(chunk))
	if err != nil {
		return Lease{}, err
	}
	var l Lease
	if err := json.Unmarshal(data, &l); err != nil {
		return Lease{}, fmt.Errorf("reading lease of chunk %d: %w", chunk, err)
	}
	return l, nil
}

// replace writes next over the version etag, with h.mu held or h not yet
// shared. After a refusal it reads the lease back: if it carries our token,
// an earlier write of ours took effect although its answer was lost, and
// nobody wrote since; the write is made again over that version.
func (h *HeldLease) replace(ctx context.Context, next Lease, etag string) error {
	data, _ := json.Marshal(next)
	key := h.run.LeaseKey(h.Chunk)
	for tries := 0; ; tries++ {
		sent := time.Now()
		newTag, err := h.run.Store.Replace(ctx, key, data, etag)
		if err != nil && !errors.Is(err, ErrChanged) && !errors.Is(err, ErrNotFound) && ctx.Err() == nil {
			// The answer may have been lost: did the write land?
			if cur, tag, ok := h.run.ownLease(ctx, h.Chunk, next.Token); ok && slices.Equal(mustJSON(cur), data) {
				newTag, err = tag, nil
			}
		}
		if errors.Is(err, ErrChanged) && tries == 0 {
			if _, tag, ok := h.run.ownLease(ctx, h.Chunk, next.Token); ok {
				etag = tag
				continue
			}
		}
		if errors.Is(err, ErrChanged) || errors.Is(err, ErrNotFound) {
			return fmt.Errorf("chunk %d: %w", h.Chunk, ErrLeaseLost)
		}
		if err != nil {
			return fmt.Errorf("writing lease of chunk %d: %w", h.Chunk, err)
		}
		h.lease, h.etag, h.valid = next, newTag, sent.Add(h.ttl)
		return nil
	}
}

func mustJSON(v any) []byte {
	data, _ := json.Marshal(v)
	return data
}

// update applies change to the lease and writes it, unless the holding
// has ended. A write that fails past the lease's time, or that another
// worker's takeover refuses, ends the holding with ErrLeaseLost.
func (h *HeldLease) update(ctx context.Context, change func(*Lease), end bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ended {
		return fmt.Errorf("chunk %d: %w", h.Chunk, ErrLeaseLost)
	}
	next := h.lease
	next.Finished = slices.Clone(next.Finished)
	change(&next)
	err := h.replace(ctx, next, h.etag)
	if errors.Is(err, ErrLeaseLost) || err != nil && !time.Now().Before(h.valid) {
		h.ended = true
		return fmt.Errorf("chunk %d: %w (%v)", h.Chunk, ErrLeaseLost, err)
	}
	if err == nil && end {
		h.ended = true
	}
	return err
}

// Renew rewrites the lease, restarting its TTL, with the positions now
// finished and running. It returns ErrLeaseLost when the holding has
// ended: another worker took the chunk over, or the lease lapsed before a
// renewal got through.
func (h *HeldLease) Renew(ctx context.Context, finished, running []int) error {
	return h.update(ctx, func(l *Lease) {
		l.Finished = slices.Sorted(slices.Values(finished))
		l.Running = slices.Sorted(slices.Values(running))
	}, false)
}

// finished reports whether the holding already ended with the lease
// done (or released, with released set): a call that failed after its
// write, at the marker, may then be made again.
func (h *HeldLease) finished(released bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ended && (h.lease.Done && !released || h.lease.Released && released)
}

// Complete marks the chunk done for good. After an error it may be called
// again.
func (h *HeldLease) Complete(ctx context.Context, finished []int) error {
	if h.finished(false) {
		return h.mark(ctx, DoneMarker)
	}
	if err := h.update(ctx, func(l *Lease) {
		l.Done = true
		l.Finished = slices.Sorted(slices.Values(finished))
		l.Running = nil
	}, true); err != nil {
		return err
	}
	return h.mark(ctx, DoneMarker)
}

// Lease markers, the suffixes of the objects written beside a lease.
const (
	DoneMarker     = ".done"
	ReleasedMarker = ".released"
	// TakeoverMarker is written by a worker that took the chunk over,
	// before it starts any of its tasks: from then on, two executions of
	// one of its tasks may have overlapped (see Run.ReadProgress).
	TakeoverMarker = ".takeover"
)

// mark writes a marker beside the lease (see Lease).
func (h *HeldLease) mark(ctx context.Context, suffix string) error {
	if _, err := h.run.Store.Put(ctx, h.run.LeaseKey(h.Chunk)+suffix, nil); err != nil {
		return fmt.Errorf("marking chunk %d %s: %w", h.Chunk, suffix[1:], err)
	}
	return nil
}

// Release gives the chunk up at once so another worker can take it without
// waiting for the TTL, keeping what was finished. Used on cancel,
// interrupt and spot notices. After an error it may be called again.
func (h *HeldLease) Release(ctx context.Context, finished []int) error {
	if h.finished(true) {
		return h.mark(ctx, ReleasedMarker)
	}
	if err := h.update(ctx, func(l *Lease) {
		l.Released = true
		l.Finished = slices.Sorted(slices.Values(finished))
		l.Running = nil
	}, true); err != nil {
		return err
	}
	return h.mark(ctx, ReleasedMarker)
}

// Lose ends the holding without a write: the holder gave up on it (its
// time ran out). Later writes report ErrLeaseLost.
func (h *HeldLease) Lose() {
	h.mu.Lock()
	h.ended = true
	h.mu.Unlock()
}
