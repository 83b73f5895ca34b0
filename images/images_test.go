package images_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"github.com/slicerburst/burst/staging"
)

// template is a parsed packer folder: its top-level blocks from every
// *.pkr.hcl file, and the variables and locals they define, evaluated with
// the variables' defaults.
type template struct {
	dir    string
	blocks []*hclsyntax.Block
	ctx    *hcl.EvalContext
}

// readTemplate reads the *.pkr.hcl files of dir, by name.
func readTemplate(t *testing.T, dir string) map[string]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.pkr.hcl"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no *.pkr.hcl files in %s (%v)", dir, err)
	}
	files := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Base(p)] = string(b)
	}
	return files
}

// parseTemplate parses files as a packer folder at dir. Variables without a
// default get the values in required.
func parseTemplate(dir string, files map[string]string, required map[string]string) (*template, error) {
	tp := &template{dir: dir}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		f, diags := hclsyntax.ParseConfig([]byte(files[name]), name, hcl.InitialPos)
		if diags.HasErrors() {
			return nil, diags
		}
		tp.blocks = append(tp.blocks, f.Body.(*hclsyntax.Body).Blocks...)
	}

	tp.ctx = &hcl.EvalContext{
		Variables: map[string]cty.Value{
			"path": cty.ObjectVal(map[string]cty.Value{"root": cty.StringVal(dir)}),
		},
		Functions: map[string]function.Function{
			"formatdate":    stdlib.FormatDateFunc,
			"regex_replace": stdlib.RegexReplaceFunc,
			"substr":        stdlib.SubstrFunc,
			"timestamp": function.New(&function.Spec{
				Type: function.StaticReturnType(cty.String),
				Impl: func([]cty.Value, cty.Type) (cty.Value, error) {
					return cty.StringVal(time.Now().UTC().Format(time.RFC3339)), nil
				},
			}),
		},
	}

	vars := map[string]cty.Value{}
	for _, b := range tp.all("variable") {
		name := b.Labels[0]
		if def, ok := b.Body.Attributes["default"]; ok {
			v, diags := def.Expr.Value(tp.ctx)
			if diags.HasErrors() {
				return nil, diags
			}
			vars[name] = v
		} else if v, ok := required[name]; ok {
			vars[name] = cty.StringVal(v)
		} else {
			return nil, fmt.Errorf("variable %q has no default and no value", name)
		}
	}
	tp.ctx.Variables["var"] = cty.ObjectVal(vars)

	// Locals may refer to each other: evaluate until nothing more resolves.
	pending := map[string]hcl.Expression{}
	for _, b := range tp.all("locals") {
		for name, a := range b.Body.Attributes {
			pending[name] = a.Expr
		}
	}
	locals := map[string]cty.Value{}
	for len(pending) > 0 {
		progress := false
		tp.ctx.Variables["local"] = cty.ObjectVal(locals)
		for name, expr := range pending {
			v, diags := expr.Value(tp.ctx)
			if diags.HasErrors() {
				continue
			}
			locals[name] = v
			delete(pending, name)
			progress = true
		}
		if !progress {
			return nil, fmt.Errorf("cannot evaluate locals %v", keys(pending))
		}
	}
	tp.ctx.Variables["local"] = cty.ObjectVal(locals)
	return tp, nil
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// all returns the top-level blocks of a type.
func (tp *template) all(typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range tp.blocks {
		if b.Type == typ {
			out = append(out, b)
		}
	}
	return out
}

// value evaluates the attribute name of body; ok is false when it is absent.
func (tp *template) value(body *hclsyntax.Body, name string) (v cty.Value, ok bool, err error) {
	a, ok := body.Attributes[name]
	if !ok {
		return cty.NilVal, false, nil
	}
	v, diags := a.Expr.Value(tp.ctx)
	if diags.HasErrors() {
		return cty.NilVal, true, diags
	}
	return v, true, nil
}

// str is value for an attribute that must be a known string; "" when absent.
func (tp *template) str(body *hclsyntax.Body, name string) string {
	v, ok, err := tp.value(body, name)
	if !ok || err != nil || v.IsNull() || !v.IsKnown() {
		return ""
	}
	switch v.Type() {
	case cty.String:
		return v.AsString()
	case cty.Bool:
		return strconv.FormatBool(v.True())
	case cty.Number:
		return v.AsBigFloat().Text('f', -1)
	}
	return ""
}

