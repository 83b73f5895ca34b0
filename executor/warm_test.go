package executor_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/internal/testpy"
	"github.com/slicerburst/burst/staging"
	"github.com/slicerburst/burst/staging/pickle"
	"github.com/slicerburst/burst/staging/sweep"
)

// runMode stages script with n tasks, warm or cold, and runs it to the end
// on slots slots.
func runMode(t *testing.T, script string, n int, m staging.Manifest, warm bool, slots int, tune ...func(*executor.Config)) *fixture {
	t.Helper()
	m.Warm = warm
	f := stage(t, script, n, m)
	cfg := f.config(t, slots)
	for _, fn := range tune {
		fn(&cfg)
	}
	if _, err := executor.Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	return f
}

func modeName(warm bool) string {
	if warm {
		return "warm"
	}
	return "cold"
}

var scriptPath = regexp.MustCompile(`[^"\s]*/job\.py`)

// normStderr hides where the script was (each worker has its own
// directory).
func normStderr(s string) string { return scriptPath.ReplaceAllString(s, "job.py") }

const semanticsScript = `
import atexit, os, pickle, sys, threading, time
p = pickle.load(sys.stdin.buffer)
i = p["i"]
def out(**kw):
    pickle.dump(dict(i=i, **kw), sys.stdout.buffer)
def inner():
    raise ValueError("radius must be positive")
if i == 0:
    print("leaving with 3", file=sys.stderr)
    sys.exit(3)
if i == 1:
    sys.exit("goodbye: a message")
if i == 2:
    inner()
if i == 3:
    out()
    sys.stdout.flush()
    os._exit(4)
if i == 4:
    import ctypes
    ctypes.string_at(0)
if i == 5:
    raise KeyboardInterrupt
if i == 6:
    def late():
        time.sleep(0.2)
        out(late=True)
    threading.Thread(target=late).start()
if i == 7:
    atexit.register(lambda: print("atexit ran", file=sys.stderr))
    out()
if i == 8:
    f = open(os.path.join(os.environ["BURST_TEST_DIR"], "unclosed"), "w")
    f.write("flushed at exit")
    out()
if i == 9:
    sys.exit(0)
if i == 10:
    out()
    sys.exit(None)
if i == 11:
    sys.exit(300)
if i == 12:
    print("warning: a", file=sys.stderr)
    out()
`

// TestWarmSemanticsMatchFreshProcess: every way a script can end (exit
// codes, sys.exit, exceptions, os._exit, a segfault, KeyboardInterrupt,
// threads, atexit, unflushed files) gives the same status and stderr warm
// as in a fresh process.
func TestWarmSemanticsMatchFreshProcess(t *testing.T) {
	want := map[string]string{ // task: error ("" for ok)
		"0000": "exit code 3: leaving with 3",
		"0001": "exit code 1: goodbye: a message",
		"0002": "exit code 1: ValueError: radius must be positive",
		"0003": "exit code 4",
		"0004": "killed by signal SIGSEGV",
		"0005": "killed by signal SIGINT: KeyboardInterrupt",
		"0006": "",
		"0007": "",
		"0008": "",
		"0009": "stdout is empty: the script must write a pickled dict to sys.stdout.buffer",
		"0010": "",
		"0011": "exit code 44",
		"0012": "",
	}
	runs := map[bool]*fixture{}
	for _, warm := range []bool{false, true} {
		f := runMode(t, semanticsScript, len(want), staging.Manifest{}, warm, 2)
		runs[warm] = f
		for id, e := range want {
			st := f.status(t, id)
			if st.Error != e {
				t.Errorf("%s: task %s error %q, want %q", modeName(warm), id, st.Error, e)
			}
		}
		if v, _ := f.output(t, "0006").Get("late"); v != true {
			t.Errorf("%s: the thread's late output is missing", modeName(warm))
		}
		if !strings.Contains(f.status(t, "0007").StderrTail, "atexit ran") {
			t.Errorf("%s: atexit handler did not run", modeName(warm))
		}
		if b, _ := os.ReadFile(filepath.Join(f.dir, "unclosed")); string(b) != "flushed at exit" {
			t.Errorf("%s: unclosed file holds %q", modeName(warm), b)
		}
		tb := f.status(t, "0002").StderrTail
		if !strings.Contains(tb, "Traceback (most recent call last):") || !strings.Contains(tb, "in inner") || strings.Contains(tb, "taskserver") {
			t.Errorf("%s: traceback %q", modeName(warm), tb)
		}
	}
	for id := range want {
		c, w := runs[false].status(t, id), runs[true].status(t, id)
		if normStderr(c.StderrTail) != normStderr(w.StderrTail) {
			t.Errorf("task %s stderr differs:\ncold: %q\nwarm: %q", id, c.StderrTail, w.StderrTail)
		}
		if (c.ExitCode == nil) != (w.ExitCode == nil) || (c.ExitCode != nil && *c.ExitCode != *w.ExitCode) {
			t.Errorf("task %s exit code cold %v, warm %v", id, c.ExitCode, w.ExitCode)
		}
	}
}

