package executor_test

// Fault injection for the worker: worker processes whose store pauses or
// kills them at a chosen step of a task's commit, loses answers, or fails
// at random; then the run is checked from the outside (see checkRun).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/internal/testminio"
	"github.com/slicerburst/burst/internal/testpy"
	"github.com/slicerburst/burst/staging"
)

// errInjected is the error of an injected fault: a network error, as far
// as the worker can tell.
var errInjected = errors.New("connection reset by peer (injected)")

// faultStore wraps a store with faults:
//   - a trigger: at the first write whose operation, key and data match,
//     before or after it takes effect, the process stops itself (SIGSTOP,
//     to be continued by the test) or dies (SIGKILL);
//   - at random, with probability rate each: a write that fails without
//     taking effect, a write that takes effect and then fails (a lost
//     answer), a read that fails.
type faultStore struct {
	staging.Store
	trig *trigger
	rate float64
	mu   sync.Mutex
	rng  *rand.Rand
}

// trigger is "op|key part|data part|before or after|action", op one of
// put, create, replace; action stop or kill (the first match), or stall:
// every write to the key first matched hangs until its context ends.
type trigger struct {
	op, key, data, when, action string
	once                        sync.Once
	stalled                     string // the key that stalls
}

func parseTrigger(s string) *trigger {
	p := strings.Split(s, "|")
	if len(p) != 5 {
		return nil
	}
	return &trigger{op: p[0], key: p[1], data: p[2], when: p[3], action: p[4]}
}

