package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/slicerburst/burst/images"
	"github.com/slicerburst/burst/internal/fleetsim"
	"github.com/slicerburst/burst/internal/testminio"
	"github.com/slicerburst/burst/internal/testmoto"
	"github.com/slicerburst/burst/internal/testpy"
	"github.com/slicerburst/burst/provision"
	"github.com/slicerburst/burst/staging"
)

// cloudEnv is a whole cloud on loopback: moto's server for EC2, MinIO for
// S3, and a harness that boots every instance moto reports by running its
// user data here, with a metadata service that hands out the instance
// profile's credentials (the MinIO keys).
type cloudEnv struct {
	t       *testing.T
	burst   string // the burst binary, as the image has it
	python  string
	dir     string
	moto    *testmoto.Server
	minio   *testminio.Server
	api     *ec2.Client
	harness *fleetsim.Harness
	bucket  string
	config  string // BURST_CONFIG
	ami     string
}

// buildBurst builds the burst binary once for the instances to run.
func buildBurst(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bin", "burst")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building burst: %v\n%s", err, out)
	}
	return bin
}

func newCloudEnv(t *testing.T) *cloudEnv {
	t.Helper()
	c := &cloudEnv{t: t, python: testpy.Python(t), dir: t.TempDir()}
	c.burst = buildBurst(t)
	c.minio = testminio.Start(t)
	c.bucket = c.minio.NewBucket(t)
	c.moto = testmoto.Start(t)
	c.api = c.moto.Client(t)
	ctx := context.Background()

	h, err := fleetsim.Start(ctx, fleetsim.Config{
		EC2: c.api,
		// The instances' per-boot scripts go to a folder of the test's.
		Env:            []string{"AWS_ENDPOINT_URL_S3=" + c.minio.Endpoint, "BURST_PERBOOT_DIR=" + filepath.Join(c.dir, "per-boot")},
		Path:           []string{filepath.Dir(c.burst)},
		Credentials:    aws.Credentials{AccessKeyID: c.minio.AccessKey, SecretAccessKey: c.minio.SecretKey},
		InterruptGrace: 15 * time.Second, // AWS gives two minutes; workers look every 5 s
		Dir:            filepath.Join(c.dir, "instances"),
		Logf:           t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	c.harness = h

	// The account setup that terraform/ would make.
	subnets, err := c.api.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	if err != nil || len(subnets.Subnets) == 0 {
		t.Fatalf("no default subnets in moto: %v", err)
	}
	sg, err := c.api.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName: aws.String("burst-workers"), Description: aws.String("burst workers: no ingress"),
		VpcId: subnets.Subnets[0].VpcId,
	})
	if err != nil {
		t.Fatal(err)
	}
	var subnetIDs []string
	for _, s := range subnets.Subnets[:min(2, len(subnets.Subnets))] {
		subnetIDs = append(subnetIDs, aws.ToString(s.SubnetId))
	}
	c.config = filepath.Join(c.dir, "config.yaml")
	cfg := fmt.Sprintf("region: %s\nstore: s3://%s/fleet\ninstance_profile: burst-worker\nsecurity_groups: [%s]\nsubnets: [%s]\n",
		testmoto.Region, c.bucket, aws.ToString(sg.GroupId), strings.Join(subnetIDs, ", "))
	if err := os.WriteFile(c.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// registerImage registers a burst worker image, as burst image build
// would leave it.
func (c *cloudEnv) registerImage() {
	c.t.Helper()
	ctx := context.Background()
	out, err := c.api.RegisterImage(ctx, &ec2.RegisterImageInput{
		Name: aws.String("burst-worker-test"), RootDeviceName: aws.String("/dev/sda1"),
	})
	if err != nil {
		c.t.Fatal(err)
	}
	c.ami = aws.ToString(out.ImageId)
	_, err = c.api.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{c.ami}, Tags: []types.Tag{
		{Key: aws.String(images.TagImage), Value: aws.String(images.ImageWorker)},
		{Key: aws.String(images.TagProtocol), Value: aws.String(fmt.Sprint(staging.Protocol))},
		{Key: aws.String(images.TagSlicerVersion), Value: aws.String("5.8.1")},
	}})
	if err != nil {
		c.t.Fatal(err)
	}
}