const isolationScript = `
import os, pickle, random, sys
import numpy as np
import numpy.random  # imported by the server: its global generator too
import burst_helper

def main():
    p = pickle.load(sys.stdin.buffer)
    burst_helper.COUNT[0] += 1
    os.environ["LEAKED_" + os.environ["BURST_TASK_ID"]] = "1"
    with open(os.path.join(os.environ["BURST_TEST_DIR"], "server.pid"), "a") as f:
        f.write("%d\n" % os.getppid())
    pickle.dump({
        "count": burst_helper.COUNT[0],
        "preloaded": burst_helper.IMPORTED_BY != os.getpid(),
        "leaked": sorted(k for k in os.environ if k.startswith("LEAKED_")),
        "task": os.environ["BURST_TASK_ID"], "attempt": os.environ["BURST_ATTEMPT"],
        "cwd": os.getcwd(), "own_group": os.getpgid(0) == os.getpid(),
        "argv0": sys.argv[0], "file": __file__, "path0": sys.path[0],
        "spec": __spec__ is None, "main_module": sys.modules["__main__"].__dict__ is globals(),
        "random": random.random(), "np_random": float(np.random.rand()),
        "ppid": os.getppid(),
    }, sys.stdout.buffer)

if __name__ == "__main__":
    main()
`

