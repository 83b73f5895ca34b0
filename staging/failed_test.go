package staging_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/slicerburst/burst/staging"
)

// The failed tasks are read in task order, at most the limit, without
// their stderr tails; a run with none gives an empty list.
func TestFailedStatuses(t *testing.T) {
	ctx := context.Background()
	run := newRun(t)
	man := &staging.Manifest{Tasks: []string{"a", "b", "c", "d", "e"}}
	p := staging.Progress{
		Finished: map[string]bool{"a": true, "b": true, "c": true, "e": true},
		OKSet:    map[string]bool{"b": true},
	}
	for _, id := range []string{"a", "b", "c", "e"} {
		st := staging.Status{Task: id, Exec: "e1", Status: staging.StatusFailed, Error: "boom " + id, StderrTail: "trace of " + id}
		if p.OKSet[id] {
			st.Status, st.Error = staging.StatusOK, ""
		}
		data, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := run.Store.Put(ctx, run.StatusKey(id), data); err != nil {
			t.Fatal(err)
		}
	}
	got, err := run.FailedStatuses(ctx, man, p, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []staging.Status{
		{Task: "a", Exec: "e1", Status: staging.StatusFailed, Error: "boom a"},
		{Task: "c", Exec: "e1", Status: staging.StatusFailed, Error: "boom c"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FailedStatuses = %+v\nwant %+v", got, want)
	}
	none, err := run.FailedStatuses(ctx, man, staging.Progress{}, 20)
	if err != nil || none == nil || len(none) != 0 {
		t.Errorf("no failures: %#v, %v; want an empty list", none, err)
	}
}
