package executor

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slicerburst/burst/staging"
)

// Claimer picks the chunks one worker claims. Hundreds of workers may share
// a run, so it avoids asking for chunks that others hold, and it learns
// what it needs from listings of the leases (a hundred chunks a request)
// rather than by reading each one.
//
// While some chunks have no lease, it lists the block of leases of a chunk
// drawn at random, by size, from a window of eight times the run's slots
// after the first such chunk, and tries one unleased chunk of that block
// at random: workers starting together spread out, and the run still
// proceeds roughly in order (large chunks first, as planned).
//
// When every chunk has a lease, it lists them all. A chunk with a done
// marker is finished. A lease that was released (it has a newer released
// marker) or whose renewal is overdue may be claimable: the Claimer reads
// it by trying to claim it, taking it over if it lapsed, and otherwise
// learning when it will. Leases renewed on time belong to live workers
// and cost nothing. It waits so until every chunk is done: a worker with
// nothing to claim stays while others hold live leases, to take over the
// chunk of any that dies.
//
// Every time it compares is the store's (listings' last-modified times
// against Store.Now), so this machine's clock does not matter.
//
// A Claimer is used by one goroutine.
type Claimer struct {
	run    *staging.Run
	man    *staging.Manifest
	worker string
	ttl    time.Duration
	poll   time.Duration
	window int

	chunks []chunkView
	left   int // chunks not known to be done
	low    int // every chunk below low is leased or done
	stats  ClaimStats

	// completed holds the chunks this worker completed, from other
	// goroutines (see Completed); wake says there are some.
	mu        sync.Mutex
	completed []int
	wake      chan struct{}
}

// chunkView is what a Claimer knows of one chunk.
type chunkView struct {
	done     bool
	listed   bool      // its block was listed at least once
	written  time.Time // when its lease was last written; zero: no lease seen
	released time.Time // when its released marker was last written
	checked  time.Time // the lease version (by written) last read
	expires  time.Time // when the lease read lapses unless renewed
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
	// EndgameFailed and EndgameLists count the attempts and listings made
	// once every chunk had a lease.
	EndgameFailed, EndgameLists int
	// Errors counts store errors the claimer rode out.
	Errors int
}

// leaseBlock is how many chunks one listing covers: lease keys are
// zero-padded to six digits, so the keys of a block share a prefix of four.
const leaseBlock = 100

// NewClaimer returns a Claimer for worker on run. Its Next returns nil
// only when every chunk is done, looking again every poll.
func NewClaimer(run *staging.Run, man *staging.Manifest, worker string, poll time.Duration) *Claimer {
	n := len(man.Chunks)
	return &Claimer{
		run: run, man: man, worker: worker, ttl: man.LeaseTTL.D(), poll: poll,
		window: max(2, 8*man.Slots),
		chunks: make([]chunkView, n), left: n,
		wake: make(chan struct{}, 1),
	}
}

