package executor_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/staging"
	"github.com/slicerburst/burst/staging/storetest"
)

// memStore is a staging.Store in memory, for claim tests with hundreds of
// workers: with a latency model, each request waits half a round trip,
// then for one of a few server threads, which it holds for a service time
// (longer for listings, by the keys returned), and half a round trip more.
// It passes the store conformance suite (TestMemStoreConformance).
type memStore struct {
	mu   sync.Mutex
	objs map[string]memObject
	keys []string // sorted

	servers     chan struct{} // nil: no latency
	rtt, op     time.Duration
	perKey      time.Duration
	lists, reqs atomic.Int64
}

type memObject struct {
	data []byte
	mod  time.Time
}

func newMemStore() *memStore { return &memStore{objs: map[string]memObject{}} }

// withLatency sets the latency model: servers threads, a round trip rtt,
// service time op a request plus perKey a key listed.
func (s *memStore) withLatency(servers int, rtt, op, perKey time.Duration) *memStore {
	s.servers, s.rtt, s.op, s.perKey = make(chan struct{}, servers), rtt, op, perKey
	return s
}

// serve runs fn on the "server": fn returns how many keys it listed, and
// sets the call's error, which serve's own (an invalid key, a cancelled
// context) must not overwrite: callers join the two.
// A listing passes no key.
func (s *memStore) serve(ctx context.Context, key *string, fn func() int) error {
	if key != nil {
		if err := staging.ValidKey(*key); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.reqs.Add(1)
	if s.servers == nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		fn()
		return nil
	}
	time.Sleep(s.rtt / 2)
	s.servers <- struct{}{}
	s.mu.Lock()
	n := fn()
	s.mu.Unlock()
	time.Sleep(s.op + time.Duration(n)*s.perKey)
	<-s.servers
	time.Sleep(s.rtt / 2)
	return nil
}

func memETag(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16])
}

// set stores data at key; the caller holds mu.
func (s *memStore) set(key string, data []byte) string {
	if _, ok := s.objs[key]; !ok {
		i, _ := slices.BinarySearch(s.keys, key)
		s.keys = slices.Insert(s.keys, i, key)
	}
	s.objs[key] = memObject{data: slices.Clone(data), mod: time.Now()}
	return memETag(data)
}

func (s *memStore) Get(ctx context.Context, key string) (data []byte, etag string, err error) {
	serr := s.serve(ctx, &key, func() int {
		o, ok := s.objs[key]
		if !ok {
			err = fmt.Errorf("%s: %w", key, staging.ErrNotFound)
			return 0
		}
		data, etag = slices.Clone(o.data), memETag(o.data)
		return 0
	})
	if serr != nil {
		err = serr
	}
	return data, etag, err
}

func (s *memStore) Stat(ctx context.Context, key string) (info staging.ObjectInfo, err error) {
	serr := s.serve(ctx, &key, func() int {
		o, ok := s.objs[key]
		if !ok {
			err = fmt.Errorf("%s: %w", key, staging.ErrNotFound)
			return 0
		}
		info = staging.ObjectInfo{Key: key, Size: int64(len(o.data)), ETag: memETag(o.data), Modified: o.mod}
		return 0
	})
	if serr != nil {
		err = serr
	}
	return info, err
}

func (s *memStore) Put(ctx context.Context, key string, data []byte) (etag string, err error) {
	serr := s.serve(ctx, &key, func() int { etag = s.set(key, data); return 0 })
	if serr != nil {
		err = serr
	}
	return etag, err
}

func (s *memStore) Create(ctx context.Context, key string, data []byte) (etag string, err error) {
	serr := s.serve(ctx, &key, func() int {
		if _, ok := s.objs[key]; ok {
			err = fmt.Errorf("creating %s: %w", key, staging.ErrExists)
			return 0
		}
		etag = s.set(key, data)
		return 0
	})
	if serr != nil {
		err = serr
	}
	return etag, err
}

func (s *memStore) Replace(ctx context.Context, key string, data []byte, old string) (etag string, err error) {
	serr := s.serve(ctx, &key, func() int {
		o, ok := s.objs[key]
		switch {
		case !ok:
			err = fmt.Errorf("replacing %s: %w", key, staging.ErrNotFound)
		case memETag(o.data) != old:
			err = fmt.Errorf("replacing %s: %w", key, staging.ErrChanged)
		default:
			etag = s.set(key, data)
		}
		return 0
	})
	if serr != nil {
		err = serr
	}
	return etag, err
}

func (s *memStore) Delete(ctx context.Context, key string) error {
	return s.serve(ctx, &key, func() int {
		if _, ok := s.objs[key]; ok {
			delete(s.objs, key)
			i, _ := slices.BinarySearch(s.keys, key)
			s.keys = slices.Delete(s.keys, i, i+1)
		}
		return 0
	})
}

// after returns the objects under prefix after startAfter, at most n.
func (s *memStore) after(prefix, startAfter string, n int) (out []staging.ObjectInfo, more bool) {
	i, _ := slices.BinarySearch(s.keys, max(prefix, startAfter))
	for ; i < len(s.keys) && strings.HasPrefix(s.keys[i], prefix); i++ {
		k := s.keys[i]
		if k <= startAfter {
			continue
		}
		if len(out) == n {
			return out, true
		}
		o := s.objs[k]
		out = append(out, staging.ObjectInfo{Key: k, Size: int64(len(o.data)), ETag: memETag(o.data), Modified: o.mod})
	}
	return out, false
}

