package staging_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/slicerburst/burst/staging"
	"github.com/slicerburst/burst/staging/pickle"
)

// Every staged run is listed, newest first; a folder under runs/ with no
// manifest is left out.
func TestListRuns(t *testing.T) {
	ctx := context.Background()
	store := newFS(t)
	if list, err := staging.ListRuns(ctx, store); err != nil || len(list) != 0 {
		t.Fatalf("empty store: %+v, %v", list, err)
	}
	script := filepath.Join(t.TempDir(), "job.py")
	writeFile(t, script, []byte("print('hi')\n"))
	p, err := pickle.Marshal(pickle.NewDict())
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for i, id := range []string{"old", "new"} {
		_, err := staging.Stage(ctx, store, staging.StageRequest{
			ScriptPath: script, Inputs: []staging.Input{{ID: "t0", Pickle: p}},
			Manifest: staging.Manifest{ID: id, Created: base.Add(time.Duration(i) * time.Hour), Retries: 1, LeaseTTL: staging.Duration(time.Minute), Slots: 1},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.Put(ctx, "runs/half/tasks/t0.pkl", p); err != nil {
		t.Fatal(err)
	}
	list, err := staging.ListRuns(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Run != "new" || list[1].Run != "old" || list[0].Total != 1 {
		t.Errorf("ListRuns = %+v; want new then old, one task each", list)
	}
}
