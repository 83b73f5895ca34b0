package executor

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/slicerburst/burst/staging"
)

// Claimer picks the chunks one worker claims. Hundreds of workers may share
// a run, so it avoids asking for chunks that others hold, and it learns
// what it needs from listings of the leases (a thousand chunks a request)
// rather than by reading each one.
//
// While some chunks have no lease, it lists the leases near the first such
// chunk and claims one of them, chosen at random among the first few so
// that workers starting together spread out while the run still proceeds
// roughly in order (large chunks first, as planned).
//
// When every chunk has a lease, it lists them all. A chunk with a done
// marker is finished. A lease that was released (it has a newer released
// marker) or whose renewal is overdue may be claimable: the Claimer reads
// it by trying to claim it, taking it over if it lapsed, and otherwise
// learning when it will. Leases renewed on time belong to live workers
// and cost nothing.
//
// A Claimer is used by one goroutine.
type Claimer struct {
	run    *staging.Run
	man    *staging.Manifest
	worker string
	ttl    time.Duration
	poll   time.Duration
	window int
	// wait: keep waiting for chunks held by live workers until every
	// chunk is done, rather than returning when nothing is claimable.
	wait bool

	chunks  []chunkView
	left    int  // chunks not known to be done
	low     int  // every chunk below low has a lease
	fresh   bool // the view was refreshed since the last claim
	stats   ClaimStats
	nowFunc func() time.Time
}

// chunkView is what a Claimer knows of one chunk.
type chunkView struct {
	done     bool
	written  time.Time // when its lease was last written; zero: no lease seen
	released time.Time // when its released marker was last written
	checked  time.Time // the lease version (by written) last read
	expires  time.Time // the holder's expiry, when read
	renewed  bool      // its lease was seen rewritten: a live holder
}

// ClaimStats counts a Claimer's claim attempts and listings.
type ClaimStats struct {
	// Claimed counts chunks won (fresh or taken over).
	Claimed int
	// Failed counts attempts that found the chunk held or done.
	Failed int
	// Lists counts lease listings.
	Lists int
}

// leaseBlock is how many chunks one listing covers: lease keys are
// zero-padded, so the keys of a block share a prefix.
const leaseBlock = 1000

// NewClaimer returns a Claimer for worker on run. With wait set, Next
// returns nil only when every chunk is done, looking again every poll;
// without, it returns nil as soon as nothing is left to claim but chunks
// that live workers hold.
func NewClaimer(run *staging.Run, man *staging.Manifest, worker string, poll time.Duration, wait bool) *Claimer {
	n := len(man.Chunks)
	return &Claimer{
		run: run, man: man, worker: worker, ttl: man.LeaseTTL.D(), poll: poll, wait: wait,
		window: max(2, 2*man.Slots),
		chunks: make([]chunkView, n), left: n,
		nowFunc: time.Now,
	}
}

// Stats returns the counts so far.
func (c *Claimer) Stats() ClaimStats { return c.stats }

// Done records that chunk is complete.
func (c *Claimer) Done(chunk int) {
	if !c.chunks[chunk].done {
		c.chunks[chunk].done = true
		c.left--
	}
}

