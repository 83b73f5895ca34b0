package staging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Lease is the content of runs/<id>/leases/<chunk>: who works on a chunk,
// until when, and how far they got.
//
// The protocol (see Run.Claim):
//   - claim: Create the lease; ErrExists means someone else has it.
//   - renew: Replace it, naming the ETag we wrote, before it expires.
//   - take over an expired or released lease: Replace it naming the ETag we
//     read; of several takers, one wins.
//   - complete: Replace it with Done set; nobody claims the chunk again.
//
// Completing and releasing also leave a marker beside the lease
// (<chunk>.done, <chunk>.released), so that hundreds of workers can tell
// from one listing, without reading each lease, which chunks are finished
// and which were given up (see executor.Claimer). The lease itself stays
// the authority: markers only say which leases are worth reading.
//
// Expiry uses the writers' clocks, which must agree to well within the TTL.
type Lease struct {
	Worker  string    `json:"worker"`
	Expires time.Time `json:"expires"`
	Done    bool      `json:"done,omitempty"`
	// Finished lists the positions within the chunk whose tasks are
	// finished (status written), so a taker skips them without a request.
	Finished []int `json:"finished,omitempty"`
	// Takeovers counts how often the chunk changed hands after a lapse.
	Takeovers int `json:"takeovers,omitempty"`
}

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

// ErrLeaseLost means another worker took the chunk over: the holder
// must stop starting its tasks. Tasks it finishes anyway are refused by the
// write-once result and status.
var ErrLeaseLost = errors.New("lease lost to another worker")

// HeldLease is a lease this worker holds.
type HeldLease struct {
	run   *Run
	Chunk int
	Lease Lease
	etag  string
	// TakenOver is set when the chunk was claimed from a lapsed lease:
	// Lease.Finished then tells what the previous holder completed.
	TakenOver bool
}

// Claim tries to take chunk for worker, for ttl from now. It returns the
// held lease when the outcome is Claimed; Busy and ChunkDone are not errors.
// When the chunk is Busy, the returned Lease is the holder's (for its
// expiry); it is the zero Lease when another claimer won a race.
func (r *Run) Claim(ctx context.Context, chunk int, worker string, ttl time.Duration, now time.Time) (*HeldLease, ClaimOutcome, Lease, error) {
	key := r.LeaseKey(chunk)
	fresh := Lease{Worker: worker, Expires: now.Add(ttl)}
	data, _ := json.Marshal(fresh)
	etag, err := r.Store.Create(ctx, key, data)
	if err == nil {
		return &HeldLease{run: r, Chunk: chunk, Lease: fresh, etag: etag}, Claimed, Lease{}, nil
	}
	if !errors.Is(err, ErrExists) {
		return nil, 0, Lease{}, fmt.Errorf("claiming chunk %d: %w", chunk, err)
	}
	cur, curTag, err := r.readLease(ctx, chunk)
	if errors.Is(err, ErrNotFound) {
		// Deleted between our Create and Get (run being removed): busy.
		return nil, Busy, Lease{}, nil
	}
	if err != nil {
		return nil, 0, Lease{}, err
	}
	if cur.Done {
		return nil, ChunkDone, cur, nil
	}
	if now.Before(cur.Expires) {
		return nil, Busy, cur, nil
	}
	taken := Lease{Worker: worker, Expires: now.Add(ttl), Finished: cur.Finished, Takeovers: cur.Takeovers + 1}
	data, _ = json.Marshal(taken)
	etag, err = r.Store.Replace(ctx, key, data, curTag)
	if errors.Is(err, ErrChanged) || errors.Is(err, ErrNotFound) {
		return nil, Busy, Lease{}, nil
	}
	if err != nil {
		return nil, 0, Lease{}, fmt.Errorf("taking over chunk %d: %w", chunk, err)
	}
	h := &HeldLease{run: r, Chunk: chunk, Lease: taken, etag: etag, TakenOver: true}
	if err := h.mark(ctx, TakeoverMarker); err != nil {
		return nil, 0, Lease{}, err
	}
	return h, Claimed, Lease{}, nil
}

// ClaimFresh claims a chunk that was seen without a lease: it only tries to
// create the lease, and reports Busy when another worker has created it
// first, without reading it (a lease just created is live).
func (r *Run) ClaimFresh(ctx context.Context, chunk int, worker string, ttl time.Duration, now time.Time) (*HeldLease, ClaimOutcome, error) {
	fresh := Lease{Worker: worker, Expires: now.Add(ttl)}
	data, _ := json.Marshal(fresh)
	etag, err := r.Store.Create(ctx, r.LeaseKey(chunk), data)
	switch {
	case err == nil:
		return &HeldLease{run: r, Chunk: chunk, Lease: fresh, etag: etag}, Claimed, nil
	case errors.Is(err, ErrExists):
		return nil, Busy, nil
	}
	return nil, 0, fmt.Errorf("claiming chunk %d: %w", chunk, err)
}

func (r *Run) readLease(ctx context.Context, chunk int) (Lease, string, error) {
	data, etag, err := r.Store.Get(ctx, r.LeaseKey(chunk))
	if err != nil {
		return Lease{}, "", err
	}
	var l Lease
	if err := json.Unmarshal(data, &l); err != nil {
		// A lease we cannot read is treated as lapsed, so the chunk is
		// not stuck forever; its ETag still guards the takeover.
		return Lease{}, etag, nil
	}
	return l, etag, nil
}

// ReadLease returns a chunk's lease, or ErrNotFound when nobody claimed it.
func (r *Run) ReadLease(ctx context.Context, chunk int) (Lease, error) {
	l, _, err := r.readLease(ctx, chunk)
	return l, err
}

// write replaces our lease with next, or reports ErrLeaseLost.
func (h *HeldLease) write(ctx context.Context, next Lease) error {
	data, _ := json.Marshal(next)
	etag, err := h.run.Store.Replace(ctx, h.run.LeaseKey(h.Chunk), data, h.etag)
	if errors.Is(err, ErrChanged) || errors.Is(err, ErrNotFound) {
		return fmt.Errorf("chunk %d: %w", h.Chunk, ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("writing lease of chunk %d: %w", h.Chunk, err)
	}
	h.etag, h.Lease = etag, next
	return nil
}

// Renew extends the lease to ttl from now and records the finished
// positions. It returns ErrLeaseLost if another worker has taken it.
func (h *HeldLease) Renew(ctx context.Context, finished []int, ttl time.Duration, now time.Time) error {
	next := h.Lease
	next.Expires = now.Add(ttl)
	next.Finished = slices.Sorted(slices.Values(finished))
	return h.write(ctx, next)
}

// Complete marks the chunk done for good.
func (h *HeldLease) Complete(ctx context.Context, finished []int) error {
	next := h.Lease
	next.Done = true
	next.Finished = slices.Sorted(slices.Values(finished))
	if err := h.write(ctx, next); err != nil {
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

// Release gives the chunk up at once (expiring the lease now) so another
// worker can take it without waiting for the TTL, keeping what was
// finished. Used on cancel, interrupt and spot notices.
func (h *HeldLease) Release(ctx context.Context, finished []int, now time.Time) error {
	next := h.Lease
	next.Expires = now.Add(-time.Second)
	next.Finished = slices.Sorted(slices.Values(finished))
	if err := h.write(ctx, next); err != nil {
		return err
	}
	return h.mark(ctx, ReleasedMarker)
}