// TestWarmTaskIsIsolated: a warm task runs on a server that imported its
// modules, yet sees module state, environment, directory, random state and
// process group of its own, as a fresh process does; the server is gone
// when the worker returns.
func TestWarmTaskIsIsolated(t *testing.T) {
	lib := t.TempDir()
	if err := os.WriteFile(filepath.Join(lib, "burst_helper.py"), []byte("import os\nCOUNT = [0]\nIMPORTED_BY = os.getpid()\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PYTHONPATH", lib)
	for _, warm := range []bool{false, true} {
		const n = 6
		f := runMode(t, isolationScript, n, staging.Manifest{}, warm, 1)
		randoms, npRandoms, servers := map[any]bool{}, map[any]bool{}, map[any]bool{}
		for _, id := range f.man.Tasks {
			out := f.output(t, id)
			get := func(k string) any { v, _ := out.Get(k); return v }
			if get("count") != int64(1) || get("task") != id || get("attempt") != "1" || get("own_group") != true || get("spec") != true || get("main_module") != true {
				t.Errorf("%s: task %s: %v", modeName(warm), id, out)
			}
			if l, ok := get("leaked").([]any); !ok || len(l) != 1 {
				t.Errorf("%s: task %s saw the environment of other tasks: %v", modeName(warm), id, get("leaked"))
			}
			if cwd, _ := get("cwd").(string); !strings.HasSuffix(cwd, filepath.Join("tmp", id)) {
				t.Errorf("%s: task %s ran in %s", modeName(warm), id, cwd)
			}
			script, _ := get("argv0").(string)
			if filepath.Base(script) != "job.py" || get("file") != script || get("path0") != filepath.Dir(script) {
				t.Errorf("%s: task %s: argv0 %v, __file__ %v, sys.path[0] %v", modeName(warm), id, script, get("file"), get("path0"))
			}
			if get("preloaded") != warm {
				t.Errorf("%s: task %s: helper imported before the task: %v", modeName(warm), id, get("preloaded"))
			}
			randoms[get("random")], npRandoms[get("np_random")], servers[get("ppid")] = true, true, true
		}
		if len(randoms) != n || len(npRandoms) != n {
			t.Errorf("%s: %d distinct random.random() and %d distinct np.random.rand() over %d tasks", modeName(warm), len(randoms), len(npRandoms), n)
		}
		if warm {
			if len(servers) != 1 {
				t.Errorf("warm: %d parents over %d tasks on one slot, want one server", len(servers), n)
			}
			for p := range servers {
				if pid, _ := p.(int64); alive(int(pid)) {
					t.Errorf("task server %d still alive after the worker returned", pid)
				}
			}
		}
	}
}

const hangScript = `
import os, pickle, subprocess, sys, time
p = pickle.load(sys.stdin.buffer)
d = os.environ["BURST_TEST_DIR"]
if p["i"] == 0:
    child = subprocess.Popen(["sleep", "300"])
    with open(os.path.join(d, "child.pid"), "w") as f:
        f.write(str(child.pid))
    time.sleep(300)
pickle.dump({"ppid": os.getppid()}, sys.stdout.buffer)
`

// TestWarmTimeoutKillsTheTaskNotTheServer: a warm task that outlives its
// timeout is killed with its whole process group; the server lives on and
// runs the next task.
func TestWarmTimeoutKillsTheTaskNotTheServer(t *testing.T) {
	f := runMode(t, hangScript, 3, staging.Manifest{Timeout: staging.Duration(2 * time.Second)}, true, 1)
	if st := f.status(t, "0000"); st.Error != "timed out after 2s" || st.Attempts != 1 {
		t.Errorf("hung task: error %q, attempts %d", st.Error, st.Attempts)
	}
	data, err := os.ReadFile(filepath.Join(f.dir, "child.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if pid, _ := strconv.Atoi(string(data)); alive(pid) {
		t.Errorf("the timed-out task's child %d is alive", pid)
	}
	a, _ := f.output(t, "0001").Get("ppid")
	b, _ := f.output(t, "0002").Get("ppid")
	if a != b {
		t.Errorf("tasks after the timeout ran on servers %v and %v, want the same one", a, b)
	}
}

// TestWarmCancelKillsTasksAndServers: cancelling a warm run kills its
// running tasks and leaves no server behind.
func TestWarmCancelKillsTasksAndServers(t *testing.T) {
	f := stage(t, hangScript, 1, staging.Manifest{Warm: true})
	done := make(chan error, 1)
	go func() {
		_, err := executor.Run(context.Background(), f.config(t, 2))
		done <- err
	}()
	waitFile(t, filepath.Join(f.dir, "child.pid"))
	data, _ := os.ReadFile(filepath.Join(f.dir, "child.pid"))
	child, _ := strconv.Atoi(string(data))
	server := os.Getppid() // replaced below
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child)); err == nil {
		// The task is the child's parent; the server is the task's.
		task := statPPID(string(b))
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", task)); err == nil {
			server = statPPID(string(b))
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
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop within 30s of the cancel")
	}
	if alive(child) {
		t.Errorf("the cancelled task's child %d is alive", child)
	}
	if server == os.Getppid() || alive(server) {
		t.Errorf("task server %d: alive after the worker returned (or not found)", server)
	}
}

// statPPID reads the parent pid from a /proc/PID/stat line.
func statPPID(stat string) int {
	rest := stat[strings.LastIndexByte(stat, ')')+1:]
	f := strings.Fields(rest)
	if len(f) < 2 {
		return 0
	}
	pid, _ := strconv.Atoi(f[1])
	return pid
}

