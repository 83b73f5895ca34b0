package fleetsim

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/internal/testmoto"
	"github.com/slicerburst/burst/internal/testserver"
)

var profileCreds = aws.Credentials{AccessKeyID: "instance-key", SecretAccessKey: "instance-secret"}

type env struct {
	ctx context.Context
	ec2 *ec2.Client
	h   *Harness
	ami string
}

// setup starts moto and a harness on it; adjust changes the harness config.
func setup(t *testing.T, adjust func(*Config)) *env {
	t.Helper()
	srv := testmoto.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	c := srv.Client(t)
	cfg := Config{
		EC2:         c,
		Env:         []string{"AWS_REGION=us-east-1"},
		Credentials: profileCreds,
		Dir:         t.TempDir(),
		Poll:        100 * time.Millisecond,
		Logf:        t.Logf,
	}
	if adjust != nil {
		adjust(&cfg)
	}
	h, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	imgs, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(imgs.Images) == 0 {
		t.Fatalf("DescribeImages: %v", err)
	}
	return &env{ctx: ctx, ec2: c, h: h, ami: aws.ToString(imgs.Images[0].ImageId)}
}

// launch runs one on-demand instance with the user data.
func (e *env) launch(t *testing.T, userData string) string {
	t.Helper()
	out, err := e.ec2.RunInstances(e.ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(e.ami), InstanceType: types.InstanceTypeC5Large,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		UserData: aws.String(base64.StdEncoding.EncodeToString([]byte(userData))),
	})
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	return aws.ToString(out.Instances[0].InstanceId)
}

// launchSpot launches spot instances with an instant fleet, as burst does.
func (e *env) launchSpot(t *testing.T, userData string, n int32) []string {
	t.Helper()
	lt, err := e.ec2.CreateLaunchTemplate(e.ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("lt-" + strconv.FormatInt(time.Now().UnixNano(), 36)),
		LaunchTemplateData: &types.RequestLaunchTemplateData{
			ImageId:  aws.String(e.ami),
			UserData: aws.String(base64.StdEncoding.EncodeToString([]byte(userData))),
		},
	})
	if err != nil {
		t.Fatalf("CreateLaunchTemplate: %v", err)
	}
	out, err := e.ec2.CreateFleet(e.ctx, &ec2.CreateFleetInput{
		Type: types.FleetTypeInstant,
		LaunchTemplateConfigs: []types.FleetLaunchTemplateConfigRequest{{
			LaunchTemplateSpecification: &types.FleetLaunchTemplateSpecificationRequest{
				LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId, Version: aws.String("$Latest"),
			},
			Overrides: []types.FleetLaunchTemplateOverridesRequest{{InstanceType: "c5.xlarge"}},
		}},
		TargetCapacitySpecification: &types.TargetCapacitySpecificationRequest{
			TotalTargetCapacity: aws.Int32(n), SpotTargetCapacity: aws.Int32(n),
			DefaultTargetCapacityType: types.DefaultTargetCapacityTypeSpot,
		},
	})
	if err != nil {
		t.Fatalf("CreateFleet: %v", err)
	}
	var ids []string
	for _, fi := range out.Instances {
		ids = append(ids, fi.InstanceIds...)
	}
	return ids
}

// state returns the instance's state in moto.
func (e *env) state(t *testing.T, id string) types.InstanceStateName {
	t.Helper()
	out, err := e.ec2.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil || len(out.Reservations) == 0 {
		t.Fatalf("DescribeInstances %s: %v", id, err)
	}
	return out.Reservations[0].Instances[0].State.Name
}

// wait waits until the harness's view of instance id satisfies cond.
func (e *env) wait(t *testing.T, id string, what string, cond func(Instance) bool) Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	var last Instance
	err := e.h.WaitUntil(ctx, func(all []Instance) bool {
		for _, in := range all {
			if in.ID == id {
				last = in
				return cond(in)
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("%s: waiting for %s: %v (last seen %+v)", id, what, err, last)
	}
	return last
}

// waitFile waits until path exists and returns its content.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && len(b) > 0 && b[len(b)-1] == '\n' {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 30s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func pids(t *testing.T, s string) []int {
	t.Helper()
	var out []int
	for _, f := range strings.Fields(s) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("pid %q: %v", f, err)
		}
		out = append(out, n)
	}
	return out
}