func (f *faultStore) maybeFire(ctx context.Context, op, key string, data []byte, when string) error {
	t := f.trig
	if t == nil || t.op != op || t.when != when || !strings.Contains(key, t.key) || !bytes.Contains(data, []byte(t.data)) {
		return nil
	}
	if t.action == "stall" {
		t.once.Do(func() { t.stalled = key })
		if key == t.stalled {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	t.once.Do(func() {
		sig := syscall.SIGSTOP
		if t.action == "kill" {
			sig = syscall.SIGKILL
		}
		// To this very thread, which then stops (or dies) before it
		// takes another step; a signal to the process might let it go
		// on for a moment.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		syscall.Tgkill(os.Getpid(), syscall.Gettid(), sig)
	})
	return nil
}

func (f *faultStore) roll() (fail, lose bool) {
	if f.rate == 0 {
		return false, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.rng.Float64()
	return r < f.rate, r >= f.rate && r < 2*f.rate
}

func (f *faultStore) write(ctx context.Context, op, key string, data []byte, do func() (string, error)) (string, error) {
	if err := f.maybeFire(ctx, op, key, data, "before"); err != nil {
		return "", err
	}
	fail, lose := f.roll()
	if fail {
		return "", errInjected
	}
	etag, err := do()
	f.maybeFire(ctx, op, key, data, "after")
	if lose && err == nil {
		return "", errInjected
	}
	return etag, err
}

func (f *faultStore) Put(ctx context.Context, key string, data []byte) (string, error) {
	return f.write(ctx, "put", key, data, func() (string, error) { return f.Store.Put(ctx, key, data) })
}

func (f *faultStore) Create(ctx context.Context, key string, data []byte) (string, error) {
	return f.write(ctx, "create", key, data, func() (string, error) { return f.Store.Create(ctx, key, data) })
}

func (f *faultStore) Replace(ctx context.Context, key string, data []byte, etag string) (string, error) {
	return f.write(ctx, "replace", key, data, func() (string, error) { return f.Store.Replace(ctx, key, data, etag) })
}

func (f *faultStore) Get(ctx context.Context, key string) ([]byte, string, error) {
	if fail, _ := f.roll(); fail {
		return nil, "", errInjected
	}
	return f.Store.Get(ctx, key)
}

func (f *faultStore) List(ctx context.Context, prefix string) ([]staging.ObjectInfo, error) {
	if fail, _ := f.roll(); fail {
		return nil, errInjected
	}
	return f.Store.List(ctx, prefix)
}

// openWorkerStore opens the store a worker process is told to use by its
// environment, with the faults it is told to inject.
func openWorkerStore() (staging.Store, error) {
	var store staging.Store
	if bucket := os.Getenv("BURST_TEST_S3_BUCKET"); bucket != "" {
		cfg, err := config.LoadDefaultConfig(context.Background())
		if err != nil {
			return nil, err
		}
		store = staging.NewS3Store(s3.NewFromConfig(cfg, staging.S3ClientOptions(true)), bucket, "", nil)
	} else {
		fs, err := staging.OpenFS(os.Getenv("BURST_TEST_STORE"))
		if err != nil {
			return nil, err
		}
		store = fs
	}
	rate, _ := strconv.ParseFloat(os.Getenv("BURST_TEST_FAULT_RATE"), 64)
	seed, _ := strconv.ParseUint(os.Getenv("BURST_TEST_FAULT_SEED"), 10, 64)
	trig := parseTrigger(os.Getenv("BURST_TEST_FAULT"))
	if rate == 0 && trig == nil {
		return store, nil
	}
	return &faultStore{Store: store, trig: trig, rate: rate, rng: rand.New(rand.NewPCG(seed, 1))}, nil
}

// workerClock is the clock a worker process is told to use: this
// machine's, off by BURST_TEST_CLOCK_OFFSET.
func workerClock() func() time.Time {
	off, err := time.ParseDuration(os.Getenv("BURST_TEST_CLOCK_OFFSET"))
	if err != nil || off == 0 {
		return nil
	}
	return func() time.Time { return time.Now().Add(off) }
}

// faultRun is a staged run that worker processes work on.
type faultRun struct {
	store  staging.Store
	run    *staging.Run
	man    *staging.Manifest
	python string
	dir    string   // scratch shared with the scripts (BURST_TEST_DIR)
	env    []string // how a worker process opens the store
}

// onFS returns a fresh filesystem store and how a worker opens it.
func onFS(t *testing.T) (staging.Store, []string) {
	dir := filepath.Join(t.TempDir(), "store")
	fs, err := staging.OpenFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	return fs, []string{"BURST_TEST_STORE=" + dir}
}

// onS3 returns a fresh bucket on srv and how a worker opens it.
func onS3(t *testing.T, srv *testminio.Server) (staging.Store, []string) {
	bucket := srv.NewBucket(t)
	store := staging.NewS3Store(srv.Client(t, staging.S3ClientOptions(true)), bucket, "", nil)
	return store, append(srv.Env(), "BURST_TEST_S3_BUCKET="+bucket)
}

// stageFault stages script with n tasks {"i": i} on store.
func stageFault(t *testing.T, store staging.Store, env []string, script string, n int, m staging.Manifest) *faultRun {
	return stageFaultChunks(t, store, env, script, n, m, 0)
}

// stageFaultChunks is stageFault with chunks of at least minChunk tasks.
func stageFaultChunks(t *testing.T, store staging.Store, env []string, script string, n int, m staging.Manifest, minChunk int) *faultRun {
	t.Helper()
	dir := t.TempDir()
	path, inputs := scriptAndInputs(t, dir, script, n)
	ctx := context.Background()
	run, err := staging.Stage(ctx, store, staging.StageRequest{ScriptPath: path, Inputs: inputs, Manifest: m, MinChunk: minChunk})
	if err != nil {
		t.Fatal(err)
	}
	man, err := run.Manifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &faultRun{store: store, run: run, man: man, python: testpy.Python(t), dir: dir, env: env}
}

// start starts a worker process on the run, with extra environment (its
// faults); it is killed at the end of the test if still running.
func (f *faultRun) start(t *testing.T, slots int, extra ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), f.env...)
	cmd.Env = append(cmd.Env,
		"BURST_TEST_WORKER=1",
		"BURST_TEST_RUN="+f.run.ID,
		"BURST_TEST_SLOTS="+strconv.Itoa(slots),
		"BURST_TEST_PYTHON_BIN="+f.python,
		"BURST_TEST_WORKDIR="+t.TempDir(),
		"BURST_TEST_DIR="+f.dir,
	)
	cmd.Env = append(cmd.Env, extra...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGCONT)
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("worker %d stderr:\n%s", cmd.Process.Pid, lastLines(stderr.String(), 30))
		}
	})
	return cmd
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// waitStopped waits until process pid is stopped (by a SIGSTOP it sent
// itself) or gone; it reports whether it stopped.
func waitStopped(t *testing.T, cmd *exec.Cmd, within time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
		if err != nil {
			return false
		}
		// pid (comm) STATE ...
		if i := bytes.LastIndexByte(data, ')'); i > 0 && i+2 < len(data) {
			switch data[i+2] {
			case 'T', 't':
				return true
			case 'Z':
				return false
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("worker %d neither stopped nor died within %s", cmd.Process.Pid, within)
	return false
}

// waitExit waits for a worker process to end, and fails the test if it
// does not within the time given or ends in error.
func waitExit(t *testing.T, cmd *exec.Cmd, within time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("worker %d: %v", cmd.Process.Pid, err)
		}
	case <-time.After(within):
		cmd.Process.Signal(syscall.SIGQUIT) // its goroutines, in its stderr
		<-done
		t.Fatalf("worker %d still running after %s", cmd.Process.Pid, within)
	}
}

