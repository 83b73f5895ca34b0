package provision

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/slicerburst/burst/staging"
)

// A run's seal is what the submitting machine recorded of the run's code
// at submit: the SHA-256 of its manifest (which names the script, the
// interpreter and the shared files by hash) and of its script, kept on
// this machine where no instance can write. Before running a stored
// script here (repro, resume, a worker on this machine), the CLI checks
// the store still holds what it sealed: an instance that managed to
// rewrite a run could otherwise plant code that the laptop runs.
type runSeal struct {
	Run      string `json:"run"`
	Location string `json:"location"`
	Manifest string `json:"manifest_sha256"`
	Script   string `json:"script_sha256"`
}

// SealDir is where seals are kept: burst's folder in the user's
// configuration directory.
func SealDir() (string, error) {
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("finding where to keep run seals: %w", err)
	}
	return filepath.Join(d, "burst", "runs"), nil
}

// TamperedError is a run whose manifest or script in the store is not
// what this machine sealed at submit.
type TamperedError struct {
	Run  string
	What string // "manifest" or "script"
}

func (e *TamperedError) Error() string {
	return fmt.Sprintf("run %s: its %s in the store changed since it was submitted from here: refusing to run it (something with write access to the store rewrote it)", e.Run, e.What)
}

func (s *runSeal) path(dir string) string { return filepath.Join(dir, s.Run+".json") }

// readSeal hashes the run's manifest and script as the store holds them.
func readSeal(ctx context.Context, run *staging.Run) (*runSeal, error) {
	data, _, err := run.Store.Get(ctx, run.ManifestKey())
	if err != nil {
		return nil, fmt.Errorf("reading the manifest of run %s: %w", run.ID, err)
	}
	var m struct {
		Script string `json:"script"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("reading the manifest of run %s: %w", run.ID, err)
	}
	script, _, err := run.Store.Get(ctx, run.ScriptKey(m.Script))
	if err != nil {
		return nil, fmt.Errorf("reading the script of run %s: %w", run.ID, err)
	}
	ms, ss := sha256.Sum256(data), sha256.Sum256(script)
	return &runSeal{Run: run.ID, Location: run.Location(), Manifest: hex.EncodeToString(ms[:]), Script: hex.EncodeToString(ss[:])}, nil
}

// SealRun records the checksums of a freshly staged run in dir.
func SealRun(ctx context.Context, run *staging.Run, dir string) error {
	s, err := readSeal(ctx, run)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("sealing run %s: %w", run.ID, err)
	}
	tmp := s.path(dir) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("sealing run %s: %w", run.ID, err)
	}
	if err := os.Rename(tmp, s.path(dir)); err != nil {
		return fmt.Errorf("sealing run %s: %w", run.ID, err)
	}
	return nil
}

// CheckSeal compares the run's manifest and script in the store with the
// seal in dir. It returns false when this machine holds no seal of the
// run (it was submitted elsewhere, or before seals), and a
// *TamperedError when either changed.
func CheckSeal(ctx context.Context, run *staging.Run, dir string) (bool, error) {
	data, err := os.ReadFile((&runSeal{Run: run.ID}).path(dir))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the seal of run %s: %w", run.ID, err)
	}
	var want runSeal
	if err := json.Unmarshal(data, &want); err != nil {
		return false, fmt.Errorf("reading the seal of run %s: %w", run.ID, err)
	}
	if want.Location != run.Location() {
		return false, nil // another store's run of the same id
	}
	got, err := readSeal(ctx, run)
	if err != nil {
		return true, err
	}
	switch {
	case got.Manifest != want.Manifest:
		return true, &TamperedError{Run: run.ID, What: "manifest"}
	case got.Script != want.Script:
		return true, &TamperedError{Run: run.ID, What: "script"}
	}
	return true, nil
}