// TestWarmScriptErrorsMatchFreshProcess: a script that does not compile,
// or imports a module that is not there, fails its tasks warm with the
// same error and stderr as in a fresh process.
func TestWarmScriptErrorsMatchFreshProcess(t *testing.T) {
	scripts := map[string]string{
		"syntax": "import pickle, sys\ndef main(:\n    pass\n",
		"import": "import pickle, sys\nimport numpy\nimport no_such_module_here\npickle.dump({}, sys.stdout.buffer)\n",
		"warns":  "import pickle, sys\nx = 1\nif x is 1:\n    pass\npickle.dump({}, sys.stdout.buffer)\n",
	}
	wantErr := map[string]string{
		"syntax": "exit code 1: SyntaxError: invalid syntax",
		"import": "exit code 1: ModuleNotFoundError: No module named 'no_such_module_here'",
		"warns":  "",
	}
	for name, script := range scripts {
		var tails []string
		for _, warm := range []bool{false, true} {
			f := runMode(t, script, 2, staging.Manifest{}, warm, 1)
			for _, id := range f.man.Tasks {
				st := f.status(t, id)
				if st.Error != wantErr[name] {
					t.Errorf("%s script, %s: task %s error %q, want %q", name, modeName(warm), id, st.Error, wantErr[name])
				}
			}
			tails = append(tails, normStderr(f.status(t, "0001").StderrTail))
		}
		if tails[0] != tails[1] {
			t.Errorf("%s script: stderr differs:\ncold: %q\nwarm: %q", name, tails[0], tails[1])
		}
		if name == "warns" && !strings.Contains(tails[1], "SyntaxWarning") {
			t.Errorf("warns script: the task's stderr lacks the compiler's warning: %q", tails[1])
		}
	}
}

// TestWarmPeakMemoryIsTheTasks: a warm task's max_rss_kb shows what the
// task itself held at its peak: neither an earlier task's peak nor the
// server's transient peak while it imported.
func TestWarmPeakMemoryIsTheTasks(t *testing.T) {
	lib := t.TempDir()
	// Importing it briefly takes 300 MiB, then gives it back.
	spike := "_x = b'x' * (300 << 20)\ndel _x\n"
	if err := os.WriteFile(filepath.Join(lib, "burst_spike.py"), []byte(spike), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PYTHONPATH", lib)
	script := `
import pickle, sys
import burst_spike
p = pickle.load(sys.stdin.buffer)
if p["i"] == 0:
    ballast = b"x" * (200 << 20)
pickle.dump({}, sys.stdout.buffer)
`
	f := runMode(t, script, 2, staging.Manifest{}, true, 1)
	big, small := f.status(t, "0000").MaxRSSKB, f.status(t, "0001").MaxRSSKB
	if big < 200<<10 {
		t.Errorf("task holding 200 MiB reports max_rss_kb %d", big)
	}
	if small <= 0 || small > 150<<10 {
		t.Errorf("small task after a large one, on a server whose import peaked at 300 MiB, reports max_rss_kb %d", small)
	}
}

const lossScript = `
import os, pickle, sys, time
p = pickle.load(sys.stdin.buffer)
d = os.environ["BURST_TEST_DIR"]
marker = os.path.join(d, "server.pid")
if not os.path.exists(marker):
    with open(marker + ".tmp", "w") as f:
        f.write(str(os.getppid()))
    os.rename(marker + ".tmp", marker)
    time.sleep(300)
pickle.dump({"ppid": os.getppid()}, sys.stdout.buffer)
`

// TestWarmLostServerIsReplaced: a server killed, or stopped, while its
// task runs is replaced, and the task runs again on the new one without
// counting an attempt.
func TestWarmLostServerIsReplaced(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGSTOP} {
		t.Run(sig.String(), func(t *testing.T) {
			f := stage(t, lossScript, 1, staging.Manifest{Warm: true, LeaseTTL: staging.Duration(time.Minute)})
			cfg := f.config(t, 1)
			cfg.Warm.Answer = 3 * time.Second
			done := make(chan error, 1)
			go func() {
				_, err := executor.Run(context.Background(), cfg)
				done <- err
			}()
			marker := filepath.Join(f.dir, "server.pid")
			waitFile(t, marker)
			data, _ := os.ReadFile(marker)
			server, _ := strconv.Atoi(string(data))
			if err := syscall.Kill(server, sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(60 * time.Second):
				t.Fatal("worker did not finish within 60s")
			}
			st := f.status(t, "0000")
			if st.Status != staging.StatusOK || st.Attempts != 1 {
				t.Errorf("task on a lost server: status %s, attempts %d, error %q; want ok in 1 attempt", st.Status, st.Attempts, st.Error)
			}
			if p, _ := f.output(t, "0000").Get("ppid"); p == int64(server) {
				t.Errorf("task ran again on the lost server %d", server)
			}
			if alive(server) {
				t.Errorf("lost server %d is still alive", server)
			}
		})
	}
}

