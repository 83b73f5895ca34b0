package executor_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/internal/testimds"
	"github.com/slicerburst/burst/staging"
)

const testInstance = "i-0123456789abcdef0"

// startIMDS starts a metadata service and points the SDK at it, as a
// worker on EC2 finds its own.
func startIMDS(t *testing.T) (*testimds.Server, *imds.Client) {
	t.Helper()
	srv := testimds.Start(t, testInstance)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.Endpoint())
	return srv, imds.New(imds.Options{EnableFallback: aws.FalseTernary})
}

func TestIMDSIdentityAndNotices(t *testing.T) {
	srv, client := startIMDS(t)
	ctx := context.Background()

	// The server is IMDSv2: without a token, 401 (counted, so 1 below).
	resp, err := http.Get(srv.Endpoint() + "/latest/meta-data/instance-id")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET without a token: %s, want 401", resp.Status)
	}

	in, err := executor.LookupInstance(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	if want := (executor.Instance{ID: testInstance, Type: "c7i.large", Zone: "us-east-1a"}); in != want {
		t.Errorf("instance %+v, want %+v", in, want)
	}
	src := &executor.EC2Notices{API: client, Instance: in.ID}
	if n, err := src.Notice(ctx); n != nil || err != nil {
		t.Fatalf("no notice posted: %+v, %v", n, err)
	}
	at := time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)
	srv.Rebalance(at)
	n, err := src.Notice(ctx)
	if err != nil || n == nil || n.Kind != executor.Rebalance || !n.Time.Equal(at) || n.Instance != testInstance {
		t.Fatalf("after a rebalance recommendation: %+v, %v", n, err)
	}
	// An interruption outranks the recommendation.
	srv.Spot("terminate", at.Add(2*time.Minute))
	n, err = src.Notice(ctx)
	if err != nil || n == nil || n.Kind != executor.SpotInterruption || n.Action != "terminate" || !n.Time.Equal(at.Add(2*time.Minute)) {
		t.Fatalf("after an interruption notice: %+v, %v", n, err)
	}
	if got, want := n.String(), "spot interruption notice for "+testInstance; got != want {
		t.Errorf("notice reads %q, want %q", got, want)
	}
	// A body that is not as documented is still a notice.
	srv.SetRaw("spot/instance-action", "<html>garbled</html>")
	if n, err := src.Notice(ctx); err != nil || n == nil || n.Kind != executor.SpotInterruption {
		t.Errorf("garbled interruption notice: %+v, %v", n, err)
	}
	if srv.Unauthorized() != 1 {
		t.Errorf("%d requests went without a valid token", srv.Unauthorized()-1)
	}

	// Down: an error, not a notice; healed: answers again.
	srv.Clear()
	srv.SetFault(testimds.Unavailable)
	if n, err := src.Notice(ctx); err == nil || n != nil {
		t.Errorf("metadata service down: %+v, %v; want an error", n, err)
	}
	srv.SetFault(testimds.NoFault)
	srv.Spot("stop", at)
	if n, err := src.Notice(ctx); err != nil || n == nil || n.Action != "stop" {
		t.Errorf("after the service came back: %+v, %v", n, err)
	}
}

// slowScript: while the file "slow" exists, the first two tasks to start
// (whichever chunks the worker picks) finish at once and the others hang.
// Every task logs its pid and its finish.
const slowScript = `
import os, pickle, sys, time
p = pickle.load(sys.stdin.buffer)
d, task = os.environ["BURST_TEST_DIR"], os.environ["BURST_TASK_ID"]
with open(os.path.join(d, "pid-" + task), "w") as f:
    f.write(str(os.getpid()))
def first(name):
    try:
        os.close(os.open(os.path.join(d, name), os.O_CREAT | os.O_EXCL))
        return True
    except FileExistsError:
        return False
if not first("quick-a") and not first("quick-b"):
    while os.path.exists(os.path.join(d, "slow")):
        time.sleep(0.05)
with open(os.path.join(d, "done.log"), "a") as f:
    f.write(task + "\n")
pickle.dump({"i": p["i"]}, sys.stdout.buffer)
`

// noticeWorker starts a worker on f that watches client for notices and
// returns its result on the channel, and the tasks' start events.
func noticeWorker(t *testing.T, f *fixture, client *imds.Client, slots int, drain time.Duration) (<-chan error, <-chan executor.Event) {
	t.Helper()
	in, err := executor.LookupInstance(context.Background(), client)
	if err != nil {
		t.Fatal(err)
	}
	cfg := f.config(t, slots)
	cfg.ID = in.ID
	cfg.Instance = &in
	cfg.Notices = &executor.EC2Notices{API: client, Instance: in.ID}
	cfg.NoticePoll = 100 * time.Millisecond
	cfg.Drain = drain
	events := make(chan executor.Event, 100)
	cfg.OnEvent = func(e executor.Event) { events <- e }
	done := make(chan error, 1)
	go func() {
		_, err := executor.Run(context.Background(), cfg)
		done <- err
	}()
	return done, events
}

