package executor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/internal/testpy"
	"github.com/slicerburst/burst/staging"
	"github.com/slicerburst/burst/staging/pickle"
)

// TestMain doubles as a worker process for the multi-process tests: with
// BURST_TEST_WORKER set, the test binary runs one worker and exits.
func TestMain(m *testing.M) {
	if os.Getenv("BURST_TEST_WORKER") != "" {
		os.Exit(workerMain())
	}
	os.Exit(m.Run())
}

func workerMain() int {
	store, err := openWorkerStore()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	// Its tasks may want to take it down (see TestPoisonTaskIsFailed).
	os.Setenv("BURST_TEST_WORKER_PID", strconv.Itoa(os.Getpid()))
	run, _ := staging.OpenRun(store, os.Getenv("BURST_TEST_RUN"))
	slots, _ := strconv.Atoi(os.Getenv("BURST_TEST_SLOTS"))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, err = executor.Run(context.Background(), executor.Config{
		Run: run, Slots: slots, Python: os.Getenv("BURST_TEST_PYTHON_BIN"),
		WorkDir: os.Getenv("BURST_TEST_WORKDIR"), Heartbeat: 200 * time.Millisecond,
		Clock: workerClock(), Logger: log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	return 0
}

// startWorker starts a worker process on the run; it is killed at the end
// of the test if still running.
func startWorker(t *testing.T, store *staging.FSStore, run *staging.Run, python string, slots int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		"BURST_TEST_WORKER=1",
		"BURST_TEST_STORE="+store.Location(),
		"BURST_TEST_RUN="+run.ID,
		"BURST_TEST_SLOTS="+strconv.Itoa(slots),
		"BURST_TEST_PYTHON_BIN="+python,
		"BURST_TEST_WORKDIR="+t.TempDir(),
	)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

type fixture struct {
	store  *staging.FSStore
	run    *staging.Run
	man    *staging.Manifest
	python string
	dir    string // scratch shared with the scripts (BURST_TEST_DIR)
}

// stage writes script and n tasks {"i": i} to a fresh store.
func stage(t *testing.T, script string, n int, m staging.Manifest, shared ...string) *fixture {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("BURST_TEST_DIR", dir)
	store, err := staging.OpenFS(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	path, inputs := scriptAndInputs(t, dir, script, n)
	if m.LeaseTTL == 0 {
		m.LeaseTTL = staging.Duration(10 * time.Second)
	}
	if m.Slots == 0 {
		m.Slots = 2
	}
	run, err := staging.Stage(context.Background(), store, staging.StageRequest{ScriptPath: path, Inputs: inputs, Manifest: m, SharedPaths: shared})
	if err != nil {
		t.Fatal(err)
	}
	man, err := run.Manifest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{store: store, run: run, man: man, python: testpy.Python(t), dir: dir}
}

// scriptAndInputs writes script into dir and returns its path and n task
// inputs {"i": i}, named 0000, 0001, ...
func scriptAndInputs(t *testing.T, dir, script string, n int) (string, []staging.Input) {
	t.Helper()
	path := filepath.Join(dir, "job.py")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	inputs := make([]staging.Input, n)
	for i := range inputs {
		d := pickle.NewDict()
		d.Set("i", int64(i))
		p, err := pickle.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		inputs[i] = staging.Input{ID: fmt.Sprintf("%04d", i), Pickle: p}
	}
	return path, inputs
}

func (f *fixture) config(t *testing.T, slots int) executor.Config {
	return executor.Config{Run: f.run, Slots: slots, Python: f.python, WorkDir: t.TempDir(), Heartbeat: 100 * time.Millisecond}
}

func (f *fixture) status(t *testing.T, task string) *staging.Status {
	t.Helper()
	st, err := f.run.ReadStatus(context.Background(), task)
	if err != nil {
		t.Fatalf("status of %s: %v", task, err)
	}
	return st
}

func (f *fixture) output(t *testing.T, task string) *pickle.Dict {
	t.Helper()
	data, err := f.run.Output(context.Background(), task)
	if err != nil {
		t.Fatalf("result of %s: %v", task, err)
	}
	v, err := pickle.Unmarshal(data)
	if err != nil {
		t.Fatalf("result of %s: %v", task, err)
	}
	d, ok := v.(*pickle.Dict)
	if !ok {
		t.Fatalf("result of %s is %T", task, v)
	}
	return d
}

// lines reads a log the scripts append to.
func lines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return strings.Fields(string(data))
}

const echoScript = `
import os, pickle, sys, time
p = pickle.load(sys.stdin.buffer)
with open(os.path.join(os.environ["BURST_TEST_DIR"], "ran.log"), "a") as f:
    f.write(os.environ["BURST_TASK_ID"] + "\n")
ballast = bytearray(int(p["i"]) * 1024 * 1024)  # peak memory grows with i
time.sleep(0.15)  # long enough to be sampled (see rssProbe)
print("working on", p["i"], file=sys.stderr)
pickle.dump({"square": p["i"] ** 2, "task": os.environ["BURST_TASK_ID"],
             "run": os.environ["BURST_RUN_ID"], "attempt": int(os.environ["BURST_ATTEMPT"]),
             "shared": os.environ["BURST_SHARED_DIR"]}, sys.stdout.buffer)
`

func TestRunRecordsEveryTask(t *testing.T) {
	f := stage(t, echoScript, 30, staging.Manifest{Retries: 1})
	var mu sync.Mutex
	started, finished := map[string]int{}, map[string]int{}
	cfg := f.config(t, 2)
	cfg.OnEvent = func(e executor.Event) {
		mu.Lock()
		defer mu.Unlock()
		if e.Kind == executor.TaskStarted {
			started[e.Task]++
		} else {
			finished[e.Task]++
		}
	}
	sum, err := executor.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.OK != 30 || sum.Failed != 0 {
		t.Fatalf("summary %+v, want 30 ok", sum)
	}
	for i, id := range f.man.Tasks {
		out := f.output(t, id)
		if sq, _ := out.Get("square"); sq != int64(i*i) {
			t.Errorf("task %s: square = %v, want %d", id, sq, i*i)
		}
		if v, _ := out.Get("task"); v != id {
			t.Errorf("task %s saw BURST_TASK_ID=%v", id, v)
		}
		if v, _ := out.Get("run"); v != f.run.ID {
			t.Errorf("task %s saw BURST_RUN_ID=%v", id, v)
		}
		if v, _ := out.Get("attempt"); v != int64(1) {
			t.Errorf("task %s saw BURST_ATTEMPT=%v", id, v)
		}
		st := f.status(t, id)
		if st.Status != staging.StatusOK || st.Attempts != 1 || st.ExitCode == nil || *st.ExitCode != 0 {
			t.Errorf("task %s status %+v", id, st)
		}
		if st.DurationS <= 0 || st.MaxRSSKB <= 0 {
			t.Errorf("task %s: duration %v s, max rss %d KiB; want both > 0", id, st.DurationS, st.MaxRSSKB)
		}
		if !strings.Contains(st.StderrTail, fmt.Sprintf("working on %d", i)) {
			t.Errorf("task %s stderr tail %q", id, st.StderrTail)
		}
		if started[id] != 1 || finished[id] != 1 {
			t.Errorf("task %s: %d start and %d finish events", id, started[id], finished[id])
		}
	}
	// Peak memory is measured, not made up: 29 MiB of ballast shows.
	if lo, hi := f.status(t, "0000").MaxRSSKB, f.status(t, "0029").MaxRSSKB; hi-lo < 20*1024 {
		t.Errorf("max rss of task 0029 (%d KiB) should exceed task 0000's (%d KiB) by ~29 MiB", hi, lo)
	}
	if ran := lines(t, filepath.Join(f.dir, "ran.log")); len(ran) != 30 {
		t.Errorf("scripts ran %d times, want 30", len(ran))
	}
	for i := range f.man.Chunks {
		l, err := f.run.ReadLease(context.Background(), i)
		if err != nil || !l.Done {
			t.Errorf("chunk %d lease %+v, %v: want done", i, l, err)
		}
	}
	p, err := f.run.ReadProgress(context.Background(), f.man)
	if err != nil {
		t.Fatal(err)
	}
	if p.State != staging.StateDone || p.OK != 30 || p.Workers != 0 {
		t.Errorf("progress %+v, want done with 30 ok and no live worker", p)
	}
	// Running again finds nothing to do and runs nothing.
	if sum, err := executor.Run(context.Background(), f.config(t, 2)); err != nil || sum.OK+sum.Failed != 0 {
		t.Errorf("second Run: %+v, %v; want nothing done", sum, err)
	}
	if ran := lines(t, filepath.Join(f.dir, "ran.log")); len(ran) != 30 {
		t.Errorf("scripts ran %d times after a second Run, want 30", len(ran))
	}
}

const failScript = `
import os, pickle, subprocess, sys, time
p = pickle.load(sys.stdin.buffer)
i, attempt = p["i"], int(os.environ["BURST_ATTEMPT"])
d = os.environ["BURST_TEST_DIR"]
if i == 0:
    print("Traceback (most recent call last):\nValueError: radius must be positive", file=sys.stderr)
    sys.exit(3)
if i == 1:
    child = subprocess.Popen(["sleep", "300"])
    with open(os.path.join(d, "child-%d.pid" % attempt), "w") as f:
        f.write(str(child.pid))
    time.sleep(300)
if i == 2:
    sys.stdout.write("hello, this is not a pickle")
    sys.exit(0)
if i == 3:
    pickle.dump([1, 2, 3], sys.stdout.buffer)
    sys.exit(0)
if i == 4 and attempt == 1:
    print("flaky first attempt", file=sys.stderr)
    sys.exit(1)
if i == 5:
    sys.stderr.write("x" * 10000 + "\nlast words\n")
    os.kill(os.getpid(), 9)
pickle.dump({"i": i, "attempt": attempt}, sys.stdout.buffer)
`

func TestFailuresAreRecordedAndTheRunGoesOn(t *testing.T) {
	f := stage(t, failScript, 8, staging.Manifest{Retries: 1, Timeout: staging.Duration(time.Second)})
	start := time.Now()
	sum, err := executor.Run(context.Background(), f.config(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	if sum.OK != 3 || sum.Failed != 5 {
		t.Errorf("summary %+v, want 3 ok (2 plain, 1 flaky), 5 failed", sum)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("run took %s: a hung task was not cut off by its timeout", el)
	}
	cases := []struct {
		task, errPart string
		attempts      int
		exit          int
	}{
		{"0000", "exit code 3: ValueError: radius must be positive", 2, 3},
		{"0001", "timed out after 1s", 2, -1},
		{"0002", `stdout is not a pickle`, 2, 0},
		{"0003", "stdout is a pickle of list, not a dict", 2, 0},
		{"0005", "killed by signal SIGKILL: last words", 2, -1},
	}
	for _, c := range cases {
		st := f.status(t, c.task)
		if st.Status != staging.StatusFailed || !strings.Contains(st.Error, c.errPart) || st.Attempts != c.attempts {
			t.Errorf("task %s: status %q error %q attempts %d; want failed, %q, %d", c.task, st.Status, st.Error, st.Attempts, c.errPart, c.attempts)
		}
		if st.ExitCode == nil || *st.ExitCode != c.exit {
			t.Errorf("task %s: exit code %v, want %d", c.task, st.ExitCode, c.exit)
		}
		if _, err := f.store.Stat(context.Background(), f.run.ResultKey(c.task, st.Exec)); !errors.Is(err, staging.ErrNotFound) {
			t.Errorf("failed task %s has a result (%v)", c.task, err)
		}
	}
	if st := f.status(t, "0002"); !strings.Contains(st.Error, `starts with "hello, this is not a pickle"`) {
		t.Errorf("garbage stdout error %q should quote the start of stdout", st.Error)
	}
	// The long stderr of task 0005 is stored whole; the status keeps the tail.
	st5 := f.status(t, "0005")
	if len(st5.LogAttempts) != 2 || len(st5.StderrTail) > 4096 || !strings.HasSuffix(st5.StderrTail, "last words\n") {
		t.Errorf("task 0005: log attempts %v, tail of %d bytes", st5.LogAttempts, len(st5.StderrTail))
	}
	full, err := f.run.Stderr(context.Background(), st5)
	if err != nil || len(full) != 10000+len("\nlast words\n") {
		t.Errorf("full stderr of 0005: %d bytes, %v", len(full), err)
	}
	// The flaky task succeeded on its second attempt.
	if st := f.status(t, "0004"); st.Status != staging.StatusOK || st.Attempts != 2 {
		t.Errorf("flaky task: %+v", st)
	}
	if v, _ := f.output(t, "0004").Get("attempt"); v != int64(2) {
		t.Errorf("flaky task output attempt = %v", v)
	}
	// A timeout kills the whole process group: the script's child is gone.
	for _, a := range []string{"1", "2"} {
		data, err := os.ReadFile(filepath.Join(f.dir, "child-"+a+".pid"))
		if err != nil {
			t.Fatalf("child pid of attempt %s: %v", a, err)
		}
		pid, _ := strconv.Atoi(string(data))
		if alive(pid) {
			t.Errorf("child %d of the timed-out attempt %s is still alive", pid, a)
		}
	}
}

func TestCancelStopsRunningTasks(t *testing.T) {
	script := `
import os, pickle, sys, time
p = pickle.load(sys.stdin.buffer)
if p["i"] >= 2:
    time.sleep(300)
pickle.dump({}, sys.stdout.buffer)
`
	// As many slots as tasks, so the two quick tasks run whichever chunks
	// the hanging ones are in.
	f := stage(t, script, 4, staging.Manifest{})
	done := make(chan error, 1)
	events := make(chan executor.Event, 10)
	cfg := f.config(t, 4)
	cfg.OnEvent = func(e executor.Event) { events <- e }
	go func() {
		_, err := executor.Run(context.Background(), cfg)
		done <- err
	}()
	hanging, finished := 0, 0
	for hanging < 2 || finished < 2 {
		select {
		case e := <-events:
			switch {
			case e.Kind == executor.TaskStarted && e.Task >= "0002":
				hanging++
			case e.Kind == executor.TaskFinished:
				finished++
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("after 30s: %d tasks hanging, %d finished; want 2 and 2", hanging, finished)
		}
	}
	if err := f.run.Cancel(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, executor.ErrCancelled) {
			t.Fatalf("Run returned %v, want ErrCancelled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not stop within 10s of the cancel")
	}
	p, err := f.run.ReadProgress(context.Background(), f.man)
	if err != nil {
		t.Fatal(err)
	}
	if p.State != staging.StateCancelled || p.OK != 2 || p.Failed != 0 {
		t.Errorf("after cancel: %+v; want cancelled with 2 ok and the killed tasks unrecorded", p)
	}
	// A new worker refuses to start on a cancelled run.
	if _, err := executor.Run(context.Background(), f.config(t, 1)); !errors.Is(err, executor.ErrCancelled) {
		t.Errorf("Run on a cancelled run: %v", err)
	}
}

// TestInterruptReleasesLeases: a worker stopped by its context gives its
// chunks up, and a resumed worker finishes the run without waiting for a
// lease to lapse and without redoing finished tasks.
func TestInterruptThenResume(t *testing.T) {
	script := `
import os, pickle, sys, time
p = pickle.load(sys.stdin.buffer)
with open(os.path.join(os.environ["BURST_TEST_DIR"], "ran.log"), "a") as f:
    f.write(os.environ["BURST_TASK_ID"] + "\n")
if p["i"] == 5 and not os.path.exists(os.path.join(os.environ["BURST_TEST_DIR"], "resumed")):
    time.sleep(300)
pickle.dump({"i": p["i"]}, sys.stdout.buffer)
`
	f := stage(t, script, 12, staging.Manifest{LeaseTTL: staging.Duration(time.Hour), Slots: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cfg := f.config(t, 1)
	cfg.OnEvent = func(e executor.Event) {
		if e.Kind == executor.TaskStarted && e.Task == "0005" {
			cancel()
		}
	}
	if _, err := executor.Run(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Run: %v", err)
	}
	before := lines(t, filepath.Join(f.dir, "ran.log"))
	if err := os.WriteFile(filepath.Join(f.dir, "resumed"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	sum, err := executor.Run(context.Background(), f.config(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 30*time.Second {
		t.Errorf("resume took %s: it waited for a lease (TTL 1h) instead of taking the released one", time.Since(start))
	}
	// Every task that started before the interrupt finished, but 0005
	// (which may or may not have got as far as writing to the log).
	want := 12 - len(before)
	if slices.Contains(before, "0005") {
		want++
	}
	if sum.OK != want {
		t.Errorf("resume ran %d tasks, want the %d unfinished (before: %v)", sum.OK, want, before)
	}
	after := lines(t, filepath.Join(f.dir, "ran.log"))
	counts := map[string]int{}
	for _, id := range after {
		counts[id]++
	}
	for _, id := range f.man.Tasks {
		want := 1
		if id == "0005" && counts[id] == 2 {
			want = 2 // interrupted after it started, then run again
		}
		if counts[id] != want {
			t.Errorf("task %s ran %d times, want %d (before resume: %v)", id, counts[id], want, before)
		}
	}
}

// TestWorkersRaceForChunks: several worker processes share one run on the
// filesystem store; every task is done exactly once.
func TestWorkersRaceForChunks(t *testing.T) {
	script := `
import os, pickle, sys
p = pickle.load(sys.stdin.buffer)
with open(os.path.join(os.environ["BURST_TEST_DIR"], "ran.log"), "a") as f:
    f.write(os.environ["BURST_TASK_ID"] + "\n")
pickle.dump({"i": p["i"]}, sys.stdout.buffer)
`
	const n = 240
	f := stage(t, script, n, staging.Manifest{Slots: 8, LeaseTTL: staging.Duration(5 * time.Second)})
	var cmds []*exec.Cmd
	for i := 0; i < 4; i++ {
		cmds = append(cmds, startWorker(t, f.store, f.run, f.python, 2))
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("worker %d: %v", i, err)
		}
	}
	ran := lines(t, filepath.Join(f.dir, "ran.log"))
	counts := map[string]int{}
	for _, id := range ran {
		counts[id]++
	}
	for _, id := range f.man.Tasks {
		if counts[id] != 1 {
			t.Errorf("task %s ran %d times, want exactly 1", id, counts[id])
		}
		if st := f.status(t, id); st.Status != staging.StatusOK {
			t.Errorf("task %s: %+v", id, st)
		}
	}
	if len(ran) != n {
		t.Errorf("%d runs for %d tasks", len(ran), n)
	}
	// Work was shared: more than one worker finished tasks.
	workers := map[string]bool{}
	for _, id := range f.man.Tasks {
		workers[f.status(t, id).Worker] = true
	}
	if len(workers) < 2 {
		t.Errorf("only %d worker did all the work", len(workers))
	}
}

// TestKilledWorkerIsTakenOver: kill -9 a worker mid-task; its interpreter
// dies with it, its lease lapses, another worker takes the chunk over and
// every task finishes exactly once.
func TestKilledWorkerIsTakenOver(t *testing.T) {
	script := `
import os, pickle, sys, time
p = pickle.load(sys.stdin.buffer)
d = os.environ["BURST_TEST_DIR"]
if p["i"] == 3:
    try:
        os.rename(os.path.join(d, "slow-once"), os.path.join(d, "slow-taken"))
        with open(os.path.join(d, "victim.pid"), "w") as f:
            f.write(str(os.getpid()))
        time.sleep(300)
    except FileNotFoundError:
        pass
with open(os.path.join(d, "done.log"), "a") as f:
    f.write(os.environ["BURST_TASK_ID"] + "\n")
pickle.dump({"i": p["i"]}, sys.stdout.buffer)
`
	f := stage(t, script, 10, staging.Manifest{Slots: 1, LeaseTTL: staging.Duration(2 * time.Second)})
	if err := os.WriteFile(filepath.Join(f.dir, "slow-once"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	victim := startWorker(t, f.store, f.run, f.python, 1)
	pidFile := filepath.Join(f.dir, "victim.pid")
	deadline := time.Now().Add(30 * time.Second)
	var pid int
	for pid == 0 {
		if time.Now().After(deadline) {
			t.Fatal("task 0003 never started")
		}
		if data, err := os.ReadFile(pidFile); err == nil && len(data) > 0 {
			pid, _ = strconv.Atoi(string(data))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := victim.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	victim.Wait()
	// The interpreter does not outlive its worker.
	for time.Now().Before(deadline) && alive(pid) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(pid) {
		t.Errorf("interpreter %d outlived its killed worker", pid)
	}
	rescuer := startWorker(t, f.store, f.run, f.python, 1)
	if err := rescuer.Wait(); err != nil {
		t.Fatalf("second worker: %v", err)
	}
	done := lines(t, filepath.Join(f.dir, "done.log"))
	counts := map[string]int{}
	for _, id := range done {
		counts[id]++
	}
	for _, id := range f.man.Tasks {
		if counts[id] != 1 {
			t.Errorf("task %s finished %d times, want 1", id, counts[id])
		}
		if st := f.status(t, id); st.Status != staging.StatusOK {
			t.Errorf("task %s: %+v", id, st)
		}
	}
	l, err := f.run.ReadLease(context.Background(), 0)
	if err != nil || !l.Done || l.Takeovers < 1 {
		t.Errorf("chunk 0 lease %+v (%v): want done after a takeover", l, err)
	}
}

// TestSharedFiles: a --shared file reaches every task by name, and a
// damaged store copy is refused.
func TestSharedFiles(t *testing.T) {
	script := `
import os, pickle, sys
pickle.load(sys.stdin.buffer)
with open(os.path.join(os.environ["BURST_SHARED_DIR"], "volume.raw"), "rb") as f:
    data = f.read()
pickle.dump({"size": len(data), "head": data[:5]}, sys.stdout.buffer)
`
	src := filepath.Join(t.TempDir(), "volume.raw")
	if err := os.WriteFile(src, []byte("VOXELS-0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := stage(t, script, 3, staging.Manifest{}, src)
	if _, err := executor.Run(context.Background(), f.config(t, 2)); err != nil {
		t.Fatal(err)
	}
	out := f.output(t, "0002")
	if size, _ := out.Get("size"); size != int64(17) {
		t.Errorf("shared file size seen by the task: %v", size)
	}
	if head, _ := out.Get("head"); string(head.([]byte)) != "VOXEL" {
		t.Errorf("shared file head: %q", head)
	}
	// Corrupt the stored copy: a worker with an empty cache refuses it.
	sha := f.man.Shared[0].SHA256
	if _, err := f.store.Put(context.Background(), staging.CASKey(sha), []byte("tampered")); err != nil {
		t.Fatal(err)
	}
	_, err := executor.Run(context.Background(), f.config(t, 1))
	if err == nil || !strings.Contains(err.Error(), "does not match its hash") {
		t.Errorf("Run with a damaged shared file: %v", err)
	}
}

func TestManifestProtocolMismatch(t *testing.T) {
	f := stage(t, echoScript, 1, staging.Manifest{})
	data, _, _ := f.store.Get(context.Background(), f.run.ManifestKey())
	var m map[string]any
	json.Unmarshal(data, &m)
	m["protocol"] = 99
	data, _ = json.Marshal(m)
	f.store.Put(context.Background(), f.run.ManifestKey(), data)
	_, err := executor.Run(context.Background(), f.config(t, 1))
	var pe *staging.ProtocolError
	if !errors.As(err, &pe) || pe.Protocol != 99 || pe.Run != f.run.ID ||
		!strings.Contains(err.Error(), "was staged by a burst with protocol 99; this burst speaks 2") {
		t.Errorf("Run on a protocol-99 run: %v", err)
	}
	// Refused before any work: no lease, no heartbeat.
	for _, key := range []string{f.run.LeaseKey(0), f.run.WorkerKey("w")} {
		prefix := key[:strings.LastIndexByte(key, '/')+1]
		if objs, err := f.store.List(context.Background(), prefix); err != nil || len(objs) != 0 {
			t.Errorf("%s after the refusal: %d objects, %v", prefix, len(objs), err)
		}
	}
}

// alive reports whether process pid exists and is not a zombie: an orphan
// killed with its group is dead even while no init process has reaped it.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesized command name: "pid (comm) S ...".
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// TestResolvePython: a relative interpreter path becomes absolute (tasks
// run in scratch directories) without resolving a virtualenv's symlink.
func TestResolvePython(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "env", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(testpy.Python(t), filepath.Join(bin, "python")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	got, err := executor.ResolvePython("env/bin/python")
	if want := filepath.Join(bin, "python"); err != nil || got != want {
		t.Errorf("ResolvePython(env/bin/python) = %q, %v; want %q", got, err, want)
	}
	if _, err := executor.ResolvePython("env/bin/nope"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("ResolvePython of a missing interpreter: %v", err)
	}
}

// TestMissingInterpreterStopsTheWorker: an interpreter that cannot start
// is the worker's fault, not the tasks': the worker stops with the reason
// and no task is recorded as failed, so a worker that has one can run them.
func TestMissingInterpreterStopsTheWorker(t *testing.T) {
	f := stage(t, echoScript, 3, staging.Manifest{})
	cfg := f.config(t, 1)
	cfg.Python = filepath.Join(f.dir, "no-such-python")
	_, err := executor.Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "starting the interpreter") {
		t.Fatalf("Run with a missing interpreter: %v", err)
	}
	p, err := f.run.ReadProgress(context.Background(), f.man)
	if err != nil {
		t.Fatal(err)
	}
	if p.Done() != 0 {
		t.Errorf("%d tasks recorded as finished, want none", p.Done())
	}
	// The lease was released: a working worker finishes the run at once.
	start := time.Now()
	if sum, err := executor.Run(context.Background(), f.config(t, 1)); err != nil || sum.OK != 3 {
		t.Errorf("second worker: %+v, %v", sum, err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("second worker took %s: the first one's lease was not released", el)
	}
}

// TestInputBundles: a chunk's inputs come from its bundle in one read; a
// run whose bundles are gone still runs, reading inputs one by one.
func TestInputBundles(t *testing.T) {
	f := stage(t, echoScript, 6, staging.Manifest{})
	ctx := context.Background()
	if !f.man.Bundles {
		t.Fatal("staging wrote no input bundles")
	}
	got, err := f.run.ReadBundle(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := f.man.Chunks[0]
	for _, id := range f.man.Tasks[c.Start:c.End] {
		want, _, _ := f.store.Get(ctx, f.run.TaskKey(id))
		if string(got[id]) != string(want) {
			t.Errorf("bundle of chunk 0: task %s input differs", id)
		}
	}
	if len(got) != c.Len() {
		t.Errorf("bundle of chunk 0 holds %d inputs, want %d", len(got), c.Len())
	}
	for i := range f.man.Chunks {
		if err := f.store.Delete(ctx, f.run.BundleKey(i)); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := executor.Run(ctx, f.config(t, 2))
	if err != nil || sum.OK != 6 {
		t.Fatalf("Run without bundles: %+v, %v", sum, err)
	}
	if v, _ := f.output(t, "0005").Get("square"); v != int64(25) {
		t.Errorf("task 0005 output square = %v, want 25", v)
	}
}
