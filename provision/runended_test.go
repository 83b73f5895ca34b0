package provision

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/slicerburst/burst/staging"
)

// TestRunEnded: gc's judge of the run store calls a run ended once it is
// cancelled or gone from the store, and never while it is live.
func TestRunEnded(t *testing.T) {
	ctx := context.Background()
	store, run := stageTestRun(t)
	ended := RunEnded(store)
	if got, err := ended(ctx, run.ID); got || err != nil {
		t.Fatalf("live run: ended %v, %v", got, err)
	}
	if got, err := ended(ctx, "gone-"+run.ID); !got || err != nil {
		t.Fatalf("run not in the store: ended %v, %v", got, err)
	}
	if err := run.Cancel(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if got, err := ended(ctx, run.ID); !got || err != nil {
		t.Fatalf("cancelled run: ended %v, %v", got, err)
	}
	if _, err := ended(ctx, "../bad"); err == nil {
		t.Fatal("a bad run id is judged")
	}
}

// stageTestRun stages a run of one task in a new filesystem store.
func stageTestRun(t *testing.T) (*staging.FSStore, *staging.Run) {
	t.Helper()
	dir := t.TempDir()
	store, err := staging.OpenFS(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "job.py")
	if err := os.WriteFile(script, []byte("print('hello')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run, err := staging.Stage(context.Background(), store, staging.StageRequest{
		ScriptPath: script,
		Inputs:     []staging.Input{{ID: "0000", Pickle: []byte("\x80\x04}\x94.")}},
		Manifest:   staging.Manifest{Python: "python3", Slots: 1, LeaseTTL: staging.Duration(time.Minute)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return store, run
}