func checkDead(t *testing.T, what string, ps []int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range ps {
		for testserver.Alive(p) {
			if time.Now().After(deadline) {
				t.Errorf("%s: process %d still alive", what, p)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestShutdownNow: user data that does its work and calls `shutdown -h now`
// ends with its instance terminated and its processes gone. It also runs with
// the environment an instance has: no credentials, its own metadata service.
func TestShutdownNow(t *testing.T) {
	e := setup(t, nil)
	id := e.launch(t, `#!/bin/bash
set -e
env > "$HOME/env"
pwd > "$HOME/pwd"
echo "working on $(cat /dev/null; echo it)"
sleep 1000 &
echo $! > "$HOME/pids"
setsid sleep 1000 &
echo $! >> "$HOME/pids"
echo $$ >> "$HOME/pids"
shutdown -h now
echo "still here after shutdown"
sleep 1000
`)
	in := e.wait(t, id, "termination", func(in Instance) bool { return !in.Terminated.IsZero() })
	if in.TerminatedBy != ByShutdown {
		t.Errorf("terminated by %q, want %q", in.TerminatedBy, ByShutdown)
	}
	if st := e.state(t, id); st != types.InstanceStateNameTerminated {
		t.Errorf("moto state %s, want terminated", st)
	}
	if !slices.Equal(in.Shutdowns, []string{"-h now"}) {
		t.Errorf("shutdown calls %q", in.Shutdowns)
	}
	checkDead(t, "after shutdown now", pids(t, waitFile(t, filepath.Join(in.Dir, "pids"))))
	in = e.wait(t, id, "exit", func(in Instance) bool { return in.Exited })
	if in.ExitCode != -1 {
		t.Errorf("user data exit code %d, want -1 (killed)", in.ExitCode)
	}
	out, _ := os.ReadFile(in.Output)
	if !strings.Contains(string(out), "working on it") {
		t.Errorf("output %q", out)
	}

	envs := map[string]string{}
	for _, line := range strings.Split(waitFile(t, filepath.Join(in.Dir, "env")), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			envs[k] = v
		}
	}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"} {
		if _, ok := envs[k]; ok {
			t.Errorf("instance environment has %s", k)
		}
	}
	if envs["HOME"] != in.Dir || envs["AWS_REGION"] != "us-east-1" || !strings.HasPrefix(envs["AWS_EC2_METADATA_SERVICE_ENDPOINT"], "http://127.0.0.1:") {
		t.Errorf("instance environment %v", envs)
	}
	if !strings.HasPrefix(envs["PATH"], filepath.Join(in.Dir, "sbin")+":") {
		t.Errorf("PATH %q does not start with the instance's sbin", envs["PATH"])
	}
	if got := strings.TrimSpace(waitFile(t, filepath.Join(in.Dir, "pwd"))); got != in.Dir {
		t.Errorf("working directory %q, want %q", got, in.Dir)
	}
}

// TestTerminatedThroughAPI: long-running user data dies when the instance
// is terminated through the API, child processes in their own groups too.
func TestTerminatedThroughAPI(t *testing.T) {
	e := setup(t, nil)
	id := e.launch(t, `#!/bin/bash
sleep 1000 &
echo $! > "$HOME/pids"
setsid sleep 1000 &
echo $! >> "$HOME/pids"
echo $$ >> "$HOME/pids"
wait
`)
	in := e.wait(t, id, "boot", func(in Instance) bool { return in.Running })
	ps := pids(t, waitFile(t, filepath.Join(in.Dir, "pids")))
	for _, p := range ps {
		if !testserver.Alive(p) {
			t.Fatalf("process %d not running before termination", p)
		}
	}
	start := time.Now()
	if _, err := e.ec2.TerminateInstances(e.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatalf("TerminateInstances: %v", err)
	}
	in = e.wait(t, id, "termination", func(in Instance) bool { return !in.Terminated.IsZero() && in.Exited })
	t.Logf("processes killed %v after TerminateInstances", time.Since(start).Round(time.Millisecond))
	if in.TerminatedBy != ByAPI {
		t.Errorf("terminated by %q, want %q", in.TerminatedBy, ByAPI)
	}
	checkDead(t, "after TerminateInstances", ps)
}

// TestScheduledShutdown: `shutdown -h +1` is honoured at the scaled minute,
// a later call replaces it, and `shutdown -c` cancels it.
func TestScheduledShutdown(t *testing.T) {
	const minute = 1500 * time.Millisecond
	e := setup(t, func(c *Config) { c.MinuteIs = minute })
	due := e.launch(t, `#!/bin/bash
shutdown -h +30 "deadline"
shutdown -h +1 || echo "shutdown failed"
date +%s.%N > "$HOME/scheduled"
sleep 1000
`)
	cancelled := e.launch(t, `#!/bin/bash
shutdown -h +1
shutdown -c
shutdown -r now && echo "reboot accepted"
shutdown -h 12:30 || echo "wall clock refused"
touch "$HOME/ready"
sleep 1000
`)
	in := e.wait(t, due, "scheduled termination", func(in Instance) bool { return !in.Terminated.IsZero() })
	stamp := strings.TrimSpace(waitFile(t, filepath.Join(in.Dir, "scheduled")))
	secs, err := strconv.ParseFloat(stamp, 64)
	if err != nil {
		t.Fatalf("timestamp %q: %v", stamp, err)
	}
	after := in.Terminated.Sub(time.Unix(0, int64(secs*1e9)))
	t.Logf("shutdown +1 (1 min = %v) came due %v after it was asked for", minute, after.Round(time.Millisecond))
	if after < minute-100*time.Millisecond || after > minute+2*time.Second {
		t.Errorf("shutdown +1 came due after %v, want about %v", after, minute)
	}
	if in.TerminatedBy != ByScheduled {
		t.Errorf("terminated by %q, want %q", in.TerminatedBy, ByScheduled)
	}
	if st := e.state(t, due); st != types.InstanceStateNameTerminated {
		t.Errorf("moto state %s, want terminated", st)
	}
	if !slices.Equal(in.Shutdowns, []string{"-h +30 deadline", "-h +1"}) {
		t.Errorf("shutdown calls %q", in.Shutdowns)
	}

	// The cancelled one is still up, well past its minute.
	c := e.wait(t, cancelled, "ready", func(in Instance) bool {
		_, err := os.Stat(filepath.Join(in.Dir, "ready"))
		return err == nil
	})
	time.Sleep(minute + time.Second)
	c, _ = e.h.Instance(cancelled)
	if !c.Running || !c.Terminated.IsZero() || !c.ScheduledShutdown.IsZero() {
		t.Errorf("cancelled shutdown: %+v", c)
	}
	if st := e.state(t, cancelled); st != types.InstanceStateNameRunning {
		t.Errorf("cancelled shutdown: moto state %s", st)
	}
	out, _ := os.ReadFile(c.Output)
	if strings.Contains(string(out), "reboot accepted") || !strings.Contains(string(out), "wall clock refused") {
		t.Errorf("output of refused shutdowns: %q", out)
	}
}

// TestUserDataExits: user data that ends without shutting down leaves the
// instance running, as on AWS, with its exit status recorded.
func TestUserDataExits(t *testing.T) {
	e := setup(t, nil)
	id := e.launch(t, "#!/bin/bash\necho bye\nexit 3\n")
	in := e.wait(t, id, "exit", func(in Instance) bool { return in.Exited })
	if in.ExitCode != 3 || !in.Terminated.IsZero() {
		t.Errorf("exit code %d, terminated %v", in.ExitCode, in.Terminated)
	}
	if st := e.state(t, id); st != types.InstanceStateNameRunning {
		t.Errorf("moto state %s, want running", st)
	}
}

// TestBurstUserData runs user data of the shape burst generates: export the
// region, schedule the hard deadline, run `burst worker` from the AMI's PATH,
// shut down when it exits.
func TestBurstUserData(t *testing.T) {
	ami := t.TempDir()
	burst := `#!/bin/bash
echo "$@" > "$HOME/burst-args"
echo "$AWS_REGION" > "$HOME/burst-region"
`
	if err := os.WriteFile(filepath.Join(ami, "burst"), []byte(burst), 0o755); err != nil {
		t.Fatal(err)
	}
	e := setup(t, func(c *Config) { c.Path = []string{ami}; c.Env = nil })
	ids := e.launchSpot(t, `#!/bin/bash
set -euo pipefail
export AWS_REGION=us-east-1
shutdown -h +90
rc=0
burst worker --ec2 s3://bucket/prefix/runs/RUN || rc=$?
echo "worker exited $rc"
shutdown -h now
`, 2)
	if len(ids) != 2 {
		t.Fatalf("fleet launched %v", ids)
	}
	for _, id := range ids {
		in := e.wait(t, id, "termination", func(in Instance) bool { return !in.Terminated.IsZero() })
		if in.TerminatedBy != ByShutdown || !in.Spot {
			t.Errorf("%s: terminated by %q, spot %v", id, in.TerminatedBy, in.Spot)
		}
		if got := waitFile(t, filepath.Join(in.Dir, "burst-args")); got != "worker --ec2 s3://bucket/prefix/runs/RUN\n" {
			t.Errorf("%s: burst called with %q", id, got)
		}
		if got := waitFile(t, filepath.Join(in.Dir, "burst-region")); got != "us-east-1\n" {
			t.Errorf("%s: AWS_REGION %q", id, got)
		}
		if !slices.Equal(in.Shutdowns, []string{"-h +90", "-h now"}) {
			t.Errorf("%s: shutdown calls %q", id, in.Shutdowns)
		}
		if st := e.state(t, id); st != types.InstanceStateNameTerminated {
			t.Errorf("%s: moto state %s", id, st)
		}
	}
}

// TestMetadata: the instance's metadata service through the real SDK: the
// default credential chain gets the instance profile's credentials, and the
// imds client reads the spot interruption notice, which ends the instance
// after the grace period.
func TestMetadata(t *testing.T) {
	const grace = 1500 * time.Millisecond
	e := setup(t, func(c *Config) { c.InterruptGrace = grace })
	ids := e.launchSpot(t, "#!/bin/bash\nsleep 1000\n", 1)
	id := ids[0]
	e.wait(t, id, "boot", func(in Instance) bool { return in.Running })
	e.h.mu.Lock()
	endpoint := e.h.insts[id].endpoint
	e.h.mu.Unlock()

	// IMDSv2 only: a GET without a token is refused.
	resp, err := http.Get(endpoint + "latest/meta-data/instance-id")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET without a token: %s, want 401", resp.Status)
	}

	// What a worker on the instance sees: no credentials in its
	// environment, the metadata endpoint set.
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_EC2_METADATA_DISABLED", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint)
	cfg, err := config.LoadDefaultConfig(e.ctx)
	if err != nil {
		t.Fatalf("LoadDefaultConfig: %v", err)
	}
	creds, err := cfg.Credentials.Retrieve(e.ctx)
	if err != nil {
		t.Fatalf("retrieving credentials: %v", err)
	}
	if creds.AccessKeyID != profileCreds.AccessKeyID || creds.SecretAccessKey != profileCreds.SecretAccessKey || creds.SessionToken != "" {
		t.Errorf("credentials %+v, want the instance profile's", creds)
	}
	if !creds.CanExpire || time.Until(creds.Expires) < 10*time.Minute {
		t.Errorf("credentials expire %v", creds.Expires)
	}
	t.Logf("credentials from %s, expiring %v", creds.Source, creds.Expires.Round(time.Second))

	md := imds.NewFromConfig(cfg)
	get := func(path string) (string, error) {
		out, err := md.GetMetadata(e.ctx, &imds.GetMetadataInput{Path: path})
		if err != nil {
			return "", err
		}
		defer out.Content.Close()
		b, err := io.ReadAll(out.Content)
		return string(b), err
	}
	if got, err := get("instance-id"); err != nil || got != id {
		t.Errorf("instance-id %q, %v", got, err)
	}
	if got, err := get("instance-life-cycle"); err != nil || got != "spot" {
		t.Errorf("instance-life-cycle %q, %v", got, err)
	}
	if got, err := get("placement/region"); err != nil || got != "us-east-1" {
		t.Errorf("placement/region %q, %v", got, err)
	}
	region, err := md.GetRegion(e.ctx, &imds.GetRegionInput{})
	if err != nil || region.Region != "us-east-1" {
		t.Errorf("GetRegion %+v, %v", region, err)
	}
	notFound := func(path string) {
		t.Helper()
		_, err := get(path)
		var re *smithyhttp.ResponseError
		if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusNotFound {
			t.Errorf("%s before an interruption: %v, want 404", path, err)
		}
	}
	notFound("spot/instance-action")
	notFound("events/recommendations/rebalance")

	if err := e.h.Interrupt(id); err != nil {
		t.Fatalf("Interrupt: %v", err)
	}
	announced := time.Now()
	action, err := get("spot/instance-action")
	if err != nil || !strings.Contains(action, `"action":"terminate"`) {
		t.Fatalf("spot/instance-action %q, %v", action, err)
	}
	t.Logf("spot/instance-action: %s", action)
	// burst's worker reads the same notice.
	notice, err := (&executor.EC2Notices{API: md, Instance: id}).Notice(e.ctx)
	if err != nil || notice == nil || notice.Kind != executor.SpotInterruption || notice.Action != "terminate" ||
		notice.Time.Sub(announced.Add(grace)).Abs() > 2*time.Second {
		t.Errorf("executor's notice %+v, %v", notice, err)
	}
	if rb, err := get("events/recommendations/rebalance"); err != nil || !strings.Contains(rb, `"noticeTime"`) {
		t.Errorf("rebalance %q, %v", rb, err)
	}

	in := e.wait(t, id, "termination", func(in Instance) bool { return !in.Terminated.IsZero() })
	if in.TerminatedBy != ByInterruption {
		t.Errorf("terminated by %q", in.TerminatedBy)
	}
	if d := in.Terminated.Sub(announced); d < grace-200*time.Millisecond || d > grace+2*time.Second {
		t.Errorf("terminated %v after the notice, want about %v", d, grace)
	}
	if st := e.state(t, id); st != types.InstanceStateNameTerminated {
		t.Errorf("moto state %s", st)
	}
	if err := e.h.Interrupt(id); err == nil {
		t.Errorf("Interrupt of a terminated instance succeeded")
	}
	ondemand := e.launch(t, "#!/bin/bash\nsleep 1000\n")
	e.wait(t, ondemand, "boot", func(in Instance) bool { return in.Running })
	if err := e.h.Interrupt(ondemand); err == nil {
		t.Errorf("Interrupt of an on-demand instance succeeded")
	}
}

// TestClose: no instance process is left after Close, and Close leaves the
// instances themselves alone.
func TestClose(t *testing.T) {
	e := setup(t, nil)
	var ids []string
	for range 3 {
		ids = append(ids, e.launch(t, `#!/bin/bash
(trap '' TERM; sleep 1000) &
echo $! > "$HOME/pids"
setsid bash -c 'sleep 1000 & wait' &
echo $! >> "$HOME/pids"
echo $$ >> "$HOME/pids"
wait
`))
	}
	var ps []int
	for _, id := range ids {
		in := e.wait(t, id, "boot", func(in Instance) bool { return in.Running })
		ps = append(ps, pids(t, waitFile(t, filepath.Join(in.Dir, "pids")))...)
	}
	// Let the setsid'd bash start its sleep.
	time.Sleep(200 * time.Millisecond)
	var marked []int
	for _, id := range ids {
		e.h.mu.Lock()
		marker := e.h.insts[id].marker
		e.h.mu.Unlock()
		marked = append(marked, markedPIDs(t, marker)...)
	}
	if len(marked) < 12 {
		t.Errorf("%d marked processes before Close, want at least 12 (4 per instance)", len(marked))
	}
	if err := e.h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, p := range append(ps, marked...) {
		if testserver.Alive(p) {
			t.Errorf("process %d alive after Close", p)
		}
	}
	for _, id := range ids {
		if st := e.state(t, id); st != types.InstanceStateNameRunning {
			t.Errorf("%s: moto state %s after Close, want running", id, st)
		}
	}
	if err := e.h.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// markedPIDs lists the live processes carrying marker.
func markedPIDs(t *testing.T, marker string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("reading /proc: %v", err)
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !testserver.Alive(pid) {
			continue
		}
		env, _ := os.ReadFile("/proc/" + e.Name() + "/environ")
		for _, kv := range strings.Split(string(env), "\x00") {
			if kv == marker {
				out = append(out, pid)
			}
		}
	}
	return out
}

func TestStartRefusesCredentials(t *testing.T) {
	srv := testmoto.Start(t)
	_, err := Start(context.Background(), Config{EC2: srv.Client(t), Env: []string{"AWS_ACCESS_KEY_ID=x"}})
	if err == nil || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Errorf("Start with credentials in Env: %v", err)
	}
}