func (s *memStore) List(ctx context.Context, prefix string) (out []staging.ObjectInfo, err error) {
	s.lists.Add(1)
	serr := s.serve(ctx, nil, func() int { out, _ = s.after(prefix, "", math.MaxInt); return len(out) })
	if serr != nil {
		err = serr
	}
	return out, err
}

func (s *memStore) ListDirs(ctx context.Context, prefix string) (dirs []string, err error) {
	serr := s.serve(ctx, nil, func() int {
		objs, _ := s.after(prefix, "", math.MaxInt)
		for _, o := range objs {
			if d, _, ok := strings.Cut(strings.TrimPrefix(o.Key, prefix), "/"); ok && !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
		return len(objs)
	})
	if serr != nil {
		err = serr
	}
	return dirs, err
}

func (s *memStore) PutFile(ctx context.Context, key, path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("uploading %s: %w", path, err)
	}
	return s.Put(ctx, key, data)
}

func (s *memStore) GetFile(ctx context.Context, key, path string) error {
	data, _, err := s.Get(ctx, key)
	if err != nil {
		return err
	}
	tmp := path + ".part"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (s *memStore) Location() string { return "memory" }

func (s *memStore) Now(ctx context.Context) (time.Time, error) { return time.Now(), ctx.Err() }

func TestMemStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) staging.Store { return newMemStore() })
}

// singles returns a manifest of n tasks planned for slots slots.
func singles(n, slots int) *staging.Manifest {
	m := &staging.Manifest{ID: "sim", Tasks: make([]string, n), Chunks: staging.PlanChunks(n, slots, 1), Slots: slots, LeaseTTL: staging.Duration(time.Minute)}
	for i := range m.Tasks {
		m.Tasks[i] = fmt.Sprintf("%06d", i)
	}
	return m
}

// BenchmarkClaimSimulated runs the claiming of a 500-worker fleet on a
// 100,000-task run (5,185 chunks) against memStore, ten times faster than
// the S3 benchmark (BenchmarkS3ClaimContention in bench): tasks of 25 to
// 75 ms, workers starting within 1 s, and a store that is not the
// bottleneck (64 threads, 2 ms away, 50 µs a request plus 0.5 µs a key
// listed). Besides failed claims and listings per claim, it reports the
// makespan (until the last chunk is done) against the ideal one (every
// worker busy until the end), which claiming large chunks late lengthens,
// and when the last worker left. The figures depend on the machine's load:
// compare runs made together.
//
//	go test ./executor -run '^$' -bench ClaimSimulated -benchtime 1x
func BenchmarkClaimSimulated(b *testing.B) {
	const (
		workers    = 500
		tasks      = 100000
		taskTime   = 50 * time.Millisecond
		bootSpread = time.Second
	)
	ctx := context.Background()
	for b.Loop() {
		s := newMemStore().withLatency(64, 2*time.Millisecond, 50*time.Microsecond, 500*time.Nanosecond)
		run, _ := staging.OpenRun(s, "sim")
		m := singles(tasks, workers)
		var (
			mu       sync.Mutex
			total    executor.ClaimStats
			work     time.Duration // the tasks' and boots' time
			lastDone time.Duration // when the last chunk was done
			wg       sync.WaitGroup
		)
		start := time.Now()
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				boot := time.Duration(mrand.Int64N(int64(bootSpread)))
				time.Sleep(boot)
				c := executor.NewClaimer(run, m, fmt.Sprint("w", w), time.Second)
				var busy time.Duration
				for {
					h, err := c.Next(ctx)
					if err != nil {
						b.Error(err)
						return
					}
					if h == nil {
						break
					}
					d := time.Duration(float64(m.Chunks[h.Chunk].Len()) * float64(taskTime) * (0.5 + mrand.Float64()))
					time.Sleep(d)
					busy += d
					if err := h.Complete(ctx, nil); err != nil {
						b.Error(err)
						return
					}
					c.Done(h.Chunk)
					mu.Lock()
					lastDone = max(lastDone, time.Since(start))
					mu.Unlock()
				}
				mu.Lock()
				st := c.Stats()
				total.Claimed += st.Claimed
				total.Failed += st.Failed
				total.Lists += st.Lists
				total.EndgameLists += st.EndgameLists
				work += busy + boot
				mu.Unlock()
			}()
		}
		wg.Wait()
		el := time.Since(start)
		if total.Claimed != len(m.Chunks) {
			b.Fatalf("%d of %d chunks claimed", total.Claimed, len(m.Chunks))
		}
		ideal := work / workers
		b.ReportMetric(float64(total.Failed)/float64(total.Claimed), "failed/claim")
		b.ReportMetric(float64(total.Lists)/float64(total.Claimed), "lists/claim")
		b.ReportMetric(lastDone.Seconds()/ideal.Seconds(), "makespan/ideal")
		b.ReportMetric(el.Seconds()/ideal.Seconds(), "lastexit/ideal")
		b.Logf("%d chunks: %d failed, %d listings (%d in the endgame), makespan %s, last worker left at %s, ideal %s",
			len(m.Chunks), total.Failed, total.Lists, total.EndgameLists, lastDone.Round(time.Millisecond), el.Round(time.Millisecond), ideal.Round(time.Millisecond))
	}
}