// Completed records that this worker completed chunk: Next, waiting for
// the last chunks, returns at once if it was the last. Safe to call from
// any goroutine.
func (c *Claimer) Completed(chunk int) {
	c.mu.Lock()
	c.completed = append(c.completed, chunk)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// takeCompleted applies what Completed recorded.
func (c *Claimer) takeCompleted() {
	c.mu.Lock()
	done := c.completed
	c.completed = nil
	c.mu.Unlock()
	for _, i := range done {
		c.Done(i)
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

// Next claims a chunk and returns its lease, or nil when every chunk is
// done. It returns an error only when ctx ends.
func (c *Claimer) Next(ctx context.Context) (*staging.HeldLease, error) {
	for c.takeCompleted(); c.left > 0; c.takeCompleted() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// A chunk nobody has claimed yet: list a block of the window
		// and try its unleased chunks, from the listing just made.
		c.advance()
		if c.low < len(c.chunks) {
			// The block of a random chunk not known to be leased, drawn
			// by its size: workers spread over the window, and the large
			// chunks still tend to go first, as guided self-scheduling
			// wants (a large chunk started late ends the run late).
			b := c.pick() / leaseBlock
			if err := c.refresh(ctx, b*leaseBlock, (b+1)*leaseBlock); err != nil {
				if err := c.storeTrouble(ctx, err); err != nil {
					return nil, err
				}
				continue
			}
			// One try per listing: after a miss the view is stale, and
			// trying the rest of it races every other worker that saw it.
			if free := c.unleased(b*leaseBlock, (b+1)*leaseBlock); len(free) > 0 {
				held, err := c.claimFresh(ctx, free[mrand.IntN(len(free))])
				if held != nil || err != nil {
					return held, err
				}
			}
			continue
		}

		// Every chunk left has a lease: look for released and lapsed ones.
		lists := c.stats.Lists
		err := c.refresh(ctx, 0, len(c.chunks))
		c.stats.EndgameLists += c.stats.Lists - lists
		var now time.Time
		if err == nil {
			now, err = c.run.Store.Now(ctx)
		}
		if err != nil {
			if err := c.storeTrouble(ctx, err); err != nil {
				return nil, err
			}
			continue
		}
		next := now.Add(c.poll)
		for i := range c.chunks {
			v := &c.chunks[i]
			if v.done {
				continue
			}
			unread := v.checked.Before(v.written)
			released := !v.released.IsZero() && !v.released.Before(v.written)
			switch {
			case unread && (released || now.Sub(v.written) > c.ttl/2),
				!unread && !v.expires.IsZero() && now.After(v.expires):
				// Released, overdue for renewal, or lapsed since it was
				// read: claim it, or learn when it lapses.
				failed := c.stats.Failed
				held, err := c.claim(ctx, i, now)
				c.stats.EndgameFailed += c.stats.Failed - failed
				if held != nil || err != nil {
					return held, err
				}
				if !v.done {
					next = minTime(next, v.expires)
				}
			case !unread && !v.expires.IsZero():
				// Read, and not renewed since: it lapses then.
				next = minTime(next, v.expires)
			case !v.renewed:
				// Not seen renewed yet: its holder may be gone. Look again
				// when a live holder will have renewed it.
				next = minTime(next, v.written.Add(c.ttl/2+time.Second))
			}
		}
		if c.left == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.wake:
		case <-time.After(max(next.Sub(now), 0) + 50*time.Millisecond):
		}
	}
	return nil, nil
}

// pick draws a chunk not known to be leased from the window, with
// probability in proportion to its tasks. There is one: the chunk at low.
func (c *Claimer) pick() int {
	total := 0
	end := min(c.low+c.window, len(c.chunks))
	for i := c.low; i < end; i++ {
		if v := c.chunks[i]; !v.done && v.written.IsZero() {
			total += c.man.Chunks[i].Len()
		}
	}
	r := mrand.IntN(max(total, 1))
	for i := c.low; i < end; i++ {
		if v := c.chunks[i]; !v.done && v.written.IsZero() {
			if r -= c.man.Chunks[i].Len(); r < 0 {
				return i
			}
		}
	}
	return c.low
}

// claimFresh tries chunk i, seen without a lease, and records what it
// found. A store error is not the end: the chunk is tried again later.
func (c *Claimer) claimFresh(ctx context.Context, i int) (*staging.HeldLease, error) {
	held, outcome, err := c.run.ClaimFresh(ctx, i, c.worker, c.ttl)
	if err != nil {
		return nil, c.storeTrouble(ctx, err)
	}
	v := &c.chunks[i]
	if outcome == staging.Claimed {
		c.stats.Claimed++
		return held, nil
	}
	c.stats.Failed++
	// Another worker just claimed it.
	if v.written, err = c.run.Store.Now(ctx); err != nil {
		v.written = time.Unix(0, 1) // the next listing says when
	}
	return nil, nil
}

// claim tries chunk i, whose lease the store's clock says is suspect at
// now, and records what it found.
func (c *Claimer) claim(ctx context.Context, i int, now time.Time) (*staging.HeldLease, error) {
	held, outcome, lapses, err := c.run.Claim(ctx, i, c.worker, c.ttl)
	if err != nil {
		return nil, c.storeTrouble(ctx, err)
	}
	v := &c.chunks[i]
	switch outcome {
	case staging.Claimed:
		c.stats.Claimed++
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
		v.expires = lapses
		if v.expires.IsZero() {
			v.expires = now.Add(c.ttl)
		}
	}
	return nil, nil
}

// storeTrouble waits a moment after a failed claim and returns nil, so
// that the claimer goes on (the store may be down for a while), or ctx's
// error.
func (c *Claimer) storeTrouble(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, staging.ErrAccess) {
		return err
	}
	c.stats.Errors++
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(min(c.poll, time.Second)):
	}
	return nil
}

