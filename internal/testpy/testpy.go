// Package testpy finds the Python interpreter that tests run jobs with:
// $BURST_TEST_PYTHON, else the project virtualenv that
// scripts/setup-python.sh creates (with numpy, vtk and SimpleITK).
package testpy

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Python returns the interpreter's path, failing the test (never skipping
// it) when there is none.
func Python(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("BURST_TEST_PYTHON"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("BURST_TEST_PYTHON=%s: %v", p, err)
		}
		return p
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, ".venv", "bin", "python")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no Python for the tests: run scripts/setup-python.sh (or make test), or set BURST_TEST_PYTHON (%v)", err)
	}
	return p
}

// ModuleRoot returns the directory holding go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}
