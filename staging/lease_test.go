package staging_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/slicerburst/burst/staging"
)

func newRun(t *testing.T) *staging.Run {
	t.Helper()
	r, err := staging.OpenRun(newFS(t), "r1")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLeaseLifecycle(t *testing.T) {
	ctx := context.Background()
	r := newRun(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ttl := 30 * time.Second

	a, out, _, err := r.Claim(ctx, 0, "a", ttl, t0)
	if err != nil || out != staging.Claimed || a.TakenOver {
		t.Fatalf("first claim: %v %v %+v", out, err, a)
	}
	_, out, holder, err := r.Claim(ctx, 0, "b", ttl, t0.Add(time.Second))
	if err != nil || out != staging.Busy || holder.Worker != "a" {
		t.Fatalf("claim of a live lease: %v %v %+v; want busy, held by a", out, err, holder)
	}
	if err := a.Renew(ctx, []int{1, 0}, ttl, t0.Add(20*time.Second)); err != nil {
		t.Fatalf("renew: %v", err)
	}
	// Renewed: still busy at t0+40s, lapsed at t0+51s.
	if _, out, _, _ := r.Claim(ctx, 0, "b", ttl, t0.Add(40*time.Second)); out != staging.Busy {
		t.Fatalf("claim after renewal: %v, want busy", out)
	}
	b, out, _, err := r.Claim(ctx, 0, "b", ttl, t0.Add(51*time.Second))
	if err != nil || out != staging.Claimed || !b.TakenOver {
		t.Fatalf("takeover of a lapsed lease: %v %v", out, err)
	}
	if fmt.Sprint(b.Lease.Finished) != "[0 1]" || b.Lease.Takeovers != 1 {
		t.Errorf("taken-over lease %+v: want finished [0 1] kept and one takeover", b.Lease)
	}
	// The old holder learns it lost the lease and cannot complete it.
	if err := a.Renew(ctx, nil, ttl, t0.Add(52*time.Second)); !errors.Is(err, staging.ErrLeaseLost) {
		t.Errorf("renew by the old holder: %v, want ErrLeaseLost", err)
	}
	if err := a.Complete(ctx, nil); !errors.Is(err, staging.ErrLeaseLost) {
		t.Errorf("complete by the old holder: %v, want ErrLeaseLost", err)
	}
	if err := b.Complete(ctx, []int{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if _, out, _, _ := r.Claim(ctx, 0, "c", ttl, t0.Add(time.Hour)); out != staging.ChunkDone {
		t.Errorf("claim of a done chunk, long after: %v, want done", out)
	}
}

func TestLeaseRelease(t *testing.T) {
	ctx := context.Background()
	r := newRun(t)
	now := time.Now()
	a, _, _, err := r.Claim(ctx, 3, "a", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx, []int{0}, now); err != nil {
		t.Fatal(err)
	}
	b, out, _, err := r.Claim(ctx, 3, "b", time.Hour, now.Add(time.Millisecond))
	if err != nil || out != staging.Claimed || fmt.Sprint(b.Lease.Finished) != "[0]" {
		t.Fatalf("claim of a released lease: %v %v %+v; want it at once, with finished [0]", out, err, b)
	}
}

// TestLeaseContention: many claimers race over the chunks; some die while
// holding one (they stop renewing). Every chunk is completed exactly once,
// and never held by two live workers at the same time.
func TestLeaseContention(t *testing.T) {
	ctx := context.Background()
	r := newRun(t)
	const chunks, workers = 60, 24
	ttl := time.Second
	var (
		mu        sync.Mutex
		completed = map[int]int{}
		holding   = map[int]string{}
		overlaps  []string
		dead      = map[string]bool{}
	)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			id := fmt.Sprintf("w%02d", w)
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			dieAfter := -1
			if w%6 == 0 {
				dieAfter = rng.IntN(3) // these die holding a lease
			}
			done := make([]bool, chunks)
			claims := 0
			for left := chunks; left > 0; {
				progress := false
				for k := 0; k < chunks; k++ {
					i := (w*chunks/workers + k) % chunks
					if done[i] {
						continue
					}
					h, out, _, err := r.Claim(ctx, i, id, ttl, time.Now())
					if err != nil {
						t.Error(err)
						return
					}
					switch out {
					case staging.ChunkDone:
						done[i], left, progress = true, left-1, true
						continue
					case staging.Busy:
						continue
					}
					progress = true
					mu.Lock()
					if other, ok := holding[i]; ok && !dead[other] {
						overlaps = append(overlaps, fmt.Sprintf("chunk %d: %s and %s", i, other, id))
					}
					holding[i] = id
					mu.Unlock()
					if claims == dieAfter {
						mu.Lock()
						dead[id] = true // dies holding chunk i: its lease must lapse
						mu.Unlock()
						return
					}
					claims++
					time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
					mu.Lock()
					delete(holding, i)
					mu.Unlock()
					if err := h.Complete(ctx, nil); err == nil {
						mu.Lock()
						completed[i]++
						mu.Unlock()
					} else if !errors.Is(err, staging.ErrLeaseLost) {
						t.Error(err)
						return
					}
					done[i], left = true, left-1
				}
				if !progress {
					time.Sleep(ttl / 4)
				}
			}
		}(w)
	}
	wg.Wait()
	for i := 0; i < chunks; i++ {
		if completed[i] != 1 {
			t.Errorf("chunk %d completed %d times, want 1", i, completed[i])
		}
	}
	for _, o := range overlaps {
		t.Error("two live holders at once:", o)
	}
}

func TestPlanChunks(t *testing.T) {
	cases := []struct {
		n, slots, min int
		want          string
	}{
		{1, 4, 1, "[{0 1}]"},
		{10, 1, 1, "[{0 5} {5 8} {8 9} {9 10}]"},
		{20, 2, 1, "[{0 5} {5 9} {9 12} {12 14} {14 16} {16 17} {17 18} {18 19} {19 20}]"},
		{20, 2, 3, "[{0 5} {5 9} {9 12} {12 15} {15 18} {18 20}]"},
	}
	for _, c := range cases {
		got := fmt.Sprint(staging.PlanChunks(c.n, c.slots, c.min))
		if got != c.want {
			t.Errorf("PlanChunks(%d, %d, %d) = %s, want %s", c.n, c.slots, c.min, got, c.want)
		}
	}
	// Chunks cover every task once, shrink, and stay few for big runs.
	cs := staging.PlanChunks(100000, 500, 1)
	next := 0
	for i, c := range cs {
		if c.Start != next || c.Len() < 1 || (i > 0 && c.Len() > cs[i-1].Len()) {
			t.Fatalf("chunk %d = %+v after %d", i, c, next)
		}
		next = c.End
	}
	if next != 100000 || len(cs) > 10000 {
		t.Errorf("100000 tasks over 500 slots: %d chunks covering %d", len(cs), next)
	}
}
