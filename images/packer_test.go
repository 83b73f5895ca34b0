package images

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestParsePackerVersion(t *testing.T) {
	tests := []struct {
		out                 string
		major, minor, patch int
		ok                  bool
	}{
		{"Packer v1.6.6\n", 1, 6, 6, true},
		{"Packer v1.11.2\n\nYour version of Packer is out of date! The latest version\nis 1.12.0. You can update by downloading from www.packer.io/downloads\n", 1, 11, 2, true},
		{"Packer v1.7.0-dev\n", 1, 7, 0, true},
		{"1.9.4\n", 0, 0, 0, false},
		{"Usage: packer [--version] [--help] <command> [<args>]\n", 0, 0, 0, false},
		{"Packer v99999999999999999999.1.1\n", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	}
	for _, tt := range tests {
		ma, mi, pa, ok := ParsePackerVersion(tt.out)
		if ok != tt.ok || ma != tt.major || mi != tt.minor || pa != tt.patch {
			t.Errorf("ParsePackerVersion(%q) = %d.%d.%d %v, want %d.%d.%d %v", tt.out, ma, mi, pa, ok, tt.major, tt.minor, tt.patch, tt.ok)
		}
	}
}

// TestCheckLinuxAMD64: a script is refused, and this test binary is taken
// when it is a linux/amd64 program.
func TestCheckLinuxAMD64(t *testing.T) {
	script := filepath.Join(t.TempDir(), "burst")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := CheckLinuxAMD64(script); err == nil || !strings.Contains(err.Error(), "not a Linux program") {
		t.Fatalf("script: %v", err)
	}
	if err := CheckLinuxAMD64(script + ".missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	err = CheckLinuxAMD64(self)
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		if err != nil {
			t.Fatalf("this test binary: %v", err)
		}
	} else if err == nil {
		t.Fatalf("this %s/%s test binary was taken", runtime.GOOS, runtime.GOARCH)
	}
}
