package provision_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/internal/testpy"
	"github.com/slicerburst/burst/provision"
	"github.com/slicerburst/burst/staging"
	"github.com/slicerburst/burst/staging/pickle"
)

// TestMain doubles as a probe: with BURST_TEST_PRINT_CORES set, the test
// binary prints Cores() and exits, so a test can run it under taskset.
func TestMain(m *testing.M) {
	if os.Getenv("BURST_TEST_PRINT_CORES") != "" {
		os.Stdout.WriteString(strconv.Itoa(provision.Cores()) + "\n")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestCoresFollowsAffinity: a process pinned to one CPU counts one core,
// whatever the machine has.
func TestCoresFollowsAffinity(t *testing.T) {
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		t.Fatalf("taskset (util-linux) is needed: %v", err)
	}
	cmd := exec.Command(taskset, "-c", "0", os.Args[0])
	cmd.Env = append(os.Environ(), "BURST_TEST_PRINT_CORES=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe under taskset: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != "1" {
		t.Errorf("Cores() pinned to CPU 0 = %s, want 1", got)
	}
}

// numberedInputs is n tasks t0, t1, ..., each the pickled dict {"i": its
// number}.
func numberedInputs(t *testing.T, n int) []staging.Input {
	t.Helper()
	var inputs []staging.Input
	for i := range n {
		d := pickle.NewDict()
		d.Set("i", int64(i))
		p, err := pickle.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, staging.Input{ID: "t" + strconv.Itoa(i), Pickle: p})
	}
	return inputs
}

// TestLocalRun: the local provider runs every task with real Python, in
// as many slots as asked, removes its scratch directory and keeps the
// shared-file cache.
func TestLocalRun(t *testing.T) {
	dir := t.TempDir()
	store, err := staging.OpenFS(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	script := filepath.Join(dir, "job.py")
	if err := os.WriteFile(script, []byte(`
import os, pickle, sys, time
p = pickle.load(sys.stdin.buffer)
shared = open(os.path.join(os.environ["BURST_SHARED_DIR"], "table.txt")).read()
time.sleep(0.2)
pickle.dump({"i": p["i"], "cwd": os.getcwd(), "shared": shared}, sys.stdout.buffer)
`), 0o644); err != nil {
		t.Fatal(err)
	}
	table := filepath.Join(dir, "table.txt")
	if err := os.WriteFile(table, []byte("42"), 0o644); err != nil {
		t.Fatal(err)
	}
	inputs := numberedInputs(t, 6)
	ctx := context.Background()
	run, err := staging.Stage(ctx, store, staging.StageRequest{
		ScriptPath: script, Inputs: inputs, SharedPaths: []string{table},
		Manifest: staging.Manifest{Retries: 0, LeaseTTL: staging.Duration(10 * time.Second), Slots: 3},
	})
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	running, peak := 0, 0
	work := filepath.Join(dir, "burst")
	local := provision.Local{
		Slots: 3, Python: testpy.Python(t), Dir: work, Heartbeat: 100 * time.Millisecond,
		OnEvent: func(e executor.Event) {
			mu.Lock()
			defer mu.Unlock()
			if e.Kind == executor.TaskStarted {
				running++
				peak = max(peak, running)
			} else {
				running--
			}
		},
	}
	sum, err := local.Run(ctx, run)
	if err != nil || sum.OK != 6 {
		t.Fatalf("Run: %+v, %v; want 6 ok", sum, err)
	}
	if peak != 3 {
		t.Errorf("at most %d tasks ran at once, want 3", peak)
	}
	for _, in := range inputs {
		data, err := run.Output(ctx, in.ID)
		if err != nil {
			t.Fatalf("result of %s: %v", in.ID, err)
		}
		v, err := pickle.Unmarshal(data)
		if err != nil {
			t.Fatal(err)
		}
		out := v.(*pickle.Dict)
		if s, _ := out.Get("shared"); s != "42" {
			t.Errorf("task %s read shared file %q", in.ID, s)
		}
		if cwd, _ := out.Get("cwd"); !strings.HasPrefix(cwd.(string), filepath.Join(work, "work")+"/") {
			t.Errorf("task %s ran in %v, want a scratch directory under %s/work", in.ID, cwd, work)
		}
	}
	if entries, err := os.ReadDir(filepath.Join(work, "work")); err != nil || len(entries) != 0 {
		t.Errorf("scratch directories left behind: %v (%v)", entries, err)
	}
	man, err := run.Manifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cached := filepath.Join(provision.CacheDir(work), "sha256", man.Shared[0].SHA256)
	if data, err := os.ReadFile(cached); err != nil || string(data) != "42" {
		t.Errorf("shared file not kept in the cache at %s: %q, %v", cached, data, err)
	}
}
