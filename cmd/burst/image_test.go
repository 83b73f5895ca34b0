package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/slicerburst/burst/images"
	"github.com/slicerburst/burst/internal/testmoto"
	"github.com/slicerburst/burst/staging"
)

const testSHA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestFindPackerNotInstalled: a PATH without packer.
func TestFindPackerNotInstalled(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := findPacker(context.Background(), "packer")
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "packer not found (packer): burst image build runs Packer 1.7 or later; install it (https://developer.hashicorp.com/packer/install), or pass --packer-bin PATH") {
		t.Fatalf("error %v", err)
	}

	// The same through the command, before anything is written or run.
	g, _, _ := testGlobals()
	err = runImageBuild(context.Background(), g, imageBuildOptions{region: "us-east-1", slicerSHA256: testSHA, packerBin: "packer"})
	if err == nil || !strings.Contains(err.Error(), "packer not found") {
		t.Fatalf("runImageBuild: %v", err)
	}
}

// TestFindPackerInstalled runs the packer on PATH: Debian's 1.6, which
// scripts/check-images.sh installs, is too old to build the image, and burst
// says so before starting anything; a newer one is accepted.
func TestFindPackerInstalled(t *testing.T) {
	path, err := exec.LookPath("packer")
	if err != nil {
		t.Fatal("no packer on PATH: run scripts/check-images.sh (or make check-config), which installs Debian's")
	}
	out, err := exec.Command(path, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	major, minor, patch, ok := images.ParsePackerVersion(string(out))
	if !ok {
		t.Fatalf("packer version said %q", out)
	}
	t.Logf("%s is packer %d.%d.%d", path, major, minor, patch)
	got, err := findPacker(context.Background(), "packer")
	if major == 1 && minor < 7 {
		want := fmt.Sprintf("%s is Packer %d.%d.%d, too old: building the image needs Packer 1.7 or later", path, major, minor, patch)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "Debian's packer package is 1.6") {
			t.Fatalf("error %v\nwant %q", err, want)
		}
		return
	}
	if err != nil || got != path {
		t.Fatalf("findPacker = %q, %v", got, err)
	}
}

func testGlobals() (*globalOptions, *strings.Builder, *strings.Builder) {
	out, errb := new(strings.Builder), new(strings.Builder)
	return &globalOptions{io: &ioStreams{Out: out, Err: errb}}, out, errb
}

// fakePacker writes a packer stand-in that reports version, logs its
// arguments (one call per line) to log, copies the template folder it is
// given to build into saved, and exits with code on build.
func fakePacker(t *testing.T, version string, code int) (bin, log, saved string) {
	t.Helper()
	dir := t.TempDir()
	bin, log, saved = filepath.Join(dir, "packer"), filepath.Join(dir, "calls.log"), filepath.Join(dir, "saved")
	script := fmt.Sprintf(`#!/bin/sh
echo "$*" >> %[1]q
case "$1" in
version) echo "Packer v%[2]s"; exit 0 ;;
init) test -f "$2/amazon.pkr.hcl" || { echo "no plugins file in $2" >&2; exit 3; }; exit 0 ;;
build) for last; do :; done; cp -R "$last" %[3]q; echo "building"; exit %[4]d ;;
esac
exit 9
`, log, version, saved, code)
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, log, saved
}

