package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/slicerburst/burst/internal/testpy"
	"github.com/slicerburst/burst/provision"
)

// testTerraform is the terraform binary that the tests run: $BURST_TERRAFORM,
// else <module root>/.cache/bin/terraform, which scripts/terraform.sh (run by
// `make check-config`, and so by `make test`) builds. It is not checked
// here; terraformBin is.
func testTerraform(root string) string {
	if p := os.Getenv("BURST_TERRAFORM"); p != "" {
		return p
	}
	return filepath.Join(root, ".cache", "bin", "terraform")
}

// terraformBin returns the real terraform binary for a test, failing the
// test (never skipping it) when there is none.
func terraformBin(t *testing.T) string {
	t.Helper()
	p := testTerraform(testpy.ModuleRoot(t))
	if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("no terraform for the tests at %s: run scripts/terraform.sh (or make check-config), or set BURST_TERRAFORM", p)
	}
	// No CLI configuration file: a TF_CLI_CONFIG_FILE naming a missing
	// one only adds a warning, but the tests should not depend on it.
	t.Setenv("TF_CLI_CONFIG_FILE", "")
	return p
}

// moduleOutputs are the output names of the real terraform/ module.
func moduleOutputs(t *testing.T) map[string]bool {
	t.Helper()
	path := filepath.Join(testpy.ModuleRoot(t), "terraform", "outputs.tf")
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclsyntax.ParseConfig(src, path, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	names := map[string]bool{}
	for _, b := range f.Body.(*hclsyntax.Body).Blocks {
		if b.Type == "output" && len(b.Labels) == 1 {
			names[b.Labels[0]] = true
		}
	}
	return names
}

// writeState writes a Terraform state holding outputs (and no resources)
// into dir, as `terraform apply` of the module leaves it: `terraform output`
// reads it offline, with no provider.
func writeState(t *testing.T, dir string, outputs map[string]any) {
	t.Helper()
	type output struct {
		Value any `json:"value"`
		Type  any `json:"type"`
	}
	outs := map[string]output{}
	for name, v := range outputs {
		var typ any = "string"
		if l, ok := v.([]string); ok {
			elems := make([]any, len(l))
			for i := range elems {
				elems[i] = "string"
			}
			typ = []any{"tuple", elems}
		}
		outs[name] = output{v, typ}
	}
	state := map[string]any{
		"version":           4,
		"terraform_version": "1.5.7",
		"serial":            7,
		"lineage":           "5b8e1f2a-7c3d-4e5f-8a9b-0c1d2e3f4a5b",
		"outputs":           outs,
		"resources":         []any{},
		"check_results":     nil,
	}
	data, err := json.MarshalIndent(state, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "terraform.tfstate"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// appliedOutputs are the outputs of an applied terraform/ module.
func appliedOutputs() map[string]any {
	return map[string]any{
		"region":               "eu-west-1",
		"bucket":               "burst-20240101abcdef",
		"instance_profile":     "burst-worker",
		"instance_profile_arn": "arn:aws:iam::123456789012:instance-profile/burst-worker",
		"worker_role_arn":      "arn:aws:iam::123456789012:role/burst-worker",
		"security_group_id":    "sg-0123456789abcdef0",
		"subnet_ids":           []string{"subnet-0123456789abcdef0", "subnet-0fedcba9876543210"},
		"cli_policy_arn":       "arn:aws:iam::123456789012:policy/burst-cli",
	}
}

type initTest struct {
	g        *globalOptions
	out, err *strings.Builder
	path     string
}

func newInitTest(t *testing.T) *initTest {
	dir := t.TempDir()
	path := filepath.Join(dir, "conf", "burst", "config.yaml")
	t.Setenv("BURST_CONFIG", path)
	it := &initTest{out: new(strings.Builder), err: new(strings.Builder), path: path}
	it.g = &globalOptions{io: &ioStreams{Out: it.out, Err: it.err}}
	return it
}

func (it *initTest) run(o initOptions) error {
	it.out.Reset()
	it.err.Reset()
	return runInit(context.Background(), it.g, o)
}

// TestTerraformOutputNames: the outputs init reads are the module's, and the
// fixture below is a whole applied module's outputs.
func TestTerraformOutputNames(t *testing.T) {
	names := moduleOutputs(t)
	for _, m := range provision.TerraformOutputs {
		if !names[m.Output] {
			t.Errorf("init reads output %q, which terraform/outputs.tf does not define", m.Output)
		}
	}
	fixture := appliedOutputs()
	for name := range names {
		if _, ok := fixture[name]; !ok {
			t.Errorf("the test fixture lacks the module's output %q", name)
		}
	}
	if len(fixture) != len(names) {
		t.Errorf("the test fixture has %d outputs, the module %d", len(fixture), len(names))
	}
}

func TestInitTerraform(t *testing.T) {
	tf := terraformBin(t)
	it := newInitTest(t)
	dir := t.TempDir()
	writeState(t, dir, appliedOutputs())

	if err := it.run(initOptions{terraformDir: dir, terraformBin: tf}); err != nil {
		t.Fatalf("%v\n%s", err, it.err)
	}
	fi, err := os.Stat(it.path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(it.path)); di.Mode().Perm() != 0o700 {
		t.Errorf("config dir mode %v, want 0700", di.Mode().Perm())
	}
	c, err := loadCloudConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := provision.Config{
		Region:          "eu-west-1",
		Store:           "s3://burst-20240101abcdef",
		InstanceProfile: "burst-worker",
		SecurityGroups:  []string{"sg-0123456789abcdef0"},
		Subnets:         []string{"subnet-0123456789abcdef0", "subnet-0fedcba9876543210"},
		Path:            it.path,
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("config %+v\nwant %+v", c, want)
	}
	for _, s := range []string{"wrote " + it.path, "store: s3://burst-20240101abcdef", "next: burst image list"} {
		if !strings.Contains(it.out.String(), s) {
			t.Errorf("output lacks %q:\n%s", s, it.out)
		}
	}

	// Again: nothing to do, and the file is not rewritten.
	before, _ := os.ReadFile(it.path)
	if err := it.run(initOptions{terraformDir: dir, terraformBin: tf}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(it.out.String(), "up to date") {
		t.Errorf("second init: %s", it.out)
	}

	// The user sets an AMI by hand; the account setup moves to another
	// region. Without --force nothing changes, and init says what would.
	edited := strings.Replace(string(before), "region:", "ami: ami-0123456789abcdef0\nregion:", 1)
	if err := os.WriteFile(it.path, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	moved := appliedOutputs()
	moved["region"] = "us-west-2"
	moved["subnet_ids"] = []string{"subnet-11111111"}
	writeState(t, dir, moved)
	err = it.run(initOptions{terraformDir: dir, terraformBin: tf})
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "holds a different configuration: rerun with --force") {
		t.Fatalf("changed outputs without --force: %v", err)
	}
	for _, s := range []string{"region: eu-west-1 -> us-west-2", "subnets: [subnet-0123456789abcdef0, subnet-0fedcba9876543210] -> [subnet-11111111]"} {
		if !strings.Contains(it.err.String(), s) {
			t.Errorf("stderr lacks %q:\n%s", s, it.err)
		}
	}
	if strings.Contains(it.err.String(), "ami") {
		t.Errorf("the AMI set by hand is reported as changing:\n%s", it.err)
	}
	if now, _ := os.ReadFile(it.path); string(now) != edited {
		t.Fatal("init without --force changed the file")
	}

	// With --force: updated, the hand-set AMI kept.
	if err := it.run(initOptions{terraformDir: dir, terraformBin: tf, force: true}); err != nil {
		t.Fatal(err)
	}
	c, err = loadCloudConfig()
	if err != nil {
		t.Fatal(err)
	}
	if c.Region != "us-west-2" || !reflect.DeepEqual(c.Subnets, []string{"subnet-11111111"}) || c.AMI != "ami-0123456789abcdef0" {
		t.Fatalf("after --force: %+v", c)
	}
	if !strings.Contains(it.out.String(), "updated "+it.path) || !strings.Contains(it.out.String(), "region: eu-west-1 -> us-west-2") {
		t.Errorf("--force output:\n%s", it.out)
	}

	// A flag overrides an output, and is named when it is wrong.
	err = it.run(initOptions{terraformDir: dir, terraformBin: tf, force: true, store: "s3://burst-20240101abcdef/team"})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := loadCloudConfig(); c.Store != "s3://burst-20240101abcdef/team" {
		t.Fatalf("--store override: %+v", c)
	}
	bad := appliedOutputs()
	bad["security_group_id"] = "not-a-group"
	writeState(t, dir, bad)
	err = it.run(initOptions{terraformDir: dir, terraformBin: tf, force: true})
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), `security_groups (terraform output security_group_id): "not-a-group" is not a security group id`) {
		t.Fatalf("bad output: %v", err)
	}
}

func TestInitTerraformErrors(t *testing.T) {
	tf := terraformBin(t)
	it := newInitTest(t)

	check := func(name string, err error, want string) {
		t.Helper()
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%s: error %v is not a usage error", name, err)
		}
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line with %q", name, err, want)
		}
		if _, serr := os.Stat(it.path); serr == nil {
			t.Errorf("%s: a configuration was written", name)
		}
	}

	// Not applied yet: terraform has no state, so no outputs.
	empty := t.TempDir()
	if err := os.WriteFile(filepath.Join(empty, "main.tf"), []byte("output \"region\" {\n  value = \"us-east-1\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	check("not applied", it.run(initOptions{terraformDir: empty, terraformBin: tf}), "has no outputs: apply burst's account setup there first")

	// Another module's state: the missing outputs are named.
	other := t.TempDir()
	partial := appliedOutputs()
	delete(partial, "bucket")
	delete(partial, "subnet_ids")
	writeState(t, other, partial)
	check("missing outputs", it.run(initOptions{terraformDir: other, terraformBin: tf}), "lacks the outputs bucket, subnet_ids:")

	// An output of the wrong type.
	wrong := appliedOutputs()
	wrong["subnet_ids"] = "subnet-12345678"
	writeState(t, other, wrong)
	check("wrong type", it.run(initOptions{terraformDir: other, terraformBin: tf}), "unexpected outputs subnet_ids (want a list of strings)")

	check("no dir", it.run(initOptions{terraformDir: filepath.Join(other, "nope"), terraformBin: tf}), "not a directory")

	// terraform not installed: a PATH without it.
	t.Setenv("PATH", t.TempDir())
	check("no terraform", it.run(initOptions{terraformDir: other, terraformBin: "terraform"}), "terraform not found (terraform): install Terraform 1.5 or later")

	check("nothing given", it.run(initOptions{}), "burst init needs --terraform DIR, or the settings as flags")
}

// TestInitTerraformFails: terraform's own error, such as a backend that
// needs terraform init, is passed on in one line.
func TestInitTerraformFails(t *testing.T) {
	tf := terraformBin(t)
	it := newInitTest(t)
	dir := t.TempDir()
	src := "terraform {\n  backend \"local\" {\n    path = \"elsewhere.tfstate\"\n  }\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	err := it.run(initOptions{terraformDir: dir, terraformBin: tf})
	if err == nil || !strings.Contains(err.Error(), "output -json -no-color: exit status 1: Error: Backend initialization required") || strings.ContainsAny(err.Error(), "\n\x1b│") {
		t.Fatalf("error %v", err)
	}
	t.Logf("terraform's error: %v", err)
}

func TestInitFlags(t *testing.T) {
	it := newInitTest(t)
	o := initOptions{region: "us-east-2", store: "s3://my-bucket/burst", instanceProfile: "burst-worker",
		securityGroups: []string{"sg-12345678", "sg-87654321"}, subnets: []string{"subnet-12345678"}}
	if err := it.run(o); err != nil {
		t.Fatal(err)
	}
	c, err := loadCloudConfig()
	if err != nil {
		t.Fatal(err)
	}
	if c.Region != "us-east-2" || c.Store != "s3://my-bucket/burst" || len(c.SecurityGroups) != 2 {
		t.Fatalf("%+v", c)
	}

	// One flag on an existing configuration: a change, so --force.
	if err := it.run(initOptions{ami: "ami-12345678"}); err == nil || !strings.Contains(it.err.String(), "ami: (unset) -> ami-12345678") {
		t.Fatalf("--ami without --force: %v\n%s", err, it.err)
	}
	if err := it.run(initOptions{ami: "ami-12345678", force: true}); err != nil {
		t.Fatal(err)
	}
	if c, _ := loadCloudConfig(); c.AMI != "ami-12345678" || c.Region != "us-east-2" {
		t.Fatalf("after --ami: %+v", c)
	}

	// Too few flags for a new configuration: the missing one is named
	// by its flag.
	os.Remove(it.path)
	o.subnets = nil
	err = it.run(o)
	if err == nil || !strings.HasPrefix(err.Error(), "--subnet: missing") {
		t.Fatalf("no --subnet: %v", err)
	}
	o.subnets, o.store = []string{"subnet-12345678"}, "/local/dir"
	if err := it.run(o); err == nil || !strings.HasPrefix(err.Error(), `--store: "/local/dir" is not an s3:// URL`) {
		t.Fatalf("local --store: %v", err)
	}

	// A broken file is replaced only with --force.
	if err := os.WriteFile(it.path, []byte("regoin: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o.store = "s3://my-bucket"
	if err := it.run(o); err == nil || !strings.Contains(err.Error(), "exists but is not a valid configuration") {
		t.Fatalf("broken file: %v", err)
	}
	o.force = true
	if err := it.run(o); err != nil {
		t.Fatal(err)
	}
	if _, err := loadCloudConfig(); err != nil {
		t.Fatal(err)
	}
}