// TestWarmServerReplacedWhenWorn: a server is replaced after MaxTasks
// tasks, and when its own memory grows past MaxGrowthKB (here a module
// that leaks in the server at every fork).
func TestWarmServerReplacedWhenWorn(t *testing.T) {
	lib := t.TempDir()
	leak := "import os\n_kept = []\nos.register_at_fork(after_in_parent=lambda: _kept.append(b'x' * (40 << 20)))\n"
	if err := os.WriteFile(filepath.Join(lib, "burst_leak.py"), []byte(leak), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PYTHONPATH", lib)
	script := "import os, pickle, sys\nimport burst_leak\npickle.load(sys.stdin.buffer)\npickle.dump({'ppid': os.getppid()}, sys.stdout.buffer)\n"
	cases := []struct {
		name    string
		limits  executor.WarmLimits
		perSrv  int
		preload string
	}{
		{"tasks", executor.WarmLimits{MaxTasks: 2}, 2, "none"},
		{"memory", executor.WarmLimits{MaxGrowthKB: 100 << 10}, 3, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := runMode(t, script, 6, staging.Manifest{Preload: c.preload}, true, 1, func(cfg *executor.Config) { cfg.Warm = c.limits })
			count := map[any]int{}
			for _, id := range f.man.Tasks {
				if st := f.status(t, id); st.Status != staging.StatusOK {
					t.Fatalf("task %s: %s", id, st.Error)
				}
				p, _ := f.output(t, id).Get("ppid")
				count[p]++
			}
			if len(count) != 6/c.perSrv {
				t.Errorf("6 tasks ran on %d servers (%v), want %d with %d tasks each", len(count), count, 6/c.perSrv, c.perSrv)
			}
		})
	}
}

const blasScript = `
import hashlib, pickle, sys
import numpy as np
p = pickle.load(sys.stdin.buffer)
rng = np.random.default_rng(p["seed"])
a = rng.normal(size=(600, 600))
b = a @ a.T @ a  # BLAS, on its threads
inv = np.linalg.inv(b + 600 * np.eye(600))
# Digests of the exact bytes: the worker need not hold megabytes per task.
pickle.dump({"b": hashlib.sha256(b.tobytes()).hexdigest(), "inv": hashlib.sha256(inv.tobytes()).hexdigest(),
             "corner": b[:4, :4]}, sys.stdout.buffer)
`

// poolsModule starts SimpleITK's and BLAS's threads as it is imported, so
// that a warm server has them running before it forks.
const poolsModule = `
import numpy as np
import SimpleITK as sitk
_img = sitk.GetImageFromArray(np.ones((24, 24, 24), np.float32))
sitk.Median(sitk.SmoothingRecursiveGaussian(_img, 1.0), [1, 1, 1])
_x = np.ones((300, 300)) @ np.ones((300, 300))
`

const poolsScript = `
import pickle, sys
import numpy as np
import SimpleITK as sitk
import burst_pools
p = pickle.load(sys.stdin.buffer)
a = np.random.default_rng(p["seed"]).normal(size=(40, 40, 40)).astype(np.float32)
img = sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(a), 2.0)
m = sitk.GetArrayFromImage(sitk.Median(img, [2, 2, 2]))
pickle.dump({"median": m, "blas": m.reshape(40, -1) @ m.reshape(40, -1).T}, sys.stdout.buffer)
`