// TestImageBuildRunsPacker: with a packer stand-in, burst writes the
// embedded template, runs packer init then packer build with the variables,
// and removes the template after.
func TestImageBuildRunsPacker(t *testing.T) {
	bin, log, saved := fakePacker(t, "1.11.2", 0)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	g, out, errb := testGlobals()
	o := imageBuildOptions{region: "eu-west-1", slicerSHA256: strings.ToUpper(testSHA), packerBin: bin,
		subnet: "subnet-12345678", vars: []string{"volume_size=40"}}
	if err := runImageBuild(context.Background(), g, o); err != nil {
		t.Fatalf("%v\n%s", err, errb)
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	calls := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(calls) != 3 || calls[0] != "version" {
		t.Fatalf("packer calls:\n%s", data)
	}
	initArgs := strings.Fields(calls[1])
	if len(initArgs) != 2 || initArgs[0] != "init" || filepath.Base(initArgs[1]) != "plugins" {
		t.Fatalf("init call %q", calls[1])
	}
	tmpl := filepath.Dir(initArgs[1])
	want := fmt.Sprintf("build -var region=eu-west-1 -var slicer_sha256=%s -var subnet_id=subnet-12345678 -var volume_size=40 -var burst_binary=%s -var burst_protocol=%d %s", testSHA, self, staging.Protocol, tmpl)
	if calls[2] != want {
		t.Fatalf("build call\n%s\nwant\n%s", calls[2], want)
	}
	for _, f := range images.TemplateFiles() {
		if _, err := os.Stat(filepath.Join(saved, f)); err != nil {
			t.Errorf("packer build did not see %s: %v", f, err)
		}
	}
	if _, err := os.Stat(tmpl); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("template folder %s left behind: %v", tmpl, err)
	}
	if !strings.Contains(out.String(), "building") || !strings.Contains(out.String(), "built: burst image list --region eu-west-1") {
		t.Errorf("output:\n%s", out)
	}

	// A failed build is an error, and the template is still removed.
	bin, log, _ = fakePacker(t, "1.11.2", 1)
	g, _, _ = testGlobals()
	o.packerBin = bin
	err = runImageBuild(context.Background(), g, o)
	if err == nil || !strings.Contains(err.Error(), "packer build failed (exit status 1): see its output above") {
		t.Fatalf("failed build: %v", err)
	}
	data, _ = os.ReadFile(log)
	tmpl = filepath.Dir(strings.Fields(strings.Split(string(data), "\n")[1])[1])
	if _, err := os.Stat(tmpl); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("template folder %s left behind after a failure", tmpl)
	}

	// Too old: nothing run but packer version.
	bin, log, _ = fakePacker(t, "1.6.6", 0)
	o.packerBin = bin
	err = runImageBuild(context.Background(), g, o)
	if err == nil || !strings.Contains(err.Error(), "is Packer 1.6.6, too old") {
		t.Fatalf("old packer: %v", err)
	}
	if data, _ := os.ReadFile(log); strings.TrimSpace(string(data)) != "version" {
		t.Fatalf("old packer was run as %q", data)
	}
}

func TestImageBuildOptions(t *testing.T) {
	text := filepath.Join(t.TempDir(), "burst")
	if err := os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		o    imageBuildOptions
		want string
	}{
		{imageBuildOptions{}, "--slicer-sha256 is required"},
		{imageBuildOptions{slicerSHA256: "abc"}, `--slicer-sha256 "abc" is not a SHA-256`},
		{imageBuildOptions{slicerSHA256: testSHA, slicerVersion: "5.8"}, `--slicer-version "5.8" is not a release number`},
		{imageBuildOptions{slicerSHA256: testSHA, slicerVersion: "5.6.2"}, "--slicer-version needs --slicer-url"},
		{imageBuildOptions{slicerSHA256: testSHA, slicerURL: "http://x"}, "is not an https:// URL"},
		{imageBuildOptions{slicerSHA256: testSHA, subnet: "sn-1"}, `--subnet "sn-1" is not a subnet id`},
		{imageBuildOptions{slicerSHA256: testSHA, instanceType: "big"}, `--instance-type "big" is not an instance type`},
		{imageBuildOptions{slicerSHA256: testSHA, vars: []string{"novalue"}}, `--var "novalue": want NAME=VALUE`},
		{imageBuildOptions{slicerSHA256: testSHA, vars: []string{"region=x"}}, "--var region: use --region"},
		{imageBuildOptions{slicerSHA256: testSHA, vars: []string{"burst_protocol=7"}}, "--var burst_protocol: the image's protocol is always this burst's"},
		{imageBuildOptions{slicerSHA256: testSHA, region: "mars"}, `--region "mars" is not an AWS region name`},
		{imageBuildOptions{slicerSHA256: testSHA, region: "us-east-1", burstBinary: text}, "not a Linux program"},
		{imageBuildOptions{slicerSHA256: testSHA, region: "us-east-1", burstBinary: text + ".missing"}, "no such file"},
	}
	for _, tt := range tests {
		g, _, _ := testGlobals()
		tt.o.dryRun = true
		err := runImageBuild(context.Background(), g, tt.o)
		var ue usageError
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: error %v, want %q", tt.o, err, tt.want)
		} else if !errors.As(err, &ue) {
			t.Errorf("%+v: %v is not a usage error", tt.o, err)
		}
	}
}