// checkRun checks, from the outside, that every task has exactly one
// commit and that what reports it (burst status's progress), what
// collects it (results.jsonl) and what it collects (outputs/) agree. It
// returns the committed statuses by task.
func checkRun(t *testing.T, f *faultRun) map[string]*staging.Status {
	t.Helper()
	ctx := context.Background()
	run, _ := staging.OpenRun(f.store, f.run.ID) // nothing cached
	prefix := "runs/" + run.ID + "/"
	objs, err := f.store.List(ctx, prefix+"status/")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != len(f.man.Tasks) {
		t.Errorf("%d statuses for %d tasks", len(objs), len(f.man.Tasks))
	}
	sts := map[string]*staging.Status{}
	for _, id := range f.man.Tasks {
		st, err := run.ReadStatus(ctx, id)
		if err != nil {
			t.Errorf("task %s: no commit: %v", id, err)
			continue
		}
		sts[id] = st
	}
	p, err := run.ReadProgress(ctx, f.man)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	coll, err := staging.NewCollector(run, f.man, out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := coll.CollectAll(ctx, p); err != nil {
		t.Fatalf("collecting: %v", err)
	}
	if err := coll.Close(); err != nil {
		t.Fatal(err)
	}
	lines := map[string]staging.ResultLine{}
	for _, l := range readJSONL(t, filepath.Join(out, "results.jsonl")) {
		if _, dup := lines[l.Task]; dup {
			t.Errorf("task %s twice in results.jsonl", l.Task)
		}
		lines[l.Task] = l
	}
	ok := 0
	for id, st := range sts {
		_, hasOutput := os.Stat(coll.OutputPath(id))
		l, inIndex := lines[id]
		switch {
		case !inIndex:
			t.Errorf("task %s is missing from results.jsonl", id)
		case l.Status != st.Status:
			t.Errorf("task %s: status says %s, results.jsonl %s", id, st.Status, l.Status)
		case p.OKSet[id] != (st.Status == staging.StatusOK):
			t.Errorf("task %s: status says %s, progress says ok=%v", id, st.Status, p.OKSet[id])
		case (hasOutput == nil) != (st.Status == staging.StatusOK):
			t.Errorf("task %s: status says %s, outputs/ has it: %v", id, st.Status, hasOutput == nil)
		}
		if st.Status == staging.StatusOK {
			ok++
			data, _ := os.ReadFile(coll.OutputPath(id))
			want, err := run.Output(ctx, id)
			if err != nil || !bytes.Equal(data, want) {
				t.Errorf("task %s: outputs/ differs from the committed output (%v)", id, err)
			}
		}
	}
	if p.OK != ok || p.Done() != len(sts) || p.State != staging.StateDone {
		t.Errorf("progress %d ok, %d done, %s; the commits say %d ok of %d", p.OK, p.Done(), p.State, ok, len(sts))
	}
	return sts
}

func readJSONL(t *testing.T, path string) []staging.ResultLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []staging.ResultLine
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		var l staging.ResultLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("results.jsonl: %v", err)
		}
		out = append(out, l)
	}
	return out
}

