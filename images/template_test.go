package images

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// TestTemplateEmbedded: the template built into burst is this folder's,
// every file of it, byte for byte.
func TestTemplateEmbedded(t *testing.T) {
	var onDisk []string
	for _, pattern := range []string{"*.pkr.hcl", "plugins/*.pkr.hcl", "scripts/*.sh"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		onDisk = append(onDisk, m...)
	}
	slices.Sort(onDisk)
	files := TemplateFiles()
	slices.Sort(files)
	if !slices.Equal(files, onDisk) {
		t.Fatalf("embedded %v\non disk  %v", files, onDisk)
	}
	for _, want := range []string{"burst-slicer.pkr.hcl", "variables.pkr.hcl", "plugins/amazon.pkr.hcl", "scripts/install-slicer.sh", "scripts/smoke-test.sh"} {
		if !slices.Contains(files, want) {
			t.Errorf("%s is not embedded", want)
		}
	}

	dir := t.TempDir()
	if err := WriteTemplate(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		want, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s written differs from the folder's", name)
		}
		fi, _ := os.Stat(filepath.Join(dir, name))
		if exec := fi.Mode().Perm()&0o111 != 0; exec != (filepath.Ext(name) == ".sh") {
			t.Errorf("%s written with mode %v", name, fi.Mode().Perm())
		}
	}
}

// TestTemplateWrittenParses: packer itself loads the written template.
// Debian's packer 1.6 (scripts/check-images.sh installs it) checks the
// syntax only: it cannot build this template (see README.md).
func TestTemplateWrittenParses(t *testing.T) {
	packer, err := exec.LookPath("packer")
	if err != nil {
		t.Fatal("no packer on PATH: run scripts/check-images.sh (or make check-config), which installs it")
	}
	dir := t.TempDir()
	if err := WriteTemplate(dir); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(packer, "validate", "-syntax-only", dir)
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("packer validate -syntax-only: %v\n%s", err, out)
	}
}