// advance moves low past the chunks known to be leased or done.
func (c *Claimer) advance() {
	for c.low < len(c.chunks) && c.chunks[c.low].listed && (c.chunks[c.low].done || !c.chunks[c.low].written.IsZero()) {
		c.low++
	}
}

// unleased returns the chunks in [from, to) listed without a lease.
func (c *Claimer) unleased(from, to int) []int {
	var out []int
	for i := from; i < min(to, len(c.chunks)); i++ {
		if v := c.chunks[i]; v.listed && !v.done && v.written.IsZero() {
			out = append(out, i)
		}
	}
	return out
}

// refresh lists the leases and markers of the chunks in the blocks that
// [from, to) touches, one listing per block of a hundred, skipping blocks
// known to be done.
func (c *Claimer) refresh(ctx context.Context, from, to int) error {
	prefix := c.run.LeaseKey(0)
	prefix = prefix[:strings.LastIndexByte(prefix, '/')+1]
	from = from / leaseBlock * leaseBlock
	to = min(len(c.chunks), (to+leaseBlock-1)/leaseBlock*leaseBlock)
	var prefixes []string
	if len(c.chunks) > 999999 { // keys longer than six digits: list them all
		from, to, prefixes = 0, len(c.chunks), []string{prefix}
	} else {
		for b := from; b < to; b += leaseBlock {
			if !c.allDone(b, b+leaseBlock) {
				prefixes = append(prefixes, fmt.Sprintf("%s%04d", prefix, b/leaseBlock))
			}
		}
	}
	for _, p := range prefixes {
		objs, err := c.run.Store.List(ctx, p)
		if err != nil {
			return fmt.Errorf("listing leases: %w", err)
		}
		c.stats.Lists++
		for _, o := range objs {
			c.see(strings.TrimPrefix(o.Key, prefix), o.Modified)
		}
	}
	for i := from; i < to; i++ {
		c.chunks[i].listed = true
	}
	return nil
}

// see records a listed lease ("000123") or marker ("000123.done").
func (c *Claimer) see(name string, modified time.Time) {
	name, marker, _ := strings.Cut(name, ".")
	i, err := strconv.Atoi(name)
	if err != nil || i < 0 || i >= len(c.chunks) {
		return // not a lease of this run's chunks
	}
	v := &c.chunks[i]
	switch "." + marker {
	case ".":
		if modified.After(v.written) {
			v.renewed = v.renewed || !v.written.IsZero()
			v.written = modified
		}
	case staging.DoneMarker:
		c.Done(i)
	case staging.ReleasedMarker:
		if modified.After(v.released) {
			v.released = modified
		}
	}
}

// allDone reports whether every chunk in [from, to) is known to be done.
func (c *Claimer) allDone(from, to int) bool {
	for i := from; i < min(to, len(c.chunks)); i++ {
		if !c.chunks[i].done {
			return false
		}
	}
	return true
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