// onceScript succeeds the first time a task runs and fails at once every
// later time: a second execution of a task can never go unnoticed.
const onceScript = `
import os, pickle, sys
p = pickle.load(sys.stdin.buffer)
d = os.environ["BURST_TEST_DIR"]
try:
    os.close(os.open(os.path.join(d, "ran-" + os.environ["BURST_TASK_ID"]), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
except FileExistsError:
    sys.exit("this task ran before")
pickle.dump({"i": p["i"]}, sys.stdout.buffer)
`

// commitSteps are the steps of a task's commit at which a worker is
// paused or killed, with the outcome the task must end with.
var commitSteps = []struct {
	name, trigger, want string
}{
	// The execution succeeded; its worker is gone before storing the
	// output: the taker's execution (which fails) commits.
	{"before-output", "put|/results/||before", staging.StatusFailed},
	// Output stored, not committed: the taker's execution commits.
	{"before-commit", "create|/status/||before", staging.StatusFailed},
	// Committed: the taker finds the commit and runs nothing.
	{"after-commit", "create|/status/||after", staging.StatusOK},
	{"before-complete", `replace|/leases/|"done":true|before`, staging.StatusOK},
}

// Invariant: a worker paused past its lease, or killed, at any step of a
// task's commit leaves exactly one commit, and status, results.jsonl and
// outputs/ agree on it; a paused worker that wakes up changes nothing.
func TestCommitStepFaults(t *testing.T) {
	for _, step := range commitSteps {
		for _, action := range []string{"stop", "kill"} {
			t.Run(step.name+"/"+action, func(t *testing.T) {
				t.Parallel()
				store, env := onFS(t)
				commitStepFault(t, store, env, step.trigger+"|"+action, step.want)
			})
		}
	}
}

// Invariant: as TestCommitStepFaults, on S3 (MinIO).
func TestS3CommitStepFaults(t *testing.T) {
	srv := testminio.Start(t)
	for _, step := range commitSteps[1:3] {
		for _, action := range []string{"stop", "kill"} {
			t.Run(step.name+"/"+action, func(t *testing.T) {
				t.Parallel()
				store, env := onS3(t, srv)
				commitStepFault(t, store, env, step.trigger+"|"+action, step.want)
			})
		}
	}
}

func commitStepFault(t *testing.T, store staging.Store, env []string, trig, want string) {
	ttl := 2 * time.Second
	f := stageFault(t, store, env, onceScript, 1, staging.Manifest{Slots: 1, LeaseTTL: staging.Duration(ttl)})
	victim := f.start(t, 1, "BURST_TEST_FAULT="+trig)
	stopped := waitStopped(t, victim, 60*time.Second)
	if !stopped {
		victim.Wait() // killed
	}
	taker := f.start(t, 1)
	waitExit(t, taker, 60*time.Second)
	if stopped {
		victim.Process.Signal(syscall.SIGCONT)
		waitExit(t, victim, 60*time.Second)
	}
	sts := checkRun(t, f)
	if st := sts["0000"]; st != nil && st.Status != want {
		t.Errorf("task 0000 ended %s (%s) by %s, want %s", st.Status, st.Error, st.Worker, want)
	}
	if l, err := f.run.ReadLease(context.Background(), 0); err != nil || !l.Done || l.Takeovers != 1 {
		t.Errorf("lease %+v, %v: want done after one takeover", l, err)
	}
}

// Invariant: answers lost after the write took effect (leases, commits,
// outputs) cost nothing: no lease is abandoned as someone else's, no task
// runs twice, every task commits once.
func TestLostAnswers(t *testing.T) {
	t.Parallel()
	store, env := onFS(t)
	f := stageFault(t, store, env, onceScript, 24, staging.Manifest{Slots: 2, LeaseTTL: staging.Duration(3 * time.Second)})
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	w := f.start(t, 2, "BURST_TEST_FAULT_RATE=0.15", fmt.Sprintf("BURST_TEST_FAULT_SEED=%d", seed))
	waitExit(t, w, 120*time.Second)
	for id, st := range checkRun(t, f) {
		if st.Status != staging.StatusOK {
			t.Errorf("task %s: %s (%s)", id, st.Status, st.Error)
		}
	}
	for i := range f.man.Chunks {
		if l, err := f.run.ReadLease(context.Background(), i); err != nil || !l.Done || l.Takeovers != 0 {
			t.Errorf("chunk %d: lease %+v, %v: want done, never taken over", i, l, err)
		}
	}
}

