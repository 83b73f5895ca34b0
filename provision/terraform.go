package provision

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/slicerburst/burst/internal/oneline"
)

// TerraformOutputs maps the outputs of terraform/ (see outputs.tf) that
// ConfigFromTerraform reads to the settings they become.
var TerraformOutputs = []struct{ Output, Setting string }{
	{"region", "region"},
	{"bucket", "store"},
	{"instance_profile", "instance_profile"},
	{"security_group_id", "security_groups"},
	{"subnet_ids", "subnets"},
}

// inputErrorf is an *InputError: a problem with what the user gave.
func inputErrorf(format string, args ...any) error {
	return &InputError{fmt.Sprintf(format, args...)}
}

// ConfigFromTerraform runs terraform output -json in dir and maps the
// outputs of burst's account setup (terraform/) to settings. It changes
// nothing in dir. The result is not validated. A problem that is the
// user's to fix (no such directory, no terraform, outputs missing or of
// the wrong kind) is an *InputError; terraform failing is another error,
// with terraform's own message on one line.
func ConfigFromTerraform(ctx context.Context, bin, dir string) (Config, error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return Config{}, inputErrorf("--terraform %s: not a directory", dir)
	}
	prog, err := exec.LookPath(bin)
	if err != nil {
		return Config{}, inputErrorf("terraform not found (%s): install Terraform 1.5 or later (https://developer.hashicorp.com/terraform/install), or pass --terraform-bin PATH, or give the settings as flags (see burst init --help)", bin)
	}
	cmd := exec.CommandContext(ctx, prog, "-chdir="+dir, "output", "-json", "-no-color")
	// No prompts and no update check.
	cmd.Env = append(os.Environ(), "TF_INPUT=0", "CHECKPOINT_DISABLE=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return Config{}, ctx.Err()
		}
		return Config{}, fmt.Errorf("%s -chdir=%s output -json -no-color: %v: %s", bin, dir, err, terraformMessage(stderr.String()))
	}
	outs, err := parseTerraformOutputs(stdout.Bytes())
	if err != nil {
		return Config{}, fmt.Errorf("terraform output in %s: %w", dir, err)
	}
	if len(outs) == 0 {
		return Config{}, inputErrorf("terraform in %s has no outputs: apply burst's account setup there first (terraform init && terraform apply; see terraform/README.md)", dir)
	}
	var c Config
	var missing, wrong []string
	str := func(name string, dst *string) {
		v, ok := outs[name]
		if !ok {
			missing = append(missing, name)
			return
		}
		if err := json.Unmarshal(v, dst); err != nil || *dst == "" {
			wrong = append(wrong, name+" (want a non-empty string)")
		}
	}
	var bucket, sg string
	str("region", &c.Region)
	str("bucket", &bucket)
	str("instance_profile", &c.InstanceProfile)
	str("security_group_id", &sg)
	if v, ok := outs["subnet_ids"]; !ok {
		missing = append(missing, "subnet_ids")
	} else if err := json.Unmarshal(v, &c.Subnets); err != nil {
		wrong = append(wrong, "subnet_ids (want a list of strings)")
	}
	if len(missing) > 0 {
		return Config{}, inputErrorf("terraform in %s lacks the outputs %s: is it burst's terraform/ module, applied with this version of it?", dir, strings.Join(missing, ", "))
	}
	if len(wrong) > 0 {
		return Config{}, inputErrorf("terraform in %s: unexpected outputs %s", dir, strings.Join(wrong, ", "))
	}
	// The workers' role may use the bucket's runs/ and cas/ only, so the
	// store is the whole bucket.
	c.Store = "s3://" + bucket
	c.SecurityGroups = []string{sg}
	return c, nil
}

// parseTerraformOutputs decodes the output of terraform output -json: each
// output's name and its JSON value.
func parseTerraformOutputs(data []byte) (map[string]json.RawMessage, error) {
	var raw map[string]struct {
		Value     json.RawMessage `json:"value"`
		Sensitive bool            `json:"sensitive"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("not the JSON of terraform output -json: %v", err)
	}
	outs := make(map[string]json.RawMessage, len(raw))
	for name, o := range raw {
		if len(o.Value) == 0 {
			return nil, fmt.Errorf("output %s has no value", oneline.Quote(name))
		}
		outs[name] = o.Value
	}
	return outs, nil
}

// ansiRe matches terminal colour and style codes.
var ansiRe = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

// terraformMessage keeps the gist of terraform's error output: its lines
// with text, joined on one line, without box-drawing characters.
func terraformMessage(s string) string {
	var parts []string
	s = ansiRe.ReplaceAllString(s, "")
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(line), "│╷╵"))
		if line != "" {
			parts = append(parts, line)
		}
	}
	if len(parts) == 0 {
		return "no message"
	}
	msg := strings.Join(parts, " ")
	if len(msg) > 400 {
		msg = msg[:400] + "..."
	}
	return oneline.Clean(msg)
}

// WriteConfigFile writes a configuration file's data (see Config.Marshal)
// to path, mode 0600, creating its directory (0700). A reader never sees
// half a file.
func WriteConfigFile(path string, data []byte) error {
	return writeFileAtomic(path, data, 0o600)
}

// writeFileAtomic writes data to path with perm, creating its directory
// (0700), through a temporary file renamed into place so that a reader
// never sees half a file.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename, already gone
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
