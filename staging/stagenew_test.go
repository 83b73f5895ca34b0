package staging_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slicerburst/burst/staging"
	"github.com/slicerburst/burst/staging/pickle"
)

// A new run gets a fresh id named after its script, and its results
// folder, by default ./burst-results/ID, is absolute and in its manifest.
func TestStageNew(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	script := filepath.Join(dir, "offset.py")
	writeFile(t, script, []byte("print('hi')\n"))
	d := pickle.NewDict()
	d.Set("i", int64(0))
	p, err := pickle.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	req := staging.StageRequest{
		ScriptPath: script, Inputs: []staging.Input{{ID: "t0", Pickle: p}},
		Manifest: staging.Manifest{Retries: 1, LeaseTTL: staging.Duration(time.Minute), Slots: 1},
	}
	ctx := context.Background()
	store := newFS(t)

	run, man, out, err := staging.StageNew(ctx, store, req, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(run.ID, "offset-") || man.ID != run.ID {
		t.Errorf("run %q, manifest %q: want one id starting with the script's name", run.ID, man.ID)
	}
	if want := filepath.Join(dir, "burst-results", run.ID); out != want || man.OutDir != want {
		t.Errorf("results folder %q, manifest %q; want %q", out, man.OutDir, want)
	}
	if len(man.Tasks) != 1 {
		t.Errorf("manifest has %d tasks, want 1", len(man.Tasks))
	}

	run2, man2, out2, err := staging.StageNew(ctx, store, req, "mine")
	if err != nil {
		t.Fatal(err)
	}
	if run2.ID == run.ID {
		t.Errorf("two runs share the id %s", run.ID)
	}
	if want := filepath.Join(dir, "mine"); out2 != want || man2.OutDir != want {
		t.Errorf("results folder %q, manifest %q; want %q", out2, man2.OutDir, want)
	}

	req.ScriptPath = filepath.Join(dir, "missing.py")
	if _, _, _, err := staging.StageNew(ctx, store, req, ""); err == nil || !strings.HasPrefix(err.Error(), "staging the run: ") {
		t.Errorf("a missing script: err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "burst-results")); err == nil {
		t.Errorf("staging made the results folder; collecting does")
	}
}
