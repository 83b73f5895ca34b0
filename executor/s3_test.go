package executor_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/internal/testminio"
	"github.com/slicerburst/burst/internal/testpy"
	"github.com/slicerburst/burst/staging"
	"github.com/slicerburst/burst/staging/pickle"
)

// TestS3ServerRestartMidRun: the S3 server goes away in the middle of a
// run and comes back; the workers wait, retry, and the run completes with
// every task done once.
func TestS3ServerRestartMidRun(t *testing.T) {
	srv := testminio.Start(t)
	store := staging.NewS3Store(srv.Client(t, staging.S3ClientOptions(true)), srv.NewBucket(t), "runs-on-s3", nil)
	dir := t.TempDir()
	t.Setenv("BURST_TEST_DIR", dir)
	script := filepath.Join(dir, "job.py")
	if err := os.WriteFile(script, []byte(`
import os, pickle, sys, time
p = pickle.load(sys.stdin.buffer)
time.sleep(0.1)
with open(os.path.join(os.environ["BURST_TEST_DIR"], "done.log"), "a") as f:
    f.write(os.environ["BURST_TASK_ID"] + "\n")
pickle.dump({"i": p["i"]}, sys.stdout.buffer)
`), 0o644); err != nil {
		t.Fatal(err)
	}
	const n = 40
	var inputs []staging.Input
	for i := range n {
		d := pickle.NewDict()
		d.Set("i", int64(i))
		p, _ := pickle.Marshal(d)
		inputs = append(inputs, staging.Input{ID: string(rune('a'+i/26)) + string(rune('a'+i%26)), Pickle: p})
	}
	ctx := context.Background()
	run, err := staging.Stage(ctx, store, staging.StageRequest{
		ScriptPath: script, Inputs: inputs,
		Manifest: staging.Manifest{LeaseTTL: staging.Duration(10 * time.Second), Slots: 2, Retries: 0},
	})
	if err != nil {
		t.Fatal(err)
	}

	var finished atomic.Int64
	restarted := make(chan time.Duration, 1)
	cfg := executor.Config{
		Run: run, Slots: 2, Python: testpy.Python(t), WorkDir: t.TempDir(), Heartbeat: 200 * time.Millisecond,
		OnEvent: func(e executor.Event) {
			if e.Kind == executor.TaskFinished && finished.Add(1) == 8 {
				go func() {
					srv.Stop()
					start := time.Now()
					time.Sleep(2 * time.Second)
					srv.Restart(t)
					restarted <- time.Since(start)
				}()
			}
		},
	}
	sum, err := executor.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run across a server restart: %v", err)
	}
	select {
	case down := <-restarted:
		t.Logf("server was down for %s", down.Round(100*time.Millisecond))
	default:
		t.Fatal("the server was never restarted")
	}
	if sum.OK != n {
		t.Errorf("summary %+v, want %d ok", sum, n)
	}
	done := lines(t, filepath.Join(dir, "done.log"))
	counts := map[string]int{}
	for _, id := range done {
		counts[id]++
	}
	for _, in := range inputs {
		if counts[in.ID] != 1 {
			t.Errorf("task %s ran to the end %d times, want 1", in.ID, counts[in.ID])
		}
		st, err := run.ReadStatus(ctx, in.ID)
		if err != nil || st.Status != staging.StatusOK {
			t.Errorf("task %s: %+v, %v", in.ID, st, err)
		}
	}
}

// TestS3CommitWrittenOnce: a task committed by one execution (a worker
// that lost its lease got there first) keeps that execution's status and
// output; a later execution's output is removed, never counted.
func TestS3CommitWrittenOnce(t *testing.T) {
	srv := testminio.Start(t)
	store := staging.NewS3Store(srv.Client(t, staging.S3ClientOptions(true)), srv.NewBucket(t), "", nil)
	t.Setenv("BURST_TEST_DIR", t.TempDir())
	script := filepath.Join(t.TempDir(), "job.py")
	if err := os.WriteFile(script, []byte(echoScript), 0o644); err != nil {
		t.Fatal(err)
	}
	d := pickle.NewDict()
	d.Set("i", int64(7))
	in, _ := pickle.Marshal(d)
	ctx := context.Background()
	run, err := staging.Stage(ctx, store, staging.StageRequest{
		ScriptPath: script, Inputs: []staging.Input{{ID: "t7", Pickle: in}},
		Manifest: staging.Manifest{LeaseTTL: staging.Duration(10 * time.Second), Slots: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	first := pickle.NewDict()
	first.Set("by", "the first writer")
	firstData, _ := pickle.Marshal(first)
	if _, err := store.Put(ctx, run.ResultKey("t7", "first"), firstData); err != nil {
		t.Fatal(err)
	}
	if _, err := run.CommitStatus(ctx, &staging.Status{Task: "t7", Exec: "first", Status: staging.StatusOK, Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	sum, err := executor.Run(ctx, executor.Config{Run: run, Slots: 1, Python: testpy.Python(t), WorkDir: t.TempDir()})
	if err != nil || sum.OK != 1 || sum.Duplicates != 1 {
		t.Fatalf("Run: %+v, %v; want 1 ok, a duplicate", sum, err)
	}
	again, _ := staging.OpenRun(store, run.ID) // no cached statuses
	got, err := again.Output(ctx, "t7")
	if err != nil || string(got) != string(firstData) {
		t.Errorf("output after a second execution: %q, %v; want the first, intact", got, err)
	}
	if objs, _ := store.List(ctx, "runs/"+run.ID+"/results/"); len(objs) != 1 {
		t.Errorf("results/ holds %d objects, want the winner's alone", len(objs))
	}
	if _, err := run.CommitStatus(ctx, &staging.Status{Task: "t7", Exec: "third", Status: staging.StatusFailed}); !errors.Is(err, staging.ErrExists) {
		t.Errorf("a third commit: %v, want ErrExists", err)
	}
}