// Invariant: workers whose clocks are ten minutes ahead and behind share a
// run as if their clocks agreed: no live lease is taken over, every task
// runs once.
func TestClockOffsets(t *testing.T) {
	t.Parallel()
	store, env := onFS(t)
	script := strings.Replace(onceScript, "pickle.dump", "import time; time.sleep(0.2)\npickle.dump", 1)
	f := stageFault(t, store, env, script, 30, staging.Manifest{Slots: 2, LeaseTTL: staging.Duration(2 * time.Second)})
	ahead := f.start(t, 1, "BURST_TEST_CLOCK_OFFSET=10m")
	behind := f.start(t, 1, "BURST_TEST_CLOCK_OFFSET=-10m")
	waitExit(t, ahead, 120*time.Second)
	waitExit(t, behind, 120*time.Second)
	for id, st := range checkRun(t, f) {
		if st.Status != staging.StatusOK {
			t.Errorf("task %s: %s (%s)", id, st.Status, st.Error)
		}
	}
	for i := range f.man.Chunks {
		if l, err := f.run.ReadLease(context.Background(), i); err != nil || l.Takeovers != 0 {
			t.Errorf("chunk %d: lease %+v, %v: taken over although its holder was live", i, l, err)
		}
	}
}

// Invariant: a worker with nothing left to claim stays while another holds
// the last chunk, and takes it over when that worker dies.
func TestIdleWorkerStaysForTheLastChunk(t *testing.T) {
	t.Parallel()
	store, env := onFS(t)
	script := `
import os, pickle, sys, time
p = pickle.load(sys.stdin.buffer)
d = os.environ["BURST_TEST_DIR"]
try:
    fd = os.open(os.path.join(d, "started"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.write(fd, b"1")
    os.close(fd)
    time.sleep(300)  # the first execution hangs until its worker dies
except FileExistsError:
    pass
pickle.dump({"i": p["i"]}, sys.stdout.buffer)
`
	ttl := time.Second
	f := stageFault(t, store, env, script, 1, staging.Manifest{Slots: 1, LeaseTTL: staging.Duration(ttl)})
	holder := f.start(t, 1)
	waitFile(t, filepath.Join(f.dir, "started"))
	idle := f.start(t, 1)
	exited := make(chan error, 1)
	go func() { exited <- idle.Wait() }()
	select {
	case err := <-exited:
		t.Fatalf("the idle worker left while another held the last chunk (%v)", err)
	case <-time.After(4 * ttl):
	}
	holder.Process.Kill()
	holder.Wait()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("idle worker: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the idle worker did not finish the dead holder's chunk")
	}
	if st := checkRun(t, f)["0000"]; st == nil || st.Status != staging.StatusOK {
		t.Errorf("task 0000: %+v", st)
	}
}

// Invariant: a task that takes its worker down every time (out of memory,
// say) is failed with that reason once MaxLost workers were lost to it, and
// the rest of the run goes on.
func TestPoisonTaskIsFailed(t *testing.T) {
	t.Parallel()
	store, env := onFS(t)
	script := `
import os, pickle, signal, sys
p = pickle.load(sys.stdin.buffer)
if p["i"] == 1:
    os.kill(int(os.environ["BURST_TEST_WORKER_PID"]), signal.SIGKILL)  # the worker dies with it
    signal.pause()
pickle.dump({"i": p["i"]}, sys.stdout.buffer)
`
	f := stageFault(t, store, env, script, 3, staging.Manifest{Slots: 1, LeaseTTL: staging.Duration(time.Second), MaxLost: 2})
	if len(f.man.Chunks) != 2 {
		t.Fatalf("chunks %v: want the poison task in a chunk with another", f.man.Chunks)
	}
	for lost := 0; ; lost++ {
		w := f.start(t, 1)
		err := w.Wait()
		if err == nil {
			break
		}
		if lost > 4 {
			t.Fatalf("%d workers lost, and the run goes on failing them", lost)
		}
	}
	sts := checkRun(t, f)
	if st := sts["0001"]; st == nil || st.Status != staging.StatusFailed || !strings.Contains(st.Error, "worker was lost 2 times") {
		t.Errorf("poison task: %+v", st)
	}
	for _, id := range []string{"0000", "0002"} {
		if st := sts[id]; st == nil || st.Status != staging.StatusOK {
			t.Errorf("task %s: %+v", id, st)
		}
	}
}