// waitEvents waits until want reports true for the events seen so far.
func waitEvents(t *testing.T, events <-chan executor.Event, want func(started, finished []string) bool) (started, finished []string) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for !want(started, finished) {
		select {
		case e := <-events:
			if e.Kind == executor.TaskStarted {
				started = append(started, e.Task)
			} else {
				finished = append(finished, e.Task)
			}
		case <-deadline:
			t.Fatalf("after 60s: started %v, finished %v", started, finished)
		}
	}
	return started, finished
}

// checkReleased checks that every chunk that is not done has a released
// lease and marker, and returns how many there are.
func checkReleased(t *testing.T, f *fixture) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	for i := range f.man.Chunks {
		l, err := f.run.ReadLease(ctx, i)
		if errors.Is(err, staging.ErrNotFound) || l.Done {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if !l.Released {
			t.Errorf("chunk %d: lease %+v not released", i, l)
		}
		if _, err := f.store.Stat(ctx, f.run.LeaseKey(i)+staging.ReleasedMarker); err != nil {
			t.Errorf("chunk %d: no released marker: %v", i, err)
		}
	}
	return n
}

func readHeartbeat(t *testing.T, f *fixture, id string) staging.Heartbeat {
	t.Helper()
	data, _, err := f.store.Get(context.Background(), f.run.WorkerKey(id))
	if err != nil {
		t.Fatal(err)
	}
	var hb staging.Heartbeat
	if err := json.Unmarshal(data, &hb); err != nil {
		t.Fatal(err)
	}
	return hb
}

// finishRun runs a plain worker to the end of the run and checks that it
// did not wait for a lease to lapse (TTL 1h), that every task finished ok
// exactly once, on its first recorded attempt.
func finishRun(t *testing.T, f *fixture, wantOK int) {
	t.Helper()
	start := time.Now()
	sum, err := executor.Run(context.Background(), f.config(t, 2))
	if err != nil {
		t.Fatalf("second worker: %v", err)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("second worker took %s: it waited for leases instead of taking the released ones", el)
	}
	if sum.OK != wantOK || sum.Failed != 0 {
		t.Errorf("second worker: %+v, want %d ok", sum, wantOK)
	}
	counts := map[string]int{}
	for _, id := range lines(t, filepath.Join(f.dir, "done.log")) {
		counts[id]++
	}
	for _, id := range f.man.Tasks {
		if counts[id] != 1 {
			t.Errorf("task %s finished %d times, want 1", id, counts[id])
		}
		// A killed run of a task is no attempt of it.
		if st := f.status(t, id); st.Status != staging.StatusOK || st.Attempts != 1 {
			t.Errorf("task %s: status %s after %d attempts, want ok after 1", id, st.Status, st.Attempts)
		}
	}
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if data, err := os.ReadFile(path); err == nil && len(data) > 0 {
			return
		}
	}
	t.Fatalf("%s never written", path)
}

func pidOf(t *testing.T, f *fixture, task string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(f.dir, "pid-"+task))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(string(data))
	return pid
}