// Next claims a chunk and returns its lease, or nil when nothing is left
// to claim (see NewClaimer).
func (c *Claimer) Next(ctx context.Context) (*staging.HeldLease, error) {
	for c.left > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// A chunk nobody has claimed yet. Leases are never removed, so a
		// view without free chunks needs no refresh to be believed.
		free := c.unleased()
		if len(free) > 0 && !c.fresh {
			if err := c.refresh(ctx, c.low, c.low+c.window); err != nil {
				return nil, err
			}
			free = c.unleased()
		}
		if len(free) > 0 {
			held, err := c.claim(ctx, free[mrand.IntN(len(free))])
			if held != nil || err != nil {
				return held, err
			}
			continue // taken meanwhile: try another from the same view
		}

		// Every chunk left has a lease: look for released and lapsed ones.
		if err := c.refresh(ctx, 0, len(c.chunks)); err != nil {
			return nil, err
		}
		now := c.nowFunc()
		next, suspect := now.Add(c.poll), false
		for i := range c.chunks {
			v := &c.chunks[i]
			if v.done {
				continue
			}
			unread := v.checked.Before(v.written)
			released := !v.released.IsZero() && !v.released.Before(v.written)
			switch {
			case unread && (released || now.Sub(v.written) > c.ttl/2),
				!unread && !v.expires.IsZero() && !now.Before(v.expires):
				// Released, overdue for renewal, or lapsed since it was
				// read: claim it, or learn when it lapses.
				held, err := c.claim(ctx, i)
				if held != nil || err != nil {
					return held, err
				}
				if !v.done {
					suspect = true
					next = minTime(next, v.expires)
				}
			case !unread && !v.expires.IsZero():
				// Read, and not renewed since: it lapses then.
				suspect = true
				next = minTime(next, v.expires)
			case !v.renewed:
				// Not seen renewed yet: its holder may be gone.
				suspect = true
			}
		}
		if c.left == 0 {
			break
		}
		if !c.wait && !suspect {
			return nil, nil // only chunks that live workers renew are left
		}
		c.fresh = false
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(max(next.Sub(c.nowFunc()), 0) + 50*time.Millisecond):
		}
	}
	return nil, nil
}

// claim tries chunk i and records what it found.
func (c *Claimer) claim(ctx context.Context, i int) (*staging.HeldLease, error) {
	now := c.nowFunc()
	held, outcome, holder, err := c.run.Claim(ctx, i, c.worker, c.ttl, now)
	if err != nil {
		return nil, err
	}
	v := &c.chunks[i]
	switch outcome {
	case staging.Claimed:
		c.stats.Claimed++
		v.written, v.checked, v.expires = now, now, held.Lease.Expires
		c.fresh = false
		return held, nil
	case staging.ChunkDone:
		c.stats.Failed++
		c.Done(i)
	case staging.Busy:
		c.stats.Failed++
		if v.written.IsZero() {
			v.written = now // another claimer just won it
		}
		v.checked = v.written
		v.expires = holder.Expires
		if v.expires.IsZero() {
			v.expires = now.Add(c.ttl)
		}
	}
	return nil, nil
}

// unleased returns the chunks of the window starting at the first one
// without a lease that have none, in order.
func (c *Claimer) unleased() []int {
	for c.low < len(c.chunks) && (c.chunks[c.low].done || !c.chunks[c.low].written.IsZero()) {
		c.low++
	}
	var out []int
	for i := c.low; i < len(c.chunks) && len(out) < c.window; i++ {
		if !c.chunks[i].done && c.chunks[i].written.IsZero() {
			out = append(out, i)
		}
	}
	return out
}

// refresh lists the leases and markers of chunks [from, to), a block of a
// thousand chunks per listing.
func (c *Claimer) refresh(ctx context.Context, from, to int) error {
	prefix := c.run.LeaseKey(0)
	prefix = prefix[:strings.LastIndexByte(prefix, '/')+1]
	block := func(b int) string { return fmt.Sprintf("%s%03d", prefix, b) }
	if len(c.chunks) > 999999 { // keys longer than six digits: list them all
		from, to, block = 0, 1, func(int) string { return prefix }
	}
	for b := from / leaseBlock; b*leaseBlock < min(to, len(c.chunks)); b++ {
		objs, err := c.run.Store.List(ctx, block(b))
		if err != nil {
			return fmt.Errorf("listing leases: %w", err)
		}
		c.stats.Lists++
		for _, o := range objs {
			name, marker, _ := strings.Cut(strings.TrimPrefix(o.Key, prefix), ".")
			i, err := strconv.Atoi(name)
			if err != nil || i < 0 || i >= len(c.chunks) {
				continue // not a lease of this run's chunks
			}
			v := &c.chunks[i]
			switch "." + marker {
			case ".":
				if o.Modified.After(v.written) {
					v.renewed = v.renewed || !v.written.IsZero()
					v.written = o.Modified
				}
			case staging.DoneMarker:
				c.Done(i)
			case staging.ReleasedMarker:
				if o.Modified.After(v.released) {
					v.released = o.Modified
				}
			}
		}
	}
	c.fresh = true
	return nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