// env is the CLI's environment: EC2 on moto, S3 on MinIO, burst's
// configuration, and a home of its own.
func (c *cloudEnv) env(extra ...string) []string {
	home := filepath.Join(c.dir, "home")
	env := append(os.Environ(), c.moto.Env()...)
	env = append(env, c.minio.Env()...)
	env = append(env, "BURST_CONFIG="+c.config, "HOME="+home,
		"XDG_CACHE_HOME="+filepath.Join(home, ".cache"), "XDG_DATA_HOME="+filepath.Join(home, ".data"))
	return append(env, extra...)
}

// command returns the burst CLI with args, in the test's folder.
func (c *cloudEnv) command(args ...string) *exec.Cmd {
	cmd := exec.Command(c.burst, args...)
	cmd.Dir = c.dir
	cmd.Env = c.env()
	return cmd
}

// burstCmd runs the burst CLI and returns its exit code and output.
func (c *cloudEnv) burstCmd(args ...string) (int, string, string) {
	c.t.Helper()
	cmd := c.command(args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// live returns the ids of the run's instances that are pending or running
// in moto (all runs' when run is empty).
func (c *cloudEnv) live(run string) []string {
	c.t.Helper()
	filters := []types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "shutting-down"}}}
	if run != "" {
		filters = append(filters, types.Filter{Name: aws.String("tag:" + provision.TagRun), Values: []string{run}})
	}
	out, err := c.api.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{Filters: filters})
	if err != nil {
		c.t.Fatal(err)
	}
	var ids []string
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			ids = append(ids, aws.ToString(i.InstanceId))
		}
	}
	return ids
}

