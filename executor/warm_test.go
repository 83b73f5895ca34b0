package executor_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/staging"
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

var scriptPath = regexp.MustCompile(`"[^"]*/job\.py"`)

// normStderr hides where the script was (each worker has its own
// directory).
func normStderr(s string) string { return scriptPath.ReplaceAllString(s, `"job.py"`) }

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
