// Package bench measures burst on a real S3 server (MinIO, started by the
// benchmarks themselves): requests per task, staging throughput, and
// claim contention among hundreds of workers. Run with make bench-s3, or
//
//	go test ./bench -run '^$' -bench S3 -benchtime 1x
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/internal/testminio"
	"github.com/slicerburst/burst/staging"
	"github.com/slicerburst/burst/staging/pickle"
)

func newStore(b *testing.B, srv *testminio.Server) *staging.S3Store {
	return staging.NewS3Store(srv.Client(b, staging.S3ClientOptions(true)), srv.NewBucket(b), "bench", nil)
}

func inputs(b *testing.B, n int) []staging.Input {
	out := make([]staging.Input, n)
	for i := range out {
		d := pickle.NewDict()
		d.Set("i", int64(i))
		d.Set("radius", float64(i%7)+0.5)
		p, err := pickle.Marshal(d)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = staging.Input{ID: fmt.Sprintf("%05d", i), Pickle: p}
	}
	return out
}

// echoInterpreter writes an "interpreter" that ignores the script and
// copies its input (a pickled dict) to its output: a task with no work,
// so that only burst's own requests are measured.
func echoInterpreter(b *testing.B) (python, script string) {
	dir := b.TempDir()
	python = filepath.Join(dir, "echo-python")
	if err := os.WriteFile(python, []byte("#!/bin/sh\nexec cat\n"), 0o755); err != nil {
		b.Fatal(err)
	}
	script = filepath.Join(dir, "job.py")
	if err := os.WriteFile(script, []byte("# the echo interpreter does not read this\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	return python, script
}

// BenchmarkS3RequestsPerTask runs a 1,000-task run with one worker of two
// slots and counts the S3 requests of each phase.
func BenchmarkS3RequestsPerTask(b *testing.B) {
	srv := testminio.Start(b)
	python, script := echoInterpreter(b)
	const n = 1000
	in := inputs(b, n)
	ctx := context.Background()
	for b.Loop() {
		s := newStore(b, srv)
		run, err := staging.Stage(ctx, s, staging.StageRequest{
			ScriptPath: script, Inputs: in,
			Manifest: staging.Manifest{LeaseTTL: staging.Duration(30 * time.Second), Slots: 2, Retries: 2},
		})
		if err != nil {
			b.Fatal(err)
		}
		staged := s.Requests()
		sum, err := executor.Run(ctx, executor.Config{Run: run, Slots: 2, Python: python, WorkDir: b.TempDir(), Heartbeat: 5 * time.Second})
		if err != nil || sum.OK != n {
			b.Fatalf("run: %+v, %v", sum, err)
		}
		worked := s.Requests() - staged
		man, err := run.Manifest(ctx)
		if err != nil {
			b.Fatal(err)
		}
		coll, err := staging.NewCollector(run, man, b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		before := s.Requests()
		prog, err := run.ReadProgress(ctx, man)
		if err != nil {
			b.Fatal(err)
		}
		if got, err := coll.CollectAll(ctx, prog); err != nil || got != n {
			b.Fatalf("collected %d, %v", got, err)
		}
		coll.Close()
		collected := s.Requests() - before
		b.ReportMetric(float64(worked)/n, "worker-req/task")
		b.ReportMetric(float64(staged)/n, "stage-req/task")
		b.ReportMetric(float64(collected)/n, "collect-req/task")
		b.Logf("1,000 tasks, %d chunks: staging %d requests, workers %d, collecting %d", len(man.Chunks), staged, worked, collected)
	}
}

// BenchmarkS3Stage10k stages 10,000 small inputs.
func BenchmarkS3Stage10k(b *testing.B) {
	srv := testminio.Start(b)
	_, script := echoInterpreter(b)
	const n = 10000
	in := inputs(b, n)
	ctx := context.Background()
	for b.Loop() {
		s := newStore(b, srv)
		start := time.Now()
		if _, err := staging.Stage(ctx, s, staging.StageRequest{
			ScriptPath: script, Inputs: in,
			Manifest: staging.Manifest{LeaseTTL: staging.Duration(30 * time.Second), Slots: 2},
		}); err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		b.ReportMetric(el.Seconds(), "s/stage")
		b.ReportMetric(float64(n)/el.Seconds(), "inputs/s")
	}
}

// BenchmarkS3ClaimContention: 500 workers claim the chunks of a
// 100,000-task run, and the claim attempts that find the chunk taken are
// counted. The workers start within 10 s of each other, as a fleet's VMs
// boot, and "run" a chunk for 250 to 750 ms a task, renewing its lease as
// a worker does.
func BenchmarkS3ClaimContention(b *testing.B) {
	const (
		workers    = 500
		tasks      = 100000
		taskTime   = 500 * time.Millisecond
		bootSpread = 10 * time.Second
		ttl        = 30 * time.Second
	)
	srv := testminio.Start(b)
	ctx := context.Background()
	for b.Loop() {
		s := newStore(b, srv)
		run, err := staging.OpenRun(s, "contention")
		if err != nil {
			b.Fatal(err)
		}
		// Only the manifest: claiming never reads inputs.
		m := staging.Manifest{
			Protocol: staging.Protocol, ID: run.ID, Created: time.Now(), Script: "job.py",
			Tasks: make([]string, tasks), Chunks: staging.PlanChunks(tasks, workers, 1),
			LeaseTTL: staging.Duration(ttl), Slots: workers,
		}
		for i := range m.Tasks {
			m.Tasks[i] = fmt.Sprintf("%06d", i)
		}
		if err := writeManifest(ctx, run, &m); err != nil {
			b.Fatal(err)
		}
		var (
			mu    sync.Mutex
			total executor.ClaimStats
			done  int
			wg    sync.WaitGroup
			// tailFailed counts failed attempts before claiming a
			// single-task chunk, the last ones of the plan.
			tailFailed int
		)
		start := time.Now()
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(rand.Int64N(int64(bootSpread))))
				c := executor.NewClaimer(run, &m, fmt.Sprintf("w%03d", w), 5*time.Second)
				n := 0
				for {
					failed := c.Stats().Failed
					h, err := c.Next(ctx)
					if err != nil {
						b.Error(err)
						return
					}
					if h == nil {
						break
					}
					if c.Stats().Failed > failed && m.Chunks[h.Chunk].Len() == 1 {
						mu.Lock()
						tailFailed += c.Stats().Failed - failed
						mu.Unlock()
					}
					// Run the chunk, renewing its lease as a worker does.
					d := float64(m.Chunks[h.Chunk].Len()) * float64(taskTime) * (0.5 + rand.Float64())
					end := time.Now().Add(time.Duration(d))
					for time.Until(end) > ttl/3 {
						time.Sleep(ttl / 3)
						if err := h.Renew(ctx, nil, nil); err != nil {
							b.Error(err)
							return
						}
					}
					time.Sleep(time.Until(end))
					if err := h.Complete(ctx, nil); err != nil {
						b.Error(err)
						return
					}
					c.Done(h.Chunk)
					n++
				}
				mu.Lock()
				st := c.Stats()
				total.Claimed += st.Claimed
				total.Failed += st.Failed
				total.Lists += st.Lists
				total.EndgameLists += st.EndgameLists
				total.EndgameFailed += st.EndgameFailed
				done += n
				mu.Unlock()
			}()
		}
		wg.Wait()
		el := time.Since(start)
		if done != len(m.Chunks) || total.Claimed != len(m.Chunks) {
			b.Fatalf("%d of %d chunks completed, %d claimed", done, len(m.Chunks), total.Claimed)
		}
		b.ReportMetric(float64(total.Failed)/float64(total.Claimed), "failed/claim")
		b.ReportMetric(float64(total.Lists)/float64(total.Claimed), "lists/claim")
		b.ReportMetric(el.Seconds(), "s/run")
		b.Logf("%d workers, %d tasks in %d chunks: %d claims, %d failed (%d before claiming a single-task chunk, %d once every chunk had a lease), %d listings (%d), %s",
			workers, tasks, len(m.Chunks), total.Claimed, total.Failed, tailFailed, total.EndgameFailed, total.Lists, total.EndgameLists, el.Round(time.Millisecond))
	}
}

func writeManifest(ctx context.Context, run *staging.Run, m *staging.Manifest) error {
	if err := m.Validate(); err != nil {
		return err
	}
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = run.Store.Create(ctx, run.ManifestKey(), data)
	return err
}