// writeSweep writes a script that squares x after sleeping a while, and
// a sweep over n values of x.
func (c *cloudEnv) writeSweep(name string, n int, sleep time.Duration) (script, sweep string) {
	c.t.Helper()
	script = filepath.Join(c.dir, name+".py")
	err := os.WriteFile(script, []byte(fmt.Sprintf(`import pickle, sys, time
p = pickle.load(sys.stdin.buffer)
time.sleep(%g)
pickle.dump({"square": p["x"] * p["x"], "x": p["x"]}, sys.stdout.buffer)
`, sleep.Seconds())), 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	var xs []string
	for i := range n {
		xs = append(xs, fmt.Sprint(i))
	}
	sweep = filepath.Join(c.dir, name+".yaml")
	if err := os.WriteFile(sweep, []byte("grid:\n  x: ["+strings.Join(xs, ", ")+"]\n"), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return script, sweep
}

// checkResults asserts that out holds every task's correct result.
func checkResults(t *testing.T, out string, n int) {
	t.Helper()
	f, err := os.Open(filepath.Join(out, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[float64]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct {
			Task   string             `json:"task"`
			Status string             `json:"status"`
			Params map[string]float64 `json:"params"`
			Output map[string]float64 `json:"output"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("results.jsonl: %v: %s", err, sc.Text())
		}
		x := r.Params["x"]
		if r.Status != "ok" || r.Output["square"] != x*x {
			t.Errorf("task %s: status %s, square %v for x=%v", r.Task, r.Status, r.Output["square"], x)
		}
		if seen[x] {
			t.Errorf("x=%v collected twice", x)
		}
		seen[x] = true
	}
	if len(seen) != n {
		t.Errorf("%d of %d results collected", len(seen), n)
	}
}

// cloudBudget is the budget of every test's cloud run, in dollars.
const cloudBudget = 0.05

// checkSpend asserts the budget on what the harness saw of the run's
// instances: each billed from boot to its end (or now), at least a
// minute, at the on-demand price (spot costs less), within the budget
// plus one billing minute per instance.
func (c *cloudEnv) checkSpend(t *testing.T, id string) {
	t.Helper()
	spent, minutes, n := 0.0, 0.0, 0
	for _, in := range c.harness.Instances() {
		if c.instanceOf(in.ID) != id {
			continue
		}
		price, ok := provision.OnDemandPrice(testmoto.Region, in.Type)
		if !ok {
			t.Fatalf("no price for %s", in.Type)
		}
		end := in.Terminated
		if end.IsZero() {
			end = time.Now()
		}
		spent += price * max(end.Sub(in.Booted), time.Minute).Hours()
		minutes += price / 60
		n++
	}
	if spent > cloudBudget+minutes {
		t.Errorf("run %s: %d instances cost up to $%.4f, over the budget of $%.2f plus a minute each", id, n, spent, cloudBudget)
	}
}

// cloudArgs are the flags of a small, quick cloud run.
func (c *cloudEnv) cloudArgs(script, sweep, out string, more ...string) []string {
	return append([]string{"submit", script, "--sweep", sweep, "--cloud", "aws", "--yes",
		"--python", c.python, "--out", out, "--poll", "300ms",
		"--task-time", "1s", "--boot-time", "5s", "--types", "c6i.large", "--max-instances", "2", "--budget", fmt.Sprint(cloudBudget)}, more...)
}

// runID reads the run id from a CLI's output ("run ID staged in ...").
func runID(t *testing.T, output string) string {
	t.Helper()
	for _, line := range strings.Split(output, "\n") {
		if rest, ok := strings.CutPrefix(line, "run "); ok {
			if id, _, ok := strings.Cut(rest, " staged in "); ok {
				return id
			}
		}
	}
	t.Fatalf("no run id in the output:\n%s", output)
	return ""
}

func TestCloud(t *testing.T) {
	c := newCloudEnv(t)

	// Bad input is refused before anything is launched, with exit 2.
	t.Run("refusals", func(t *testing.T) {
		script, sweep := c.writeSweep("refused", 4, 0)
		out := filepath.Join(c.dir, "refused")
		for _, tc := range []struct {
			name string
			args []string
			env  []string
			want string
		}{
			{"no image", c.cloudArgs(script, sweep, out), nil, "no burst AMI for protocol"},
			{"unknown type", c.cloudArgs(script, sweep, out, "--types", "c5.huge", "--ami", "ami-12c6146b"), nil, "c5.huge"},
			{"budget too small", c.cloudArgs(script, sweep, out, "--budget", "0.0001", "--market", "on-demand", "--ami", "ami-12c6146b"), nil, "budget"},
			{"no configuration", c.cloudArgs(script, sweep, out, "--ami", "ami-12c6146b"), []string{"BURST_CONFIG=" + filepath.Join(c.dir, "none.yaml")}, "burst init"},
			{"no credentials", c.cloudArgs(script, sweep, out, "--ami", "ami-12c6146b"), []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="}, "credentials"},
			{"no yes", slicesWithout(c.cloudArgs(script, sweep, out, "--ami", "ami-12c6146b"), "--yes"), nil, "--yes"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cmd := c.command(tc.args...)
				cmd.Env = append(cmd.Env, tc.env...)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				ee, ok := err.(*exec.ExitError)
				if !ok || ee.ExitCode() != 2 {
					t.Fatalf("exit %v, want 2\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
				}
				if !strings.Contains(stderr.String(), tc.want) {
					t.Errorf("stderr does not say %q:\n%s", tc.want, stderr.String())
				}
				if strings.Contains(stderr.String(), "goroutine ") || strings.Count(strings.TrimSpace(stderr.String()), "\n") > 2 {
					t.Errorf("not a short error:\n%s", stderr.String())
				}
				if ids := c.live(""); len(ids) > 0 {
					t.Errorf("instances launched: %v", ids)
				}
			})
		}
	})

	c.registerImage()

	t.Run("sweep", func(t *testing.T) {
		script, sweep := c.writeSweep("square", 12, 200*time.Millisecond)
		out := filepath.Join(c.dir, "square")
		code, stdout, stderr := c.burstCmd(c.cloudArgs(script, sweep, out)...)
		if code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		t.Logf("burst submit --cloud aws said:\n%s%s", stdout, stderr)
		checkResults(t, out, 12)
		id := runID(t, stdout)
		if ids := c.live(id); len(ids) > 0 {
			t.Errorf("instances left running: %v", ids)
		}
		if !strings.Contains(stdout, "all terminated") {
			t.Errorf("no fleet summary:\n%s", stdout)
		}
		c.checkSpend(t, id)
		// Every instance booted from the run's image, ran a worker, and
		// ended.
		var booted int
		for _, in := range c.harness.Instances() {
			if in.BootError != "" {
				t.Errorf("instance %s: %s", in.ID, in.BootError)
			}
			booted++
			if in.Running {
				t.Errorf("instance %s still running in the harness", in.ID)
			}
		}
		if booted == 0 {
			t.Error("no instance booted")
		}
	})

	// A spot interruption mid-run: the instance's worker hands its chunks
	// back and the other instance finishes them; nothing is lost.
	t.Run("spot interruption", func(t *testing.T) {
		script, sweep := c.writeSweep("interrupted", 24, 1500*time.Millisecond)
		out := filepath.Join(c.dir, "interrupted")
		// Ten seconds a task makes two instances the plan.
		args := c.cloudArgs(script, sweep, out, "--market", "spot", "--task-time", "10s")
		cmd, buf, id := c.startCLI(t, args, 2)
		for c.results(t, id) < 2 {
			time.Sleep(200 * time.Millisecond)
		}
		var victim string
		for _, in := range c.harness.Instances() {
			if in.Running && c.instanceOf(in.ID) == id {
				victim = in.ID
				break
			}
		}
		if err := c.harness.Interrupt(victim); err != nil {
			t.Fatal(err)
		}
		if code := waitExit(t, cmd, buf, 3*time.Minute); code != 0 {
			t.Fatalf("exit %d:\n%s", code, buf.String())
		}
		checkResults(t, out, 24)
		c.waitEnded(t, id)
		in, _ := c.harness.Instance(victim)
		if in.Interrupted.IsZero() || in.Terminated.IsZero() {
			t.Errorf("instance %s: interrupted %v, terminated %v", victim, in.Interrupted, in.Terminated)
		}
		if log, err := os.ReadFile(in.Output); err != nil || !strings.Contains(string(log), "spot interruption notice") {
			t.Errorf("the interrupted worker did not say why it stopped (%v):\n%s", err, log)
		}
		if ids := c.live(id); len(ids) > 0 {
			t.Errorf("instances left running: %v", ids)
		}
		c.checkSpend(t, id)
	})

	// An instance killed without notice mid-run, the only one of its
	// fleet: the CLI launches a replacement, says so, and the run
	// finishes on it.
	t.Run("instance killed", func(t *testing.T) {
		script, sweep := c.writeSweep("killed", 12, time.Second)
		out := filepath.Join(c.dir, "killed")
		args := c.cloudArgs(script, sweep, out, "--max-instances", "1", "--lease-ttl", "3s")
		cmd, buf, id := c.startCLI(t, args, 1)
		c.killOnlyInstance(t, id)
		if code := waitExit(t, cmd, buf, 3*time.Minute); code != 0 {
			t.Fatalf("exit %d:\n%s", code, buf.String())
		}
		checkResults(t, out, 12)
		if !strings.Contains(buf.String(), "launching replacements") {
			t.Errorf("the replacement was not announced:\n%s", buf.String())
		}
		booted := 0
		for _, in := range c.harness.Instances() {
			if c.instanceOf(in.ID) == id {
				booted++
			}
		}
		if booted < 2 {
			t.Errorf("%d instances booted for the run, want a replacement", booted)
		}
		c.waitEnded(t, id)
		if ids := c.live(id); len(ids) > 0 {
			t.Errorf("instances left running: %v", ids)
		}
		c.checkSpend(t, id)
	})

	// A detached run followed by burst watch --maintain from another
	// process: its only instance killed without notice is replaced, and
	// the run finishes.
	t.Run("watch maintain", func(t *testing.T) {
		script, sweep := c.writeSweep("maintained", 12, time.Second)
		out := filepath.Join(c.dir, "maintained")
		args := c.cloudArgs(script, sweep, out, "--max-instances", "1", "--lease-ttl", "3s", "--detach")
		code, stdout, stderr := c.burstCmd(args...)
		if code != 0 {
			t.Fatalf("submit --detach: exit %d\n%s%s", code, stdout, stderr)
		}
		id := runID(t, stdout)
		loc := fmt.Sprintf("s3://%s/fleet/runs/%s", c.bucket, id)
		watch := c.command("watch", loc, "--maintain", "--every", "300ms")
		buf := &syncBuffer{}
		watch.Stdout, watch.Stderr = buf, buf
		if err := watch.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = watch.Process.Kill(); _ = watch.Wait() })
		c.killOnlyInstance(t, id)
		if code := waitExit(t, watch, buf, 3*time.Minute); code != 0 {
			t.Fatalf("watch --maintain: exit %d:\n%s", code, buf.String())
		}
		if !strings.Contains(buf.String(), "launching replacements") {
			t.Errorf("the replacement was not announced:\n%s", buf.String())
		}
		if code, stdout, stderr := c.burstCmd("results", loc, "--out", out); code != 0 {
			t.Fatalf("burst results: exit %d\n%s%s", code, stdout, stderr)
		}
		checkResults(t, out, 12)
		deadline := time.Now().Add(2 * time.Minute)
		for len(c.live(id)) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the fleet did not end itself: %v", c.live(id))
			}
			time.Sleep(300 * time.Millisecond)
		}
		c.waitEnded(t, id)
		c.checkSpend(t, id)
	})

	// EC2 unreachable from the CLI for a while mid-run: the follow logs
	// and retries, the fleet is untouched, and the run finishes.
	t.Run("ec2 faults", func(t *testing.T) {
		script, sweep := c.writeSweep("faulty", 16, time.Second)
		out := filepath.Join(c.dir, "faulty")
		proxy := newFaultProxy(t, c.moto.Endpoint())
		cmd := c.command(c.cloudArgs(script, sweep, out)...)
		cmd.Env = append(cmd.Env, "AWS_ENDPOINT_URL_EC2="+proxy.url, "AWS_MAX_ATTEMPTS=1")
		buf := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = buf, buf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		deadline := time.Now().Add(2 * time.Minute)
		for !strings.Contains(buf.String(), "launched ") {
			if time.Now().After(deadline) {
				t.Fatalf("no fleet launched:\n%s", buf.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
		proxy.setFailing(true)
		for !strings.Contains(buf.String(), "the fleet is untouched") {
			if time.Now().After(deadline) {
				t.Fatalf("no fault reported:\n%s", buf.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(3 * time.Second)
		proxy.setFailing(false)
		if code := waitExit(t, cmd, buf, 3*time.Minute); code != 0 {
			t.Fatalf("exit %d:\n%s", code, buf.String())
		}
		checkResults(t, out, 16)
		id := runID(t, buf.String())
		c.waitEnded(t, id)
		for _, in := range c.harness.Instances() {
			if c.instanceOf(in.ID) == id && in.TerminatedBy == fleetsim.ByAPI && !in.Terminated.After(proxy.lastFailure()) {
				t.Errorf("instance %s terminated by the CLI during the faults", in.ID)
			}
		}
		c.checkSpend(t, id)
	})

	// The CLI killed mid-run: the fleet finishes the run and ends itself.
	t.Run("cli killed", func(t *testing.T) {
		script, sweep := c.writeSweep("orphaned", 16, time.Second)
		out := filepath.Join(c.dir, "orphaned")
		cmd, _, id := c.startCLI(t, c.cloudArgs(script, sweep, out), 1)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for len(c.live(id)) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the fleet did not end itself: %v", c.live(id))
			}
			time.Sleep(500 * time.Millisecond)
		}
		code, stdout, stderr := c.burstCmd("results", fmt.Sprintf("s3://%s/fleet/runs/%s", c.bucket, id), "--out", out)
		if code != 0 {
			t.Fatalf("burst results: exit %d\n%s%s", code, stdout, stderr)
		}
		checkResults(t, out, 16)
		c.waitEnded(t, id)
		for _, in := range c.harness.Instances() {
			if c.instanceOf(in.ID) == id && in.TerminatedBy != fleetsim.ByShutdown {
				t.Errorf("instance %s ended by %q, not by shutting itself down", in.ID, in.TerminatedBy)
			}
		}
		c.checkSpend(t, id)
	})

	// Ctrl-C: the CLI terminates the fleet, waits until it is gone, and
	// says how to finish the run.
	t.Run("interrupted", func(t *testing.T) {
		script, sweep := c.writeSweep("stopped", 40, 2*time.Second)
		out := filepath.Join(c.dir, "stopped")
		cmd, buf, id := c.startCLI(t, c.cloudArgs(script, sweep, out, "--task-time", "10s"), 2)
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if code := waitExit(t, cmd, buf, 2*time.Minute); code != 130 {
			t.Fatalf("exit %d, want 130:\n%s", code, buf.String())
		}
		if ids := c.live(id); len(ids) > 0 {
			t.Errorf("the CLI exited with instances still running: %v\n%s", ids, buf.String())
		}
		if !strings.Contains(buf.String(), "burst worker s3://") {
			t.Errorf("no word on how to finish the run:\n%s", buf.String())
		}
		c.waitEnded(t, id)
		for _, in := range c.harness.Instances() {
			if c.instanceOf(in.ID) == id && in.TerminatedBy != fleetsim.ByAPI {
				t.Errorf("instance %s ended by %q, not by the CLI", in.ID, in.TerminatedBy)
			}
		}
		c.checkSpend(t, id)
	})

	// burst gc ends instances of ended runs and expired ones, keeps those
	// of live runs; burst down ends a run's instances. Both are
	// idempotent.
	t.Run("gc and down", func(t *testing.T) {
		script, sweep := c.writeSweep("live", 2, 0)
		code, stdout, stderr := c.burstCmd("submit", script, "--sweep", sweep, "--detach", "--store", fmt.Sprintf("s3://%s/fleet", c.bucket))
		if code != 0 {
			t.Fatalf("staging a live run: exit %d\n%s%s", code, stdout, stderr)
		}
		live := strings.TrimSuffix(strings.Fields(stdout)[2], ":")
		_, finished := func() (int, string) {
			for _, in := range c.harness.Instances() {
				if r := c.instanceOf(in.ID); r != "" {
					return 0, r
				}
			}
			t.Fatal("no earlier run")
			return 0, ""
		}()
		past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
		future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		expired := c.orphan(t, "orphan-expired", past)
		ofFinished := c.orphan(t, finished, future)
		ofLive := c.orphan(t, live, future)

		code, stdout, stderr = c.burstCmd("gc", "--dry-run")
		if code != 0 || !strings.Contains(stdout, "would end "+expired) || !strings.Contains(stdout, "would end "+ofFinished) || strings.Contains(stdout, "would end "+ofLive) {
			t.Fatalf("gc --dry-run: exit %d\n%s%s", code, stdout, stderr)
		}
		if got := c.live(""); len(got) != 3 {
			t.Fatalf("a dry run ended instances: %v live", got)
		}
		if code, stdout, stderr = c.burstCmd("gc"); code != 2 {
			t.Fatalf("gc without --yes and without a terminal: exit %d\n%s%s", code, stdout, stderr)
		}
		for range 2 {
			code, stdout, stderr = c.burstCmd("gc", "--yes")
			if code != 0 {
				t.Fatalf("gc: exit %d\n%s%s", code, stdout, stderr)
			}
			if got := c.live(""); len(got) != 1 || got[0] != ofLive {
				t.Fatalf("after gc, live: %v, want only %s\n%s", got, ofLive, stdout)
			}
		}
		for range 2 {
			code, stdout, stderr = c.burstCmd("down", live)
			if code != 0 {
				t.Fatalf("down: exit %d\n%s%s", code, stdout, stderr)
			}
			if got := c.live(""); len(got) != 0 {
				t.Fatalf("after down, live: %v", got)
			}
		}
		if !strings.Contains(stdout, "no instances running") {
			t.Errorf("a second down says:\n%s", stdout)
		}
	})
}

// killOnlyInstance waits until the run has two results, and terminates
// its only instance through the API, without notice to anyone.
func (c *cloudEnv) killOnlyInstance(t *testing.T, id string) {
	t.Helper()
	for c.results(t, id) < 2 {
		time.Sleep(200 * time.Millisecond)
	}
	victim := c.live(id)
	if len(victim) != 1 {
		t.Fatalf("live: %v", victim)
	}
	if _, err := c.api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: victim}); err != nil {
		t.Fatal(err)
	}
}

// faultProxy forwards EC2 requests to moto, or, while failing, answers
// each with EC2's 503 Unavailable.
type faultProxy struct {
	url     string
	mu      sync.Mutex
	failing bool
	last    time.Time
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		failing := p.failing
		if failing {
			p.last = time.Now()
		}
		p.mu.Unlock()
		if failing {
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>Unavailable</Code><Message>The service is unavailable (test).</Message></Error></Errors><RequestID>x</RequestID></Response>`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

func (p *faultProxy) setFailing(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failing = on
}

func (p *faultProxy) lastFailure() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// orphan starts an instance tagged as burst's, for run, expiring then.
func (c *cloudEnv) orphan(t *testing.T, run, expires string) string {
	t.Helper()
	out, err := c.api.RunInstances(context.Background(), &ec2.RunInstancesInput{
		ImageId: aws.String(c.ami), InstanceType: types.InstanceTypeC6iLarge, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{
			{Key: aws.String(provision.TagRun), Value: aws.String(run)},
			{Key: aws.String(provision.TagOwner), Value: aws.String("test")},
			{Key: aws.String(provision.TagExpires), Value: aws.String(expires)},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.Instances[0].InstanceId)
}

// startCLI starts a cloud run in the background and returns its command
// and its run id, once it has launched its fleet and the harness has
// booted every instance.
func (c *cloudEnv) startCLI(t *testing.T, args []string, instances int) (*exec.Cmd, *syncBuffer, string) {
	t.Helper()
	cmd := c.command(args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var id string
	deadline := time.Now().Add(2 * time.Minute)
	for id == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no fleet launched:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
		if strings.Contains(out.String(), "launched ") {
			id = runID(t, out.String())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := c.harness.WaitUntil(ctx, func(all []fleetsim.Instance) bool {
		n := 0
		for _, in := range all {
			if in.Running && c.instanceOf(in.ID) == id {
				n++
			}
		}
		return n >= instances
	})
	if err != nil {
		t.Fatalf("%d instances did not boot: %v\n%s", instances, err, out.String())
	}
	return cmd, out, id
}

// waitEnded waits until the harness has recorded why each instance of
// the run ended: it sees terminations made through the API at its next
// poll.
func (c *cloudEnv) waitEnded(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.harness.WaitUntil(ctx, func(all []fleetsim.Instance) bool {
		for _, in := range all {
			if in.TerminatedBy == "" && c.instanceOf(in.ID) == id {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("instances of run %s not seen ended: %v", id, err)
	}
}

// instanceOf returns the run an instance was launched for.
func (c *cloudEnv) instanceOf(id string) string {
	out, err := c.api.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil || len(out.Reservations) == 0 {
		return ""
	}
	for _, tag := range out.Reservations[0].Instances[0].Tags {
		if aws.ToString(tag.Key) == provision.TagRun {
			return aws.ToString(tag.Value)
		}
	}
	return ""
}

// results returns how many results the run has in the store.
func (c *cloudEnv) results(t *testing.T, id string) int {
	t.Helper()
	code, stdout, stderr := c.burstCmd("status", fmt.Sprintf("s3://%s/fleet/runs/%s", c.bucket, id), "--json")
	if code != 0 {
		t.Fatalf("burst status: exit %d\n%s%s", code, stdout, stderr)
	}
	var st struct {
		OK    int    `json:"ok"`
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatal(err)
	}
	return st.OK
}

// waitExit waits for a command to end, at most d.
func waitExit(t *testing.T, cmd *exec.Cmd, out *syncBuffer, d time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(d):
		_ = cmd.Process.Kill()
		t.Fatalf("still running after %s:\n%s", d, out.String())
		return -1
	}
}

// syncBuffer is a bytes.Buffer that a running command writes to while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.String()
}

func slicesWithout(s []string, drop string) []string {
	var out []string
	for _, x := range s {
		if x != drop {
			out = append(out, x)
		}
	}
	return out
}
