package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

func runTags(run, owner, expires string) map[string]string {
	t := map[string]string{TagRun: run, TagOwner: owner, "Name": "burst-" + run}
	if expires != "" {
		t[TagExpires] = expires
	}
	return t
}

func quietLog(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(testWriter{t}, nil)) }

func TestDownEndsTheRunAndWaits(t *testing.T) {
	f := newFleetFake()
	f.termDescribes = 3
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	var mine []string
	for i := 0; i < 7; i++ { // more than a page of DescribeInstances
		mine = append(mine, f.add("c7i.large", Spot, "running", runTags("r1", "ana", exp)))
	}
	mine = append(mine, f.add("c7i.large", OnDemand, "stopped", runTags("r1", "ana", exp)))
	mine = append(mine, f.add("c7i.large", OnDemand, "pending", runTags("r1", "ana", exp)))
	other := f.add("c7i.large", Spot, "running", runTags("r2", "ana", exp))
	untagged := f.add("c7i.large", Spot, "running", map[string]string{"Name": "not burst"})
	gone := f.add("c7i.large", Spot, "terminated", runTags("r1", "ana", exp))
	f.templates[TemplateName("r1")] = &fakeTemplate{id: "lt-1"}
	f.templates[TemplateName("r2")] = &fakeTemplate{id: "lt-2"}

	var progress []TeardownProgress
	res, err := Down(context.Background(), f, "r1", DownOptions{Poll: time.Millisecond, Logger: quietLog(t), Progress: func(p TeardownProgress) {
		progress = append(progress, p)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.states("r1"); got["terminated"] != len(mine)+1 || len(got) != 1 {
		t.Errorf("run r1 states %v: want all %d terminated", got, len(mine)+1)
	}
	if got := instanceIDs(res.Instances); !sameSet(got, mine) {
		t.Errorf("Down reports %v, want %v", got, mine)
	}
	for _, id := range []string{other, untagged} {
		f.mu.Lock()
		st := f.find(id).state
		f.mu.Unlock()
		if st != "running" {
			t.Errorf("%s is %s: Down touched what is not the run's", id, st)
		}
	}
	for _, batch := range f.terminated {
		if slices.Contains(batch, gone) {
			t.Error("terminated an already terminated instance")
		}
	}
	if !res.TemplateDeleted || f.templates[TemplateName("r1")] != nil || f.templates[TemplateName("r2")] == nil {
		t.Errorf("template deleted %v; templates %v", res.TemplateDeleted, f.templates)
	}
	// It waited: progress went from none to all terminated.
	if len(progress) < 2 || progress[0].Terminated != 0 || progress[len(progress)-1].Terminated != len(mine) || len(progress[len(progress)-1].Remaining) != 0 {
		t.Errorf("progress %+v", progress)
	}

	// Again: nothing to do, no error.
	calls := f.calls["TerminateInstances"]
	res, err = Down(context.Background(), f, "r1", DownOptions{Poll: time.Millisecond, Logger: quietLog(t)})
	if err != nil || len(res.Instances) != 0 || res.TemplateDeleted {
		t.Errorf("second Down: %+v, %v", res, err)
	}
	if f.calls["TerminateInstances"] != calls {
		t.Error("second Down terminated something")
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestDownInstancesAlreadyGone(t *testing.T) {
	f := newFleetFake()
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	a := f.add("c7i.large", Spot, "running", runTags("r1", "ana", exp))
	b := f.add("c7i.large", Spot, "running", runTags("r1", "ana", exp))
	// EC2 still lists b, but terminating it says it does not exist.
	f.forget[b] = true
	res, err := Down(context.Background(), f, "r1", DownOptions{Poll: time.Millisecond, Logger: quietLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	st := f.find(a).state
	f.mu.Unlock()
	if st != "terminated" {
		t.Errorf("a is %s", st)
	}
	if len(res.Instances) != 2 {
		t.Errorf("result %+v", res)
	}
	if f.calls["TerminateInstances"] != 3 {
		t.Errorf("%d terminate calls, want the batch then one by one", f.calls["TerminateInstances"])
	}
}

func TestDownTimeoutSaysWhatMayRun(t *testing.T) {
	f := newFleetFake()
	f.termDescribes = 1 << 20
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	a := f.add("c7i.large", Spot, "running", runTags("r1", "ana", exp))
	_, err := Down(context.Background(), f, "r1", DownOptions{Poll: 5 * time.Millisecond, Timeout: 50 * time.Millisecond, Logger: quietLog(t)})
	var sr *StillRunningError
	if !errors.As(err, &sr) || !slices.Equal(sr.IDs, []string{a}) || !strings.Contains(err.Error(), a) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want a StillRunningError naming %s", err, a)
	}
	if f.templates[TemplateName("r1")] != nil {
		t.Error("template")
	}
}

func TestDownRetriesThrottling(t *testing.T) {
	fastRetry(t)
	f := newFleetFake()
	f.termDescribes = 1
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	f.add("c7i.large", Spot, "running", runTags("r1", "ana", exp))
	f.templates[TemplateName("r1")] = &fakeTemplate{id: "lt-1"}
	f.throttle["DescribeInstances"] = 2
	f.throttle["TerminateInstances"] = 2
	f.throttle["DeleteLaunchTemplate"] = 1
	res, err := Down(context.Background(), f, "r1", DownOptions{Poll: time.Millisecond, Logger: quietLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.states("r1"); got["terminated"] != 1 || !res.TemplateDeleted {
		t.Errorf("states %v, template deleted %v", got, res.TemplateDeleted)
	}
	if f.calls["TerminateInstances"] != 3 || f.calls["DeleteLaunchTemplate"] != 2 {
		t.Errorf("calls %v", f.calls)
	}

	// An error that is not throttling is not retried, and says so.
	f.add("c7i.large", Spot, "running", runTags("r3", "ana", exp))
	f.fail["TerminateInstances"] = []error{fakeAPIErr("UnauthorizedOperation", "no")}
	before := f.calls["TerminateInstances"]
	if _, err := Down(context.Background(), f, "r3", DownOptions{Poll: time.Millisecond, Logger: quietLog(t)}); err == nil || !strings.Contains(err.Error(), "UnauthorizedOperation") {
		t.Errorf("err %v", err)
	}
	if f.calls["TerminateInstances"] != before+1 {
		t.Errorf("%d terminate calls", f.calls["TerminateInstances"]-before)
	}
}

func TestDownBatches(t *testing.T) {
	f := newFleetFake()
	f.pageSize = 50
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for i := 0; i < 2*terminateBatch+5; i++ {
		f.add("c7i.large", Spot, "running", runTags("big", "ana", exp))
	}
	if _, err := Down(context.Background(), f, "big", DownOptions{Poll: time.Millisecond, Logger: quietLog(t)}); err != nil {
		t.Fatal(err)
	}
	if len(f.terminated) != 3 {
		t.Errorf("%d terminate calls, want 3 batches", len(f.terminated))
	}
	for _, b := range f.terminated {
		if len(b) > terminateBatch {
			t.Errorf("batch of %d", len(b))
		}
	}
	if got := f.states("big"); got["terminated"] != 2*terminateBatch+5 {
		t.Errorf("states %v", got)
	}
}

func TestDownRejectsBadRunID(t *testing.T) {
	f := newFleetFake()
	if _, err := Down(context.Background(), f, "x*", DownOptions{}); err == nil {
		t.Error("accepted a bad run id")
	}
	if len(f.calls) != 0 {
		t.Errorf("calls %v", f.calls)
	}
}

func TestGC(t *testing.T) {
	f := newFleetFake()
	f.termDescribes = 2
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	past := now.Add(-time.Minute).Format(time.RFC3339)
	future := now.Add(time.Hour).Format(time.RFC3339)
	expired := []string{
		f.add("c7i.large", Spot, "running", runTags("expired", "ana", past)),
		f.add("c7i.large", Spot, "stopped", runTags("expired", "ana", past)),
	}
	ended := f.add("c7i.large", Spot, "running", runTags("ended", "bo", future))
	live := f.add("c7i.large", Spot, "running", runTags("live", "ana", future))
	noExpiry := f.add("c7i.large", Spot, "running", runTags("untagged", "ana", ""))
	badExpiryEnded := f.add("c7i.large", Spot, "running", runTags("ended2", "ana", "tomorrow"))
	unknown := f.add("c7i.large", Spot, "running", runTags("unknown", "ana", future))
	f.add("c7i.large", Spot, "terminated", runTags("old", "ana", past))
	notBurst := f.add("c7i.large", Spot, "running", map[string]string{"Name": "web"})
	for _, r := range []string{"expired", "ended", "live"} {
		f.templates[TemplateName(r)] = &fakeTemplate{id: "lt-" + r}
	}
	var asked []string
	endedFn := func(ctx context.Context, run string) (bool, error) {
		asked = append(asked, run)
		switch run {
		case "ended", "ended2":
			return true, nil
		case "unknown":
			return false, fmt.Errorf("store unreachable")
		}
		return false, nil
	}

	// A dry run lists and ends nothing.
	res, err := GC(context.Background(), f, GCOptions{Now: now, Ended: endedFn, DryRun: true, Logger: quietLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	wantReaped := append(slices.Clone(expired), ended, badExpiryEnded)
	if got := gcIDs(res.Reaped); !sameSet(got, wantReaped) {
		t.Errorf("dry run reaps %v, want %v", got, wantReaped)
	}
	if got := gcIDs(res.Kept); !sameSet(got, []string{noExpiry, unknown}) {
		t.Errorf("dry run keeps %v, want %v", got, []string{noExpiry, unknown})
	}
	if slices.Contains(asked, "expired") {
		t.Error("asked about a run whose instances had expired anyway")
	}
	if len(f.terminated) != 0 || len(f.templates) != 3 {
		t.Errorf("dry run terminated %v / deleted templates", f.terminated)
	}
	for _, k := range res.Kept {
		if k.ID == unknown && !strings.Contains(k.Reason, "store unreachable") || k.ID == noExpiry && !strings.Contains(k.Reason, TagExpires) {
			t.Errorf("kept %s: %q", k.ID, k.Reason)
		}
	}

	// The real one.
	var progress []TeardownProgress
	res, err = GC(context.Background(), f, GCOptions{Now: now, Ended: endedFn, Poll: time.Millisecond, Logger: quietLog(t),
		Progress: func(p TeardownProgress) { progress = append(progress, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if got := gcIDs(res.Reaped); !sameSet(got, wantReaped) {
		t.Errorf("reaped %v, want %v", got, wantReaped)
	}
	f.mu.Lock()
	for _, id := range wantReaped {
		if st := f.find(id).state; st != "terminated" {
			t.Errorf("%s is %s after GC", id, st)
		}
	}
	for _, id := range []string{live, noExpiry, unknown, notBurst} {
		if st := f.find(id).state; st != "running" {
			t.Errorf("%s is %s: GC ended what it should keep", id, st)
		}
	}
	f.mu.Unlock()
	if last := progress[len(progress)-1]; last.Terminated != len(wantReaped) {
		t.Errorf("progress %+v", progress)
	}
	if !sameSet(res.Templates, []string{TemplateName("expired"), TemplateName("ended")}) || f.templates[TemplateName("live")] == nil {
		t.Errorf("templates deleted %v, left %v", res.Templates, f.templates)
	}

	// Again: nothing more.
	res, err = GC(context.Background(), f, GCOptions{Now: now, Ended: endedFn, Poll: time.Millisecond, Logger: quietLog(t)})
	if err != nil || len(res.Reaped) != 0 || len(res.Templates) != 0 {
		t.Errorf("second GC: %+v, %v", res, err)
	}

	// Without Ended, only expiry counts; by owner, only the owner's.
	later := now.Add(2 * time.Hour)
	res, err = GC(context.Background(), f, GCOptions{Now: later, Owner: "bo", DryRun: true, Logger: quietLog(t)})
	if err != nil || len(res.Reaped) != 0 {
		t.Errorf("owner bo: %+v, %v", res, err)
	}
	res, err = GC(context.Background(), f, GCOptions{Now: later, DryRun: true, Logger: quietLog(t)})
	if err != nil || !sameSet(gcIDs(res.Reaped), []string{live, unknown}) || !sameSet(gcIDs(res.Kept), []string{noExpiry}) {
		t.Errorf("after expiry: reaped %v kept %v, %v", gcIDs(res.Reaped), gcIDs(res.Kept), err)
	}
}

func gcIDs(gs []GCInstance) []string {
	var ids []string
	for _, g := range gs {
		ids = append(ids, g.ID)
	}
	return ids
}

// Down ends the instances it is told of by id even when a tag search
// does not list them yet, and with a grace period keeps searching by tag
// for those that EC2 lists late.
func TestDownKnownIDsAndGrace(t *testing.T) {
	fastRetry(t)
	f := newFleetFake()
	tags := map[string]string{TagRun: testRun, TagOwner: "ana"}
	known := f.add("c7i.large", OnDemand, "running", tags)
	late := f.add("c7i.large", OnDemand, "running", tags)
	f.hidden[known] = 1000
	f.hidden[late] = 4
	// Without ids or grace, neither is found.
	if res, err := Down(context.Background(), f, testRun, DownOptions{Poll: time.Millisecond}); err != nil || len(res.Instances) != 0 {
		t.Fatalf("plain Down: %v, %v", res.Instances, err)
	}
	res, err := Down(context.Background(), f, testRun, DownOptions{Poll: 10 * time.Millisecond, IDs: []string{known}, Grace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.states(testRun); got["running"] != 0 {
		t.Errorf("still running after Down with ids and grace: %v (ended %v)", got, instanceIDs(res.Instances))
	}
	// A known id that EC2 no longer knows is already gone: success.
	if _, err := Down(context.Background(), f, testRun, DownOptions{Poll: time.Millisecond, IDs: []string{"i-00000000000000999"}}); err != nil {
		t.Errorf("Down with an unknown id: %v", err)
	}
}
