package provision

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// A run sealed at submit passes the check until its script or manifest
// is rewritten in the store; a run sealed nowhere here is unknown.
func TestSealDetectsRewrites(t *testing.T) {
	ctx := context.Background()
	store, run := stageTestRun(t)
	seals := filepath.Join(t.TempDir(), "seals")
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