func nested(body *hclsyntax.Body, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range body.Blocks {
		if b.Type == typ {
			out = append(out, b)
		}
	}
	return out
}

// problems lists every way the template falls short of what a burst worker
// image must be. A template with none is one burst can trust.
func problems(tp *template) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }

	sources := tp.all("source")
	var src *hclsyntax.Body
	for _, b := range sources {
		if len(b.Labels) == 2 && b.Labels[0] == "amazon-ebs" {
			src = b.Body
		}
	}
	if src == nil {
		return []string{"no amazon-ebs source"}
	}

	// Base image: the newest Ubuntu 22.04 amd64 from Canonical.
	if f := nested(src, "source_ami_filter"); len(f) != 1 {
		add("no source_ami_filter")
	} else {
		filters, _, _ := tp.value(f[0].Body, "filters")
		if !filters.Type().IsObjectType() || !filters.Type().HasAttribute("name") ||
			filters.GetAttr("name").AsString() != "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*" {
			add("source_ami_filter does not select Ubuntu 22.04 amd64 server images")
		}
		if owners, _, _ := tp.value(f[0].Body, "owners"); owners.IsNull() || owners.LengthInt() != 1 ||
			owners.Index(cty.NumberIntVal(0)).AsString() != "099720109477" {
			add("source_ami_filter owners is not Canonical (099720109477) alone")
		}
		if tp.str(f[0].Body, "most_recent") != "true" {
			add("source_ami_filter does not take the most recent image")
		}
	}

	// IMDSv2 only, on the build instance and on the image.
	if m := nested(src, "metadata_options"); len(m) != 1 {
		add("no metadata_options block: the build instance would accept IMDSv1")
	} else {
		if got := tp.str(m[0].Body, "http_tokens"); got != "required" {
			add("metadata_options.http_tokens is %q, not \"required\": IMDSv1 would be allowed", got)
		}
		if got := tp.str(m[0].Body, "http_endpoint"); got != "enabled" {
			add("metadata_options.http_endpoint is %q, not \"enabled\"", got)
		}
	}
	if got := tp.str(src, "imds_support"); got != "v2.0" {
		add("imds_support is %q, not \"v2.0\": instances from the image would accept IMDSv1", got)
	}

	// An encrypted root volume that goes away with the instance.
	var root *hclsyntax.Body
	for _, b := range nested(src, "launch_block_device_mappings") {
		if tp.str(b.Body, "device_name") == "/dev/sda1" {
			root = b.Body
		}
	}
	if root == nil {
		add("no launch_block_device_mappings for the root device /dev/sda1")
	} else {
		if tp.str(root, "encrypted") != "true" {
			add("the root volume is not encrypted")
		}
		if tp.str(root, "delete_on_termination") != "true" {
			add("the root volume is not deleted on termination")
		}
		if got := tp.str(root, "volume_type"); got != "gp3" {
			add("the root volume type is %q, not gp3", got)
		}
	}

	// The tags burst finds the image by, on the image and its snapshot.
	want := map[string]string{
		"burst:image":          "worker",
		"burst:slicer-version": tp.str(tp.variable("slicer_version"), "default"),
		"burst:protocol":       tp.str(tp.variable("burst_protocol"), "default"),
	}
	for _, attr := range []string{"tags", "snapshot_tags"} {
		tags, ok, err := tp.value(src, attr)
		switch {
		case !ok || err != nil || tags.IsNull() || !tags.CanIterateElements():
			add("%s is missing or cannot be evaluated (%v)", attr, err)
			continue
		}
		got := map[string]string{}
		for it := tags.ElementIterator(); it.Next(); {
			k, v := it.Element()
			if v.Type() == cty.String && v.IsKnown() {
				got[k.AsString()] = v.AsString()
			}
		}
		for _, k := range keys(want) {
			if got[k] != want[k] || want[k] == "" {
				add("%s[%q] is %q, want %q", attr, k, got[k], want[k])
			}
		}
		if got["Name"] == "" {
			add("%s has no Name", attr)
		}
	}

	// Provisioners: the Slicer checksum reaches the install script, and the
	// smoke test comes last.
	builds := tp.all("build")
	if len(builds) != 1 {
		return append(out, fmt.Sprintf("%d build blocks, want 1", len(builds)))
	}
	provs := nested(builds[0].Body, "provisioner")
	if len(provs) == 0 {
		return append(out, "no provisioners")
	}
	last := provs[len(provs)-1]
	if last.Labels[0] != "shell" || filepath.Base(tp.str(last.Body, "script")) != "smoke-test.sh" {
		add("the last provisioner is %s %q, not the smoke test", last.Labels[0], tp.str(last.Body, "script"))
	}
	installs := 0
	for _, p := range provs {
		if filepath.Base(tp.str(p.Body, "script")) != "install-slicer.sh" {
			continue
		}
		installs++
		env, _, _ := tp.value(p.Body, "environment_vars")
		sha := ""
		if !env.IsNull() && env.CanIterateElements() {
			for it := env.ElementIterator(); it.Next(); {
				_, v := it.Element()
				if s, ok := strings.CutPrefix(v.AsString(), "SLICER_SHA256="); ok {
					sha = s
				}
			}
		}
		if want := tp.ctx.Variables["var"].GetAttr("slicer_sha256").AsString(); sha == "" || sha != want {
			add("install-slicer.sh gets SLICER_SHA256=%q, not var.slicer_sha256", sha)
		}
	}
	if installs != 1 {
		add("%d provisioners run install-slicer.sh, want 1", installs)
	}
	return out
}

