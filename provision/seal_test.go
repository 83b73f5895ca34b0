package provision

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/slicerburst/burst/staging"
)

// A run sealed at submit passes the check until its script or manifest
// is rewritten in the store; a run sealed nowhere here is unknown.
func TestSealDetectsRewrites(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := staging.OpenFS(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "job.py")
	if err := os.WriteFile(script, []byte("print('hello')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run, err := staging.Stage(ctx, store, staging.StageRequest{
		ScriptPath: script,
		Inputs:     []staging.Input{{ID: "0000", Pickle: []byte("\x80\x04}\x94.")}},
		Manifest:   staging.Manifest{Python: "python3", Slots: 1, LeaseTTL: staging.Duration(time.Minute)},
	})
	if err != nil {
		t.Fatal(err)
	}
	seals := filepath.Join(dir, "seals")
	if ok, err := CheckSeal(ctx, run, seals); ok || err != nil {
		t.Fatalf("unsealed run: %v, %v", ok, err)
	}
	if err := SealRun(ctx, run, seals); err != nil {
		t.Fatal(err)
	}
	if ok, err := CheckSeal(ctx, run, seals); !ok || err != nil {
		t.Fatalf("sealed run: %v, %v", ok, err)
	}
	man, err := run.Manifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(ctx, run.ScriptKey(man.Script), []byte("import os; os.system('evil')\n")); err != nil {
		t.Fatal(err)
	}
	var te *TamperedError
	if _, err := CheckSeal(ctx, run, seals); !errors.As(err, &te) || te.What != "script" {
		t.Errorf("rewritten script: %v", err)
	}
	data, _, err := store.Get(ctx, run.ManifestKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(ctx, run.ManifestKey(), append(data, ' ')); err != nil {
		t.Fatal(err)
	}
	if _, err := CheckSeal(ctx, run, seals); !errors.As(err, &te) || te.What != "manifest" {
		t.Errorf("rewritten manifest: %v", err)
	}
}
