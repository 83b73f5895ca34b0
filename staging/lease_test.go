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

// shiftedClock is a store whose clock can be moved forward: time passing
// on the store, without waiting for it. Writes are stamped with the
// moved clock.
type shiftedClock struct {
	staging.Store
	mu     sync.Mutex
	offset time.Duration
	stamps map[string]time.Time
}

func (s *shiftedClock) Now(ctx context.Context) (time.Time, error) {
	now, err := s.Store.Now(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	return now.Add(s.offset), err
}

func (s *shiftedClock) advance(d time.Duration) {
	s.mu.Lock()
	s.offset += d
	s.mu.Unlock()
}

func (s *shiftedClock) stamp(key string, err error) {
	if err != nil {
		return
	}
	now, _ := s.Now(context.Background())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stamps == nil {
		s.stamps = map[string]time.Time{}
	}
	s.stamps[key] = now
}

func (s *shiftedClock) Create(ctx context.Context, key string, data []byte) (string, error) {
	etag, err := s.Store.Create(ctx, key, data)
	s.stamp(key, err)
	return etag, err
}

func (s *shiftedClock) Replace(ctx context.Context, key string, data []byte, old string) (string, error) {
	etag, err := s.Store.Replace(ctx, key, data, old)
	s.stamp(key, err)
	return etag, err
}

func (s *shiftedClock) Stat(ctx context.Context, key string) (staging.ObjectInfo, error) {
	info, err := s.Store.Stat(ctx, key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.stamps[key]; ok {
		info.Modified = t
	}
	return info, err
}

// Invariant: a lease is live until the store's clock passes its
// last-modified time plus TTL (plus the grace); then exactly one taker gets
// it, and the old holder can neither renew nor complete it.
func TestLeaseLifecycle(t *testing.T) {
	ctx := context.Background()
	base := newRun(t)
	store := &shiftedClock{Store: base.Store}
	r, _ := staging.OpenRun(store, base.ID)
	ttl := 30 * time.Second

	a, out, _, err := r.Claim(ctx, 0, "a", ttl)
	if err != nil || out != staging.Claimed || a.TakenOver {
		t.Fatalf("first claim: %v %v %+v", out, err, a)
	}
	if until := time.Until(a.ValidUntil()); until > ttl || until < ttl-5*time.Second {
		t.Errorf("fresh lease valid for %s more, want about %s", until, ttl)
	}
	store.advance(20 * time.Second)
	_, out, lapses, err := r.Claim(ctx, 0, "b", ttl)
	if err != nil || out != staging.Busy || lapses.IsZero() {
		t.Fatalf("claim of a live lease: %v %v %v; want busy, with when it lapses", out, err, lapses)
	}
	if err := a.Renew(ctx, []int{1, 0}, []int{2}); err != nil {
		t.Fatalf("renew: %v", err)
	}
	// Renewed: still busy 25s on, lapsed 32s on.
	store.advance(25 * time.Second)
	if _, out, _, _ := r.Claim(ctx, 0, "b", ttl); out != staging.Busy {
		t.Fatalf("claim after renewal: %v, want busy", out)
	}
	store.advance(7 * time.Second)
	b, out, _, err := r.Claim(ctx, 0, "b", ttl)
	if err != nil || out != staging.Claimed || !b.TakenOver {
		t.Fatalf("takeover of a lapsed lease: %v %v", out, err)
	}
	l := b.Lease()
	if fmt.Sprint(l.Finished) != "[0 1]" || l.Takeovers != 1 || l.Lost[2] != 1 || l.Worker != "b" {
		t.Errorf("taken-over lease %+v: want finished [0 1] kept, one takeover, task 2 lost once", l)
	}
	if _, err := store.Stat(ctx, r.LeaseKey(0)+staging.TakeoverMarker); err != nil {
		t.Errorf("no takeover marker: %v", err)
	}
	// The old holder learns it lost the lease and cannot complete it.
	if err := a.Renew(ctx, nil, nil); !errors.Is(err, staging.ErrLeaseLost) {
		t.Errorf("renew by the old holder: %v, want ErrLeaseLost", err)
	}
	if err := a.Complete(ctx, nil); !errors.Is(err, staging.ErrLeaseLost) {
		t.Errorf("complete by the old holder: %v, want ErrLeaseLost", err)
	}
	if err := b.Complete(ctx, []int{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := b.Renew(ctx, nil, nil); !errors.Is(err, staging.ErrLeaseLost) {
		t.Errorf("renew after completing: %v, want ErrLeaseLost (the holding ended)", err)
	}
	store.advance(time.Hour)
	if _, out, _, _ := r.Claim(ctx, 0, "c", ttl); out != staging.ChunkDone {
		t.Errorf("claim of a done chunk, long after: %v, want done", out)
	}
}

func TestLeaseRelease(t *testing.T) {
	ctx := context.Background()
	r := newRun(t)
	a, _, _, err := r.Claim(ctx, 3, "a", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx, []int{0}); err != nil {
		t.Fatal(err)
	}
	b, out, _, err := r.Claim(ctx, 3, "b", time.Hour)
	if err != nil || out != staging.Claimed || fmt.Sprint(b.Lease().Finished) != "[0]" {
		t.Fatalf("claim of a released lease: %v %v %+v; want it at once, with finished [0]", out, err, b)
	}
	if l := b.Lease(); len(l.Lost) != 0 {
		t.Errorf("a released lease counts its tasks as lost: %+v", l)
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
					h, out, _, err := r.Claim(ctx, i, id, ttl)
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