// TestSpotInterruptionReleasesAtOnce: a spot interruption notice mid-run
// stops the worker within a second or so; its running tasks are killed
// and left unrecorded, its leases released, and a second worker finishes
// every task exactly once without waiting for the 1h lease TTL.
func TestSpotInterruptionReleasesAtOnce(t *testing.T) {
	srv, client := startIMDS(t)
	f := stage(t, slowScript, 10, staging.Manifest{Retries: 2, LeaseTTL: staging.Duration(time.Hour)})
	if err := os.WriteFile(filepath.Join(f.dir, "slow"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	done, events := noticeWorker(t, f, client, 2, time.Minute)
	started, finished := waitEvents(t, events, func(started, finished []string) bool {
		return len(finished) == 2 && len(started) == 4
	})
	var hanging []string
	for _, id := range started {
		if !slices.Contains(finished, id) {
			hanging = append(hanging, id)
			waitFile(t, filepath.Join(f.dir, "pid-"+id))
		}
	}
	srv.Spot("terminate", time.Now().Add(2*time.Minute))
	noticed := time.Now()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("worker still running 10s after the interruption notice")
	}
	el := time.Since(noticed)
	t.Logf("worker stopped %s after the notice", el.Round(time.Millisecond))
	if el > 3*time.Second {
		t.Errorf("worker took %s to stop after the notice", el)
	}
	var ne *executor.NoticeError
	if !errors.As(err, &ne) || ne.Notice.Kind != executor.SpotInterruption || ne.Notice.Instance != testInstance {
		t.Fatalf("Run returned %v, want a spot interruption NoticeError", err)
	}
	released := checkReleased(t, f)
	if released == 0 || ne.Released != released {
		t.Errorf("the worker says it released %d chunks; %d are released", ne.Released, released)
	}
	want := "spot interruption notice for " + testInstance + ": released " + strconv.Itoa(released) + " chunks"
	if released == 1 {
		want = strings.TrimSuffix(want, "s")
	}
	if err.Error() != want {
		t.Errorf("error reads %q, want %q", err, want)
	}
	for _, id := range hanging {
		if _, err := f.run.ReadStatus(context.Background(), id); !errors.Is(err, staging.ErrNotFound) {
			t.Errorf("killed task %s has a status (%v): it must be left to run again", id, err)
		}
		if pid := pidOf(t, f, id); alive(pid) {
			t.Errorf("killed task %s: interpreter %d still alive", id, pid)
		}
	}
	hb := readHeartbeat(t, f, testInstance)
	if hb.State != "exited" || hb.Reason != "spot interruption notice for "+testInstance ||
		hb.Instance != testInstance || hb.InstanceType != "c7i.large" || hb.Zone != "us-east-1a" {
		t.Errorf("final heartbeat %+v", hb)
	}
	if srv.Unauthorized() != 0 || srv.Count("spot/instance-action") < 2 {
		t.Errorf("metadata service: %d unauthorized requests, %d polls", srv.Unauthorized(), srv.Count("spot/instance-action"))
	}

	if err := os.Remove(filepath.Join(f.dir, "slow")); err != nil {
		t.Fatal(err)
	}
	finishRun(t, f, 8)
}

// TestRebalanceDrains: a rebalance recommendation stops the claiming and
// the starting of tasks; a running task that finishes within the drain
// bound is recorded, one that does not is killed at the bound and left
// unrecorded; then the leases are released.
func TestRebalanceDrains(t *testing.T) {
	script := `
import os, pickle, sys, time
p = pickle.load(sys.stdin.buffer)
d, task = os.environ["BURST_TEST_DIR"], os.environ["BURST_TASK_ID"]
with open(os.path.join(d, "pid-" + task), "w") as f:
    f.write(str(os.getpid()))
def first(name):
    try:
        os.close(os.open(os.path.join(d, name), os.O_CREAT | os.O_EXCL))
        return True
    except FileExistsError:
        return False
if os.path.exists(os.path.join(d, "slow")):
    if first("short"):
        time.sleep(2)   # finishes within the drain
    else:
        while os.path.exists(os.path.join(d, "slow")):
            time.sleep(0.05)
with open(os.path.join(d, "done.log"), "a") as f:
    f.write(task + "\n")
pickle.dump({"i": p["i"]}, sys.stdout.buffer)
`
	srv, client := startIMDS(t)
	f := stage(t, script, 8, staging.Manifest{Retries: 2, LeaseTTL: staging.Duration(time.Hour)})
	if err := os.WriteFile(filepath.Join(f.dir, "slow"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	const drain = 4 * time.Second
	done, events := noticeWorker(t, f, client, 2, drain)
	started, _ := waitEvents(t, events, func(started, _ []string) bool {
		return len(started) == 2
	})
	for _, id := range started {
		waitFile(t, filepath.Join(f.dir, "pid-"+id))
	}
	srv.Rebalance(time.Now())
	noticed := time.Now()

	// While it drains, the heartbeat says so.
	var mu sync.Mutex
	var states []string
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if data, _, err := f.store.Get(context.Background(), f.run.WorkerKey(testInstance)); err == nil {
				var hb staging.Heartbeat
				if json.Unmarshal(data, &hb) == nil {
					mu.Lock()
					states = append(states, hb.State+"/"+hb.Reason)
					mu.Unlock()
				}
			}
		}
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(drain + 10*time.Second):
		t.Fatal("worker still running long after the drain bound")
	}
	close(stop)
	el := time.Since(noticed)
	t.Logf("worker stopped %s after the recommendation (drain bound %s)", el.Round(time.Millisecond), drain)
	if el < drain-time.Second || el > drain+3*time.Second {
		t.Errorf("worker stopped %s after the recommendation; want about the drain bound %s", el, drain)
	}
	var ne *executor.NoticeError
	if !errors.As(err, &ne) || ne.Notice.Kind != executor.Rebalance || !strings.HasPrefix(err.Error(), "rebalance recommendation for "+testInstance+": released ") {
		t.Fatalf("Run returned %v, want a rebalance NoticeError", err)
	}
	// No task started after the recommendation: the two running then are
	// the only ones that ran.
	for {
		select {
		case e := <-events:
			if e.Kind == executor.TaskStarted {
				t.Errorf("task %s started after the recommendation", e.Task)
			}
			continue
		default:
		}
		break
	}
	// One of the two was the short one: it finished within the drain;
	// the other was killed at the bound and left unrecorded.
	var ok, killed []string
	for _, id := range started {
		if _, err := f.run.ReadStatus(context.Background(), id); err == nil {
			ok = append(ok, id)
		} else if errors.Is(err, staging.ErrNotFound) {
			killed = append(killed, id)
			if pid := pidOf(t, f, id); alive(pid) {
				t.Errorf("task %s's interpreter %d outlived the drain", id, pid)
			}
		} else {
			t.Fatal(err)
		}
	}
	if len(ok) != 1 || len(killed) != 1 {
		t.Errorf("of the tasks running at the recommendation, %v finished and %v were killed; want one each", ok, killed)
	}
	if released := checkReleased(t, f); released == 0 || ne.Released != released {
		t.Errorf("the worker says it released %d chunks; %d are released", ne.Released, released)
	}
	mu.Lock()
	if want := "draining/rebalance recommendation for " + testInstance; !slices.Contains(states, want) {
		t.Errorf("heartbeat states seen while draining %v, want %q among them", states, want)
	}
	mu.Unlock()

	if err := os.Remove(filepath.Join(f.dir, "slow")); err != nil {
		t.Fatal(err)
	}
	finishRun(t, f, 7)
}

// TestMetadataTroubleIsNotFatal: with the metadata service failing or
// hanging, the worker goes on working; when it heals, a notice still
// reaches the worker.
func TestMetadataTroubleIsNotFatal(t *testing.T) {
	t.Run("down throughout", func(t *testing.T) {
		srv, client := startIMDS(t)
		f := stage(t, echoScript, 6, staging.Manifest{})
		cfg := f.config(t, 2)
		cfg.Notices = &executor.EC2Notices{API: client, Instance: testInstance}
		cfg.NoticePoll = 20 * time.Millisecond
		srv.SetFault(testimds.Unavailable)
		sum, err := executor.Run(context.Background(), cfg)
		if err != nil || sum.OK != 6 {
			t.Fatalf("Run with the metadata service down: %+v, %v", sum, err)
		}
		if srv.Failed() == 0 {
			t.Error("the worker never asked the failing service")
		}
	})
	t.Run("hangs then heals", func(t *testing.T) {
		srv, client := startIMDS(t)
		f := stage(t, slowScript, 10, staging.Manifest{LeaseTTL: staging.Duration(time.Hour)})
		if err := os.WriteFile(filepath.Join(f.dir, "slow"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		srv.SetFault(testimds.Hang)
		cfg := f.config(t, 2)
		cfg.Notices = &executor.EC2Notices{API: client, Instance: testInstance}
		cfg.NoticePoll = 100 * time.Millisecond
		events := make(chan executor.Event, 100)
		cfg.OnEvent = func(e executor.Event) { events <- e }
		done := make(chan error, 1)
		go func() {
			_, err := executor.Run(context.Background(), cfg)
			done <- err
		}()
		// It works while the service hangs.
		waitEvents(t, events, func(started, finished []string) bool {
			return len(finished) == 2 && len(started) == 4
		})
		time.Sleep(2 * time.Second)
		select {
		case err := <-done:
			t.Fatalf("worker stopped while the metadata service hung: %v", err)
		default:
		}
		if srv.Failed() == 0 {
			t.Fatal("the worker never asked the hanging service")
		}
		srv.SetFault(testimds.NoFault)
		srv.Spot("terminate", time.Now().Add(2*time.Minute))
		select {
		case err := <-done:
			var ne *executor.NoticeError
			if !errors.As(err, &ne) || ne.Notice.Kind != executor.SpotInterruption {
				t.Fatalf("Run returned %v, want a spot interruption", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the notice did not reach the worker after the service healed")
		}
		if err := os.Remove(filepath.Join(f.dir, "slow")); err != nil {
			t.Fatal(err)
		}
		finishRun(t, f, 8)
	})
}
