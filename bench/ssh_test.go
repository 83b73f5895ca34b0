package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slicerburst/burst/internal/testpy"
	"github.com/slicerburst/burst/internal/testsshd"
)

// sshJob is the job of bench/local.sh: ~50 ms of CPU per task.
const sshJob = `import pickle, sys, time
p = pickle.load(sys.stdin.buffer)
t = time.perf_counter()
x = 0
while time.perf_counter() - t < 0.05:  # ~50 ms of CPU
    x += 1
pickle.dump({"i": p["i"], "spins": x}, sys.stdout.buffer)
`

// BenchmarkSSHAgainstLocal runs the 200-task, 2-slot run of bench/local.sh
// with two workers here and with two workers on an ssh host (this machine,
// through a real sshd on 127.0.0.1, the store served over the session),
// alternating over BENCH_ROUNDS rounds (default 5), and reports the median
// wall-clock times and the ratio ssh/local. Run with make bench-ssh, or
//
//	go test ./bench -run '^$' -bench SSH -benchtime 1x
func BenchmarkSSHAgainstLocal(b *testing.B) {
	python := testpy.Python(b)
	root := testpy.ModuleRoot(b)
	srv := testsshd.Start(b)
	work := b.TempDir()
	burst := filepath.Join(work, "burst")
	if out, err := exec.Command("go", "build", "-o", burst, filepath.Join(root, "cmd", "burst")).CombinedOutput(); err != nil {
		b.Fatalf("building burst: %v\n%s", err, out)
	}
	rounds := 5
	if s := os.Getenv("BENCH_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	const tasks = 200
	job := filepath.Join(work, "job.py")
	if err := os.WriteFile(job, []byte(sshJob), 0o644); err != nil {
		b.Fatal(err)
	}
	inputs := filepath.Join(work, "inputs")
	mk := exec.Command(python, "-c", `import os, pickle, sys
os.makedirs(sys.argv[1])
for i in range(int(sys.argv[2])):
    with open(os.path.join(sys.argv[1], "%04d.pkl" % i), "wb") as f:
        pickle.dump({"i": i}, f)`, inputs, strconv.Itoa(tasks))
	if out, err := mk.CombinedOutput(); err != nil {
		b.Fatalf("making inputs: %v\n%s", err, out)
	}
	env := append(os.Environ(), "BURST_SSH="+strings.Join(srv.SSH, " "), "XDG_CACHE_HOME="+filepath.Join(work, "cache"))
	run := func(name string, args ...string) time.Duration {
		store, out := filepath.Join(work, "store-"+name), filepath.Join(work, "out-"+name)
		os.RemoveAll(store)
		os.RemoveAll(out)
		cmd := exec.Command(burst, append([]string{"submit", job, "--inputs", inputs, "--python", python, "--store", store, "--out", out}, args...)...)
		cmd.Env = env
		t0 := time.Now()
		if o, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", name, err, o)
		}
		d := time.Since(t0)
		if n, _ := os.ReadDir(filepath.Join(out, "outputs")); len(n) != tasks {
			b.Fatalf("%s: %d outputs, want %d", name, len(n), tasks)
		}
		return d
	}
	// Once before timing: burst is copied to the host, Python's imports
	// are in the page cache.
	run("ssh", "--workers", "0", "--ssh", srv.Host+"/2")
	var local, ssh []time.Duration
	for b.Loop() {
		for range rounds {
			local = append(local, run("local", "--workers", "2"))
			ssh = append(ssh, run("ssh", "--workers", "0", "--ssh", srv.Host+"/2"))
		}
	}
	ml, ms := median(local), median(ssh)
	ratio := ms.Seconds() / ml.Seconds()
	fmt.Printf("%d tasks of ~50 ms, 2 at a time, %d rounds (median wall clock):\n", tasks, len(local))
	fmt.Printf("  burst submit --workers 2                       %6.2f s  (runs: %s)\n", ml.Seconds(), secs(local))
	fmt.Printf("  burst submit --workers 0 --ssh HOST/2 (sshd)   %6.2f s  (runs: %s)\n", ms.Seconds(), secs(ssh))
	fmt.Printf("ratio ssh/local: %.3f\n", ratio)
	b.ReportMetric(ml.Seconds(), "local-s")
	b.ReportMetric(ms.Seconds(), "ssh-s")
	b.ReportMetric(ratio, "ssh/local")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func secs(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%.2f", d.Seconds())
	}
	return strings.Join(parts, " ")
}
