package provision_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/slicerburst/burst/internal/testpy"
	"github.com/slicerburst/burst/provision"
	"github.com/slicerburst/burst/staging"
)

// TestLocalRunExecute: a local run reports its progress as tasks finish,
// collects every task's result into its folder, and a second pass over a
// finished run starts from what is done and collects the same, as does
// collecting it afresh into another folder.
func TestLocalRunExecute(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	store, err := staging.OpenFS(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	script := filepath.Join(dir, "job.py")
	if err := os.WriteFile(script, []byte(`
import pickle, sys
p = pickle.load(sys.stdin.buffer)
if p["i"] == 2:
    raise SystemExit("task 2 fails")
pickle.dump({"double": p["i"] * 2}, sys.stdout.buffer)
`), 0o644); err != nil {
		t.Fatal(err)
	}
	inputs := numberedInputs(t, 4)
	ctx := context.Background()
	run, err := staging.Stage(ctx, store, staging.StageRequest{
		ScriptPath: script, Inputs: inputs,
		Manifest: staging.Manifest{Retries: 0, LeaseTTL: staging.Duration(10 * time.Second), Slots: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	man, err := run.Manifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")

	execute := func() (int, []provision.LocalProgress, provision.LocalResult) {
		t.Helper()
		started := -1
		var seen []provision.LocalProgress
		res, err := (&provision.LocalRun{
			Run: run, Man: man, Workers: 2, Python: testpy.Python(t), Out: out,
			Tick:     20 * time.Millisecond,
			Started:  func(done int) { started = done },
			Progress: func(p provision.LocalProgress) { seen = append(seen, p) },
		}).Execute(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.RunErr != nil || res.CollErr != nil {
			t.Fatalf("run error %v, collection error %v", res.RunErr, res.CollErr)
		}
		if res.Progress.OK != 3 || res.Progress.Failed != 1 {
			t.Fatalf("ended with %d ok, %d failed; want 3 ok, 1 failed", res.Progress.OK, res.Progress.Failed)
		}
		return started, seen, res
	}

	started, seen, _ := execute()
	if started != 0 {
		t.Errorf("a fresh run started with %d tasks done, want 0", started)
	}
	if len(seen) == 0 || seen[0].Total != 4 {
		t.Fatalf("progress %+v: want reports of 4 tasks", seen)
	}
	for _, id := range []string{"t0", "t1", "t3"} {
		if _, err := os.Stat(filepath.Join(out, "outputs", id+".pkl")); err != nil {
			t.Errorf("output of %s not collected: %v", id, err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "failed", "t2")); err != nil {
		t.Errorf("failed task t2 not collected: %v", err)
	}
	index, err := os.ReadFile(filepath.Join(out, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(index, []byte("\n")); n != 4 {
		t.Errorf("results.jsonl has %d lines, want 4:\n%s", n, index)
	}

	started, _, _ = execute()
	if started != 4 {
		t.Errorf("a finished run started again with %d tasks done, want 4", started)
	}
	again, err := os.ReadFile(filepath.Join(out, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, index) {
		t.Errorf("results.jsonl changed on a second pass:\n%s\nthen\n%s", index, again)
	}

	// The same run collected afresh elsewhere (burst results): every
	// finished task once, then nothing new.
	other := filepath.Join(dir, "other")
	for _, want := range []int{4, 0} {
		p, n, err := staging.CollectRun(ctx, run, man, other)
		if err != nil || n != want || p.OK != 3 || p.Failed != 1 {
			t.Fatalf("CollectRun: %d ok, %d failed, %d fetched, %v; want 3, 1, %d", p.OK, p.Failed, n, err, want)
		}
	}
	otherIndex, err := os.ReadFile(filepath.Join(other, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(otherIndex, []byte("\n")); n != 4 {
		t.Errorf("collected afresh, results.jsonl has %d lines, want 4", n)
	}
}