// Invariant: whatever the schedule of pauses, kills and store errors,
// every task has exactly one commit, and status, results.jsonl and
// outputs/ agree. The schedule is drawn from a seed that the test prints;
// BURST_TEST_SEED replays it.
func TestRandomFaults(t *testing.T) {
	t.Parallel()
	seed := rand.Uint64()
	if s := os.Getenv("BURST_TEST_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (replay with BURST_TEST_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	store, env := onFS(t)
	script := `
import os, pickle, sys, time, random
p = pickle.load(sys.stdin.buffer)
time.sleep(random.uniform(0.05, 0.5))
pickle.dump({"i": p["i"], "task": os.environ["BURST_TASK_ID"]}, sys.stdout.buffer)
`
	ttl := 1500 * time.Millisecond
	f := stageFault(t, store, env, script, 100, staging.Manifest{Slots: 6, LeaseTTL: staging.Duration(ttl)})
	type proc struct {
		cmd    *exec.Cmd
		paused bool
		done   chan error
	}
	var procs []*proc
	start := func() {
		cmd := f.start(t, 2, "BURST_TEST_FAULT_RATE=0.03", fmt.Sprintf("BURST_TEST_FAULT_SEED=%d", rng.Uint64()))
		p := &proc{cmd: cmd, done: make(chan error, 1)}
		go func() { p.done <- cmd.Wait() }()
		procs = append(procs, p)
	}
	for range 3 {
		start()
	}
	finished := func() bool {
		run, _ := staging.OpenRun(f.store, f.run.ID)
		p, err := run.ReadProgress(context.Background(), f.man)
		return err == nil && p.Done() == p.Total
	}
	var schedule []string
	deadline := time.Now().Add(3 * time.Minute)
	for events := 0; !finished(); events++ {
		if time.Now().After(deadline) {
			t.Fatalf("the run did not finish within 3 minutes; schedule: %v", schedule)
		}
		time.Sleep(time.Duration(200+rng.IntN(600)) * time.Millisecond)
		if events >= 15 {
			continue // enough: let the run end
		}
		p := procs[rng.IntN(len(procs))]
		if len(p.done) > 0 { // exited (cmd.ProcessState is Wait's to write)
			continue
		}
		switch r := rng.IntN(10); {
		case r < 4 && !p.paused: // a pause, often past the lease
			d := time.Duration(200+rng.IntN(3500)) * time.Millisecond
			schedule = append(schedule, fmt.Sprintf("pause %d for %s", p.cmd.Process.Pid, d))
			p.cmd.Process.Signal(syscall.SIGSTOP)
			p.paused = true
			time.AfterFunc(d, func() { p.cmd.Process.Signal(syscall.SIGCONT) })
		case r < 6: // a death, and a new worker in its place
			schedule = append(schedule, fmt.Sprintf("kill %d", p.cmd.Process.Pid))
			p.cmd.Process.Kill()
			<-p.done
			p.done <- errors.New("killed")
			start()
		}
	}
	t.Logf("schedule: %v", schedule)
	for _, p := range procs {
		p.cmd.Process.Signal(syscall.SIGCONT)
		select {
		case err := <-p.done:
			if err != nil && err.Error() != "killed" {
				t.Errorf("worker %d: %v", p.cmd.Process.Pid, err)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("worker %d still running after the run finished", p.cmd.Process.Pid)
		}
	}
	for id, st := range checkRun(t, f) {
		if st.Status != staging.StatusOK && !strings.Contains(st.Error, "worker was lost") {
			t.Errorf("task %s: %s (%s)", id, st.Status, st.Error)
		}
	}
}

// s3Outage is how long TestS3LongOutage keeps the S3 server down: longer
// than the store retries one request (S3Store.RetryFor, 2 minutes).
const s3Outage = 3 * time.Minute

// Invariant: an S3 outage longer than the store's retries of one request
// stalls the workers but ends none of them; the run completes with every
// task committed once, and status, results.jsonl and outputs/ agree.
func TestS3LongOutage(t *testing.T) {
	t.Parallel()
	srv := testminio.Start(t)
	store, env := onS3(t, srv)
	script := `
import pickle, sys, time
p = pickle.load(sys.stdin.buffer)
time.sleep(0.2)
pickle.dump({"i": p["i"]}, sys.stdout.buffer)
`
	f := stageFault(t, store, env, script, 40, staging.Manifest{Slots: 2, LeaseTTL: staging.Duration(10 * time.Second)})
	var finished atomic.Int64
	restarted := make(chan time.Duration, 1)
	sum, err := executor.Run(context.Background(), executor.Config{
		Run: f.run, Slots: 2, Python: f.python, WorkDir: t.TempDir(), Heartbeat: time.Second,
		OnEvent: func(e executor.Event) {
			if e.Kind == executor.TaskFinished && finished.Add(1) == 10 {
				go func() {
					srv.Stop()
					start := time.Now()
					time.Sleep(s3Outage)
					srv.Restart(t)
					restarted <- time.Since(start)
				}()
			}
		},
	})
	if err != nil {
		t.Fatalf("Run across a %s outage: %v", s3Outage, err)
	}
	select {
	case down := <-restarted:
		t.Logf("the server was down for %s; %d ok, %d failed, %d duplicates", down.Round(time.Second), sum.OK, sum.Failed, sum.Duplicates)
	default:
		t.Fatal("the server was never restarted")
	}
	for id, st := range checkRun(t, f) {
		if st.Status != staging.StatusOK {
			t.Errorf("task %s: %s (%s)", id, st.Status, st.Error)
		}
	}
}

// Invariant: a lease whose renewals hang is lost when its time runs out:
// its holder starts none of its tasks after that, and another worker takes
// the chunk over; no other chunk is lost.
func TestStalledRenewal(t *testing.T) {
	t.Parallel()
	store, env := onFS(t)
	script := `
import os, pickle, sys, time
p = pickle.load(sys.stdin.buffer)
with open(os.path.join(os.environ["BURST_TEST_DIR"], "starts.log"), "a") as f:
    f.write("%s %s\n" % (os.environ["BURST_TASK_ID"], os.environ["BURST_TEST_WORKER_PID"]))
time.sleep(1.2)
pickle.dump({"i": p["i"]}, sys.stdout.buffer)
`
	ttl := 2 * time.Second
	// Three chunks of three tasks.
	f := stageFaultChunks(t, store, env, script, 9, staging.Manifest{Slots: 100, LeaseTTL: staging.Duration(ttl)}, 3)
	if len(f.man.Chunks) != 3 {
		t.Fatalf("chunks %v, want 3 of 3 tasks", f.man.Chunks)
	}
	// The first chunk stalled holds every renewal of its lease.
	stalled := f.start(t, 1, "BURST_TEST_FAULT=replace|/leases/|\"worker\"|before|stall")
	other := f.start(t, 1)
	waitExit(t, other, 90*time.Second)
	stalled.Process.Kill()
	stalled.Wait()
	checkRun(t, f)
	var x = -1
	for i := range f.man.Chunks {
		l, err := f.run.ReadLease(context.Background(), i)
		if err != nil || !l.Done {
			t.Fatalf("chunk %d: %+v, %v", i, l, err)
		}
		if l.Takeovers > 0 {
			if x >= 0 {
				t.Errorf("chunks %d and %d both taken over: one stalled lease cost another", x, i)
			}
			x = i
		}
	}
	if x < 0 {
		t.Fatal("no chunk was taken over: the stalled lease was never lost")
	}
	starts := map[string][]string{}
	data, _ := os.ReadFile(filepath.Join(f.dir, "starts.log"))
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		task, pid, _ := strings.Cut(line, " ")
		starts[task] = append(starts[task], pid)
	}
	t.Logf("chunk %d taken over; task starts by worker pid: %v (the stalled worker is %d)", x, starts, stalled.Process.Pid)
	last := f.man.Tasks[f.man.Chunks[x].End-1]
	for _, pid := range starts[last] {
		if pid == strconv.Itoa(stalled.Process.Pid) {
			t.Errorf("task %s started at %s on the worker whose lease had run out", last, pid)
		}
	}
}