// TestImageListMoto: burst image list against moto's EC2, as a user's
// shell would run it: region from the configuration file.
func TestImageListMoto(t *testing.T) {
	srv := testmoto.Start(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	ctx := context.Background()
	c := srv.Client(t)

	// No region anywhere.
	t.Setenv("BURST_CONFIG", filepath.Join(t.TempDir(), "none.yaml"))
	g, out, _ := testGlobals()
	if err := runImageList(ctx, g, imageListOptions{}); err == nil || !strings.Contains(err.Error(), "no AWS region: pass --region, run burst init, or set AWS_REGION") {
		t.Fatalf("no region: %v", err)
	}

	// The region from the configuration.
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	t.Setenv("BURST_CONFIG", cfgPath)
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(validConfig, "eu-west-1", testmoto.Region, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := runImageList(ctx, g, imageListOptions{}); err != nil {
		t.Fatal(err)
	}
	if want := "no burst images in us-east-1: burst image build builds one\n"; out.String() != want {
		t.Fatalf("empty: %q", out)
	}

	reg := func(name, slicer string, protocol int) string {
		r, err := c.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String(name), RootDeviceName: aws.String("/dev/sda1")})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{*r.ImageId}, Tags: []types.Tag{
			{Key: aws.String(images.TagImage), Value: aws.String(images.ImageWorker)},
			{Key: aws.String(images.TagSlicerVersion), Value: aws.String(slicer)},
			{Key: aws.String(images.TagProtocol), Value: aws.String(strconv.Itoa(protocol))},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return *r.ImageId
	}
	other := reg("burst-worker-next", "5.8.1", staging.Protocol+1)
	out.Reset()
	if err := runImageList(ctx, g, imageListOptions{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "AMI ") || !strings.HasPrefix(lines[1], other+"  burst-worker-next  5.8.1 ") ||
		!strings.Contains(lines[2], fmt.Sprintf("none is an available image of protocol %d", staging.Protocol)) {
		t.Fatalf("list:\n%s", out)
	}

	mine := reg("burst-worker", "5.8.1", staging.Protocol)
	out.Reset()
	if err := runImageList(ctx, g, imageListOptions{asJSON: true}); err != nil {
		t.Fatal(err)
	}
	var list []images.Image
	if err := json.Unmarshal([]byte(out.String()), &list); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(list) != 2 || (list[0].ID != mine && list[1].ID != mine) {
		t.Fatalf("JSON list: %+v", list)
	}
	out.Reset()
	if err := runImageList(ctx, g, imageListOptions{}); err != nil || strings.Contains(out.String(), "none is") {
		t.Fatalf("with a usable image: %v\n%s", err, out)
	}

	// --region over the configuration: another region has none.
	out.Reset()
	if err := runImageList(ctx, g, imageListOptions{region: "eu-west-1"}); err != nil || !strings.Contains(out.String(), "no burst images in eu-west-1") {
		t.Fatalf("--region eu-west-1: %v\n%s", err, out)
	}
}