// variable returns the body of a variable block, or an empty body.
func (tp *template) variable(name string) *hclsyntax.Body {
	for _, b := range tp.all("variable") {
		if b.Labels[0] == name {
			return b.Body
		}
	}
	return &hclsyntax.Body{}
}

const testSHA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func loadImages(t *testing.T, files map[string]string) *template {
	t.Helper()
	tp, err := parseTemplate(".", files, map[string]string{"slicer_sha256": testSHA})
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func TestTemplateMeetsWorkerImageRequirements(t *testing.T) {
	tp := loadImages(t, readTemplate(t, "."))
	for _, p := range problems(tp) {
		t.Error(p)
	}
}

func TestSlicerChecksumIsRequiredAndVerified(t *testing.T) {
	tp := loadImages(t, readTemplate(t, "."))
	if _, ok := tp.variable("slicer_sha256").Attributes["default"]; ok {
		t.Error("variable slicer_sha256 has a default: a build must name the checksum of the Slicer it installs")
	}

	b, err := os.ReadFile(filepath.Join("scripts", "install-slicer.sh"))
	if err != nil {
		t.Fatal(err)
	}
	script := string(b)
	check := strings.Index(script, "sha256sum -c")
	unpack := strings.Index(script, "tar -x")
	switch {
	case check < 0:
		t.Error("install-slicer.sh does not verify the download with sha256sum -c")
	case unpack < 0:
		t.Error("install-slicer.sh does not unpack Slicer with tar -x")
	case unpack < check:
		t.Error("install-slicer.sh unpacks Slicer before verifying its checksum")
	}
	if !strings.Contains(script, "set -euo pipefail") {
		t.Error("install-slicer.sh does not set -euo pipefail")
	}
}

func TestProtocolTagMatchesBurst(t *testing.T) {
	tp := loadImages(t, readTemplate(t, "."))
	got := tp.str(tp.variable("burst_protocol"), "default")
	if want := strconv.Itoa(staging.Protocol); got != want {
		t.Errorf("burst_protocol defaults to %q, but this burst speaks protocol %s: images built from this tree would be tagged for the wrong workers", got, want)
	}
}

func TestScriptsExist(t *testing.T) {
	tp := loadImages(t, readTemplate(t, "."))
	for _, p := range nested(tp.all("build")[0].Body, "provisioner") {
		if s := tp.str(p.Body, "script"); s != "" {
			if _, err := os.Stat(s); err != nil {
				t.Errorf("provisioner script: %v", err)
			}
		}
	}
}

func TestAmazonPluginIsDeclared(t *testing.T) {
	tp, err := parseTemplate(".", readTemplate(t, "plugins"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var source string
	for _, p := range tp.all("packer") {
		for _, rp := range nested(p.Body, "required_plugins") {
			if amazon, ok, err := tp.value(rp.Body, "amazon"); ok && err == nil && amazon.Type().IsObjectType() &&
				amazon.Type().HasAttribute("source") {
				source = amazon.GetAttr("source").AsString()
			}
		}
	}
	if source != "github.com/hashicorp/amazon" {
		t.Errorf("plugins/ requires amazon from %q, want github.com/hashicorp/amazon", source)
	}
}

// A template that leaves IMDSv1 open is flagged.
func TestOptionalIMDSTokensAreFlagged(t *testing.T) {
	const snippet = `
source "amazon-ebs" "worker" {
  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "optional"
  }
}
`
	tp, err := parseTemplate(".", map[string]string{"snippet.pkr.hcl": snippet}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !hasProblem(problems(tp), `http_tokens is "optional"`) {
		t.Errorf("http_tokens = \"optional\" is not flagged; problems: %q", problems(tp))
	}
}

// Each weakening of the real template is caught by problems.
func TestWeakenedTemplatesAreFlagged(t *testing.T) {
	const main = "burst-slicer.pkr.hcl"
	cases := []struct {
		name   string
		weaken func(t *testing.T, src string) string
		want   string
	}{
		{"IMDSv1 allowed", replace(`http_tokens\s*=\s*"required"`, `http_tokens = "optional"`), `http_tokens is "optional"`},
		{"no metadata options", replace(`(?s)metadata_options\s*\{.*?\}`, ``), `no metadata_options block`},
		{"image allows IMDSv1", replace(`imds_support\s*=\s*"v2.0"`, ``), `imds_support is ""`},
		{"unencrypted root", replace(`encrypted\s*=\s*true`, `encrypted = false`), `root volume is not encrypted`},
		{"untagged snapshot", replace(`snapshot_tags\s*=\s*local.image_tags`, `snapshot_tags = { Name = "x" }`), `snapshot_tags["burst:image"]`},
		{"protocol tag dropped", replace(`"burst:protocol"\s*=\s*var.burst_protocol`, ``), `tags["burst:protocol"]`},
		{"checksum not passed", replace(`"SLICER_SHA256=\$\{var.slicer_sha256\}",`, ``), `gets SLICER_SHA256=""`},
		{"smoke test not last", moveSmokeTestFirst, `not the smoke test`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := readTemplate(t, ".")
			files[main] = c.weaken(t, files[main])
			if got := problems(loadImages(t, files)); !hasProblem(got, c.want) {
				t.Errorf("not flagged (want a problem containing %q); problems: %q", c.want, got)
			}
		})
	}
}

// replace returns an edit of the template that replaces pattern, and fails
// the test when the template no longer contains it.
func replace(pattern, with string) func(*testing.T, string) string {
	re := regexp.MustCompile(pattern)
	return func(t *testing.T, src string) string {
		t.Helper()
		if !re.MatchString(src) {
			t.Fatalf("pattern %s no longer matches the template", pattern)
		}
		return re.ReplaceAllString(src, with)
	}
}

// moveSmokeTestFirst makes the smoke-test provisioner the first in the build.
func moveSmokeTestFirst(t *testing.T, src string) string {
	t.Helper()
	start := strings.Index(src, "  provisioner \"shell\" {\n    script = \"${path.root}/scripts/smoke-test.sh\"")
	if start < 0 {
		t.Fatal("smoke-test provisioner not found")
	}
	end := strings.Index(src[start:], "\n  }\n")
	if end < 0 {
		t.Fatal("end of smoke-test provisioner not found")
	}
	block := src[start : start+end+len("\n  }\n")]
	rest := src[:start] + src[start+len(block):]
	at := strings.Index(rest, "  provisioner ")
	return rest[:at] + block + "\n" + rest[at:]
}

func hasProblem(problems []string, want string) bool {
	for _, p := range problems {
		if strings.Contains(p, want) {
			return true
		}
	}
	return false
}
