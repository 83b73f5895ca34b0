package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slicerburst/burst/provision"
)

const validConfig = `# a comment
region: eu-west-1
store: s3://burst-abc/team
instance_profile: burst-worker
security_groups: [sg-0123456789abcdef0]
subnets:
  - subnet-0123456789abcdef0
  - subnet-1234abcd
ami: ami-0123456789abcdef0
instance_types: [c6i.large, c7i.xlarge]
market: spot
budget: 12.5
`

func TestLoadCloudConfig(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "xdg"))
	t.Setenv("BURST_CONFIG", "")

	// No file: the error says how to make one, exit 2.
	_, err := loadCloudConfig()
	want := filepath.Join(dir, "xdg", "burst", "config.yaml")
	if !errors.Is(err, provision.ErrNoConfig) || !strings.Contains(err.Error(), "no configuration at "+want+": run burst init --terraform DIR (see README, Running on AWS)") {
		t.Fatalf("no file: %v", err)
	}
	if code := exitCode(&ioStreams{Err: new(strings.Builder)}, err); code != exitUsage {
		t.Fatalf("no file: exit %d, want %d", code, exitUsage)
	}

	// The XDG location, then $BURST_CONFIG over it.
	if err := os.MkdirAll(filepath.Dir(want), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(want, []byte(validConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadCloudConfig()
	if err != nil || c.Region != "eu-west-1" || c.Path != want {
		t.Fatalf("XDG file: %+v, %v", c, err)
	}
	other := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(other, []byte(strings.Replace(validConfig, "eu-west-1", "ap-southeast-2", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BURST_CONFIG", other)
	c, err = loadCloudConfig()
	if err != nil || c.Region != "ap-southeast-2" || c.Path != other {
		t.Fatalf("BURST_CONFIG: %+v, %v", c, err)
	}

	// A bad file is a usage error that names it and the line.
	if err := os.WriteFile(other, []byte(validConfig+"regoin: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = loadCloudConfig()
	var ue usageError
	if !errors.As(err, &ue) || !strings.HasPrefix(err.Error(), other+":13: unknown setting \"regoin\"") {
		t.Fatalf("bad file: %v", err)
	}
	if errors.Is(err, provision.ErrNoConfig) {
		t.Fatal("a bad file is reported as a missing one")
	}

	// A directory in its place.
	t.Setenv("BURST_CONFIG", dir)
	if _, err := loadCloudConfig(); err == nil || errors.Is(err, provision.ErrNoConfig) {
		t.Fatalf("directory: %v", err)
	}
}
