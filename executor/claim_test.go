package executor_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/staging"
)

// TestClaimerEndgame: once every chunk has a lease, a claimer takes a
// released chunk at once and a dead holder's after its lease lapses, and
// waits, without claiming it, on a chunk whose holder keeps renewing it,
// until it is done.
func TestClaimerEndgame(t *testing.T) {
	ttl := 1500 * time.Millisecond
	f := stage(t, echoScript, 3, staging.Manifest{Slots: 3, LeaseTTL: staging.Duration(ttl)})
	if len(f.man.Chunks) != 3 {
		t.Fatalf("want 3 chunks of 1 task, got %v", f.man.Chunks)
	}
	ctx := context.Background()
	claim := func(chunk int, who string) *staging.HeldLease {
		h, out, _, err := f.run.Claim(ctx, chunk, who, ttl)
		if err != nil || out != staging.Claimed {
			t.Fatalf("claim %d by %s: %v %v", chunk, who, out, err)
		}
		return h
	}
	released := claim(0, "quitter")
	claim(1, "dead")
	live := claim(2, "live")
	if err := released.Release(ctx, nil); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // the live holder renews its lease
		for {
			select {
			case <-stop:
				return
			case <-time.After(ttl / 3):
				live.Renew(ctx, nil, nil)
			}
		}
	}()

	c := executor.NewClaimer(f.run, f.man, "rescuer", 100*time.Millisecond)
	start := time.Now()
	h, err := c.Next(ctx)
	if err != nil || h == nil || h.Chunk != 0 || !h.TakenOver {
		t.Fatalf("first Next: %+v, %v; want the released chunk 0", h, err)
	}
	if el := time.Since(start); el > ttl/2 {
		t.Errorf("released chunk taken after %s, want at once", el)
	}
	c.Done(0)
	h, err = c.Next(ctx)
	if err != nil || h == nil || h.Chunk != 1 || !h.TakenOver {
		t.Fatalf("second Next: %+v, %v; want the dead holder's chunk 1", h, err)
	}
	if el := time.Since(start); el < ttl {
		t.Errorf("dead holder's chunk taken after %s, before its lease lapsed", el)
	}
	c.Done(1)
	wctx, cancel := context.WithTimeout(ctx, 2*ttl)
	h, err = c.Next(wctx)
	cancel()
	if h != nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third Next: %+v, %v; want it still waiting (chunk 2 is renewed by a live holder)", h, err)
	}
	if err := live.Complete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	h, err = c.Next(ctx)
	if h != nil || err != nil {
		t.Fatalf("Next after the last chunk was done: %+v, %v; want nil", h, err)
	}
	if st := c.Stats(); st.Claimed != 2 || st.Failed > 3 {
		t.Errorf("stats %+v: want 2 claims and few failed attempts", st)
	}
}