// TestExamplesWarmEqualCold: both examples (vtk with numpy; SimpleITK
// filtering with its thread pool), a numpy BLAS job, and SimpleITK and
// BLAS work in a server whose thread pools were started before it forked,
// give bit-identical outputs warm and cold.
func TestExamplesWarmEqualCold(t *testing.T) {
	root, python := testpy.ModuleRoot(t), testpy.Python(t)
	lib := t.TempDir()
	if err := os.WriteFile(filepath.Join(lib, "burst_pools.py"), []byte(poolsModule), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PYTHONPATH", lib)
	pools := filepath.Join(t.TempDir(), "pools.py")
	if err := os.WriteFile(pools, []byte(poolsScript), 0o644); err != nil {
		t.Fatal(err)
	}
	vol := filepath.Join(t.TempDir(), "volume.nrrd")
	if out, err := exec.Command(python, filepath.Join(root, "examples/volume-filter/make-volume.py"), vol).CombinedOutput(); err != nil {
		t.Fatalf("make-volume: %v\n%s", err, out)
	}
	blas := filepath.Join(t.TempDir(), "blas.py")
	if err := os.WriteFile(blas, []byte(blasScript), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, script, sweep string
		tasks               int
		shared              []string
	}{
		{"mesh-offsets", "examples/mesh-offsets/offset.py", "repeat: 6\nconstants: {radius: 10.0, resolution: 24, scale: 0.5}\n", 6, nil},
		{"volume-filter", "examples/volume-filter/filter.py", "", 10, []string{vol}},
		{"blas", blas, "repeat: 4\n", 4, nil},
		{"pools-before-fork", pools, "repeat: 4\n", 4, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := []byte(c.sweep)
			if c.sweep == "" {
				var err error
				if spec, err = os.ReadFile(filepath.Join(root, filepath.Dir(c.script), "sweep.yaml")); err != nil {
					t.Fatal(err)
				}
			}
			tasks, err := sweep.Expand(spec)
			if err != nil {
				t.Fatal(err)
			}
			inputs := make([]staging.Input, len(tasks))
			for i, task := range tasks {
				p, err := pickle.Marshal(task.Params)
				if err != nil {
					t.Fatal(err)
				}
				inputs[i] = staging.Input{ID: task.ID, Pickle: p}
			}
			if len(inputs) != c.tasks {
				t.Fatalf("%d tasks, want %d", len(inputs), c.tasks)
			}
			script := c.script
			if !filepath.IsAbs(script) {
				script = filepath.Join(root, script)
			}
			outputs := map[bool]map[string][32]byte{}
			for _, warm := range []bool{false, true} {
				store, err := staging.OpenFS(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				run, err := staging.Stage(context.Background(), store, staging.StageRequest{
					ScriptPath: script, Inputs: inputs, SharedPaths: c.shared,
					// A deadlock after fork shows as a timeout, not a hung test.
					Manifest: staging.Manifest{Warm: warm, LeaseTTL: staging.Duration(time.Minute), Slots: 2, Timeout: staging.Duration(2 * time.Minute)},
				})
				if err != nil {
					t.Fatal(err)
				}
				sum, err := executor.Run(context.Background(), executor.Config{Run: run, Slots: 2, Python: python, WorkDir: t.TempDir()})
				if err != nil || sum.OK != c.tasks {
					t.Fatalf("%s: %+v, %v", modeName(warm), sum, err)
				}
				outputs[warm] = map[string][32]byte{}
				for _, in := range inputs {
					data, err := run.Output(context.Background(), in.ID)
					if err != nil {
						t.Fatal(err)
					}
					outputs[warm][in.ID] = sha256.Sum256(data)
				}
				store.Close()
			}
			for _, in := range inputs {
				if outputs[false][in.ID] != outputs[true][in.ID] {
					t.Errorf("task %s: warm output differs from cold", in.ID)
				}
			}
		})
	}
}

// TestWarmUnderLauncher: under a PythonSlicer launcher, which sets up an
// environment and execs Python, the server runs under the launcher as a
// task would, and its tasks see the launcher's environment.
func TestWarmUnderLauncher(t *testing.T) {
	bin := t.TempDir()
	launcher := filepath.Join(bin, "PythonSlicer")
	sh := "#!/bin/sh\nexport SLICER_STANDIN_HOME=/opt/slicer\nexec " + testpy.Python(t) + " \"$@\"\n"
	if err := os.WriteFile(launcher, []byte(sh), 0o755); err != nil {
		t.Fatal(err)
	}
	script := `
import os, pickle, sys
import numpy
pickle.load(sys.stdin.buffer)
with open("/proc/%d/cmdline" % os.getppid(), "rb") as f:
    parent = f.read().decode().split("\0")
pickle.dump({"home": os.environ.get("SLICER_STANDIN_HOME"), "parent": parent[1] if len(parent) > 1 else ""}, sys.stdout.buffer)
`
	f := stage(t, script, 3, staging.Manifest{Warm: true})
	cfg := f.config(t, 1)
	cfg.Python = launcher
	if _, err := executor.Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	for _, id := range f.man.Tasks {
		out := f.output(t, id)
		home, _ := out.Get("home")
		parent, _ := out.Get("parent")
		if home != "/opt/slicer" || !strings.Contains(fmt.Sprint(parent), "taskserver") {
			t.Errorf("task %s: launcher environment %v, parent %v; want /opt/slicer and the task server", id, home, parent)
		}
	}
}

// TestWarmServerThatCannotStart: a server that dies while importing (here
// a module that exits when imported outside a task) leaves its slot
// running tasks in fresh processes, and they succeed; a missing
// interpreter stops a warm worker as it stops a cold one, recording
// nothing.
func TestWarmServerThatCannotStart(t *testing.T) {
	lib := t.TempDir()
	crash := "import os\nif 'BURST_TASK_ID' not in os.environ:\n    os._exit(3)\n"
	if err := os.WriteFile(filepath.Join(lib, "burst_crash.py"), []byte(crash), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PYTHONPATH", lib)
	script := "import os, pickle, sys\nimport burst_crash\npickle.load(sys.stdin.buffer)\npickle.dump({'ppid': os.getppid()}, sys.stdout.buffer)\n"
	f := runMode(t, script, 3, staging.Manifest{}, true, 1)
	for _, id := range f.man.Tasks {
		if st := f.status(t, id); st.Status != staging.StatusOK {
			t.Errorf("task %s: %s", id, st.Error)
		}
		if p, _ := f.output(t, id).Get("ppid"); p != int64(os.Getpid()) {
			t.Errorf("task %s ran under %v, want a fresh process of the worker %d", id, p, os.Getpid())
		}
	}

	g := stage(t, script, 2, staging.Manifest{Warm: true})
	cfg := g.config(t, 1)
	cfg.Python = filepath.Join(g.dir, "no-such-python")
	if _, err := executor.Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "starting the interpreter") {
		t.Fatalf("warm Run with a missing interpreter: %v", err)
	}
	if p, err := g.run.ReadProgress(context.Background(), g.man); err != nil || p.Done() != 0 {
		t.Errorf("after a missing interpreter: %+v, %v; want nothing recorded", p, err)
	}
}

// TestWarmKilledWorkerTakesItsServerAndTask: a warm worker killed with
// SIGKILL leaves neither its task server nor the server's running task
// behind.
func TestWarmKilledWorkerTakesItsServerAndTask(t *testing.T) {
	script := `
import os, pickle, sys, time
pickle.load(sys.stdin.buffer)
with open(os.path.join(os.environ["BURST_TEST_DIR"], "pids.tmp"), "w") as f:
    f.write("%d %d" % (os.getpid(), os.getppid()))
os.rename(os.path.join(os.environ["BURST_TEST_DIR"], "pids.tmp"), os.path.join(os.environ["BURST_TEST_DIR"], "pids"))
time.sleep(300)
`
	f := stage(t, script, 1, staging.Manifest{Warm: true})
	w := startWorker(t, f.store, f.run, f.python, 1)
	waitFile(t, filepath.Join(f.dir, "pids"))
	data, _ := os.ReadFile(filepath.Join(f.dir, "pids"))
	var task, server int
	if _, err := fmt.Sscan(string(data), &task, &server); err != nil {
		t.Fatal(err)
	}
	if err := w.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	w.Wait()
	for deadline := time.Now().Add(20 * time.Second); alive(task) || alive(server); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("20s after the worker was killed: task %d alive %v, server %d alive %v", task, alive(task), server, alive(server))
		}
	}
}
