package provision

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/slicerburst/burst/staging"
)

// MaxUserData is the most bytes of user data EC2 accepts, counted on the
// raw script, before base64.
const MaxUserData = 16 << 10

// UserDataSpec is what an instance needs to know at boot to join a run.
// Every value is validated and shell-quoted by UserData: none of them can
// break out of the script.
type UserDataSpec struct {
	// Run is the run's location on S3: s3://BUCKET[/PREFIX]/runs/RUN.
	Run string
	// Region is exported as AWS_REGION (the run store's region).
	Region string
	// Deadline is the run's hard deadline: the instance schedules its own
	// shutdown (and, with the launch's shutdown behaviour, termination)
	// for it at boot. Required.
	Deadline time.Time
	// Workers is the number of tasks the worker runs at once; zero leaves
	// the worker's default, one per core.
	Workers int
	// Python is the interpreter the worker runs jobs with; empty leaves
	// the worker's default.
	Python string
	// BurstURL, when set, is an http(s) URL (a presigned S3 GET) of a
	// linux burst executable, downloaded at boot and used instead of the
	// burst installed in the image.
	BurstURL string
	// Env holds more environment variables for the worker, such as
	// AWS_ENDPOINT_URL_S3 for a store on a custom S3 endpoint. They are
	// written into the user data, which anyone with ec2:Describe* may
	// read: credentials are refused (the instance profile provides them).
	Env map[string]string
}

// envNameRe is what a shell accepts as a variable name.
var envNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// regionRe accepts region names as AWS spells them (us-east-1,
// us-gov-west-1), and the one-word names some emulators use.
var regionRe = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// secretEnv are variables that would carry credentials: user data is not
// a place for secrets.
var secretEnv = []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"}

// reservedEnv are variables the script itself sets or relies on.
var reservedEnv = []string{"AWS_REGION", "PATH", "HOME", "TMPDIR", "IFS", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4"}

// ValidRunURL checks that u is a run's location on S3,
// s3://BUCKET[/PREFIX]/runs/RUN, and returns the run id.
func ValidRunURL(u string) (string, error) {
	_, key, err := staging.ParseS3URL(u)
	if err != nil {
		return "", fmt.Errorf("run location: %w", err)
	}
	rest := "/" + key
	i := strings.LastIndex(rest, "/runs/")
	if i < 0 {
		return "", fmt.Errorf("run location %q: not s3://BUCKET/PREFIX/runs/RUN", u)
	}
	id := rest[i+len("/runs/"):]
	if !staging.ValidID(id) {
		return "", fmt.Errorf("run location %q: %q is not a run id", u, id)
	}
	if strings.HasSuffix(u, "/") {
		return "", fmt.Errorf("run location %q: trailing slash", u)
	}
	return id, nil
}

// printable rejects control characters (newlines, NUL, escapes) in a value
// that goes into the script: quoting would keep them harmless, but they
// are never meant, and NUL cannot be held by bash at all.
func printable(what, s string) error {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s %q: contains a control character", what, s)
		}
	}
	return nil
}

// validate checks the spec; see UserDataSpec.
func (s UserDataSpec) validate() error {
	if _, err := ValidRunURL(s.Run); err != nil {
		return err
	}
	if err := printable("run location", s.Run); err != nil {
		return err
	}
	if len(s.Region) > 32 || !regionRe.MatchString(s.Region) {
		return fmt.Errorf("region %q: not an AWS region name", s.Region)
	}
	if s.Deadline.IsZero() {
		return fmt.Errorf("no deadline: every instance must have one")
	}
	if y := s.Deadline.Year(); y < 2000 || y > 9999 {
		return fmt.Errorf("deadline %v: out of range", s.Deadline)
	}
	if s.Workers < 0 || s.Workers > 1<<16 {
		return fmt.Errorf("workers %d: must be 0 (one per core) to 65536", s.Workers)
	}
	if err := printable("python", s.Python); err != nil {
		return err
	}
	if strings.HasPrefix(s.Python, "-") {
		return fmt.Errorf("python %q: starts with '-'", s.Python)
	}
	if s.BurstURL != "" {
		if err := printable("burst URL", s.BurstURL); err != nil {
			return err
		}
		u, err := url.Parse(s.BurstURL)
		if err != nil {
			return fmt.Errorf("burst URL: %w", err)
		}
		if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
			return fmt.Errorf("burst URL %.60q...: must be an http(s) URL", s.BurstURL)
		}
	}
	for k, v := range s.Env {
		if !envNameRe.MatchString(k) || len(k) > 128 {
			return fmt.Errorf("environment variable name %q: invalid", k)
		}
		for _, name := range secretEnv {
			if strings.EqualFold(k, name) {
				return fmt.Errorf("environment variable %s: credentials never go into user data (the instance profile provides them)", k)
			}
		}
		for _, name := range reservedEnv {
			if k == name {
				return fmt.Errorf("environment variable %s: set by the boot script itself", k)
			}
		}
		if strings.HasPrefix(k, "BURST_BOOT_") || strings.HasPrefix(k, "BASH_FUNC_") {
			return fmt.Errorf("environment variable %s: reserved name", k)
		}
		if err := printable("environment variable "+k, v); err != nil {
			return err
		}
	}
	return nil
}

// shellQuote quotes s for bash: within single quotes nothing is special
// but the single quote itself, which is closed, escaped and reopened.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// armScript is the script that arms an instance's hard deadline: it
// schedules `shutdown -h +M` for the deadline, M whole minutes from the
// clock now (rounded down, at least 1), or, when the deadline has passed,
// calls `shutdown -h now` and exits 1. It holds the deadline as an
// absolute UTC instant, so it is right at any boot.
func armScript(deadline time.Time) string {
	return fmt.Sprintf(`#!/bin/sh
# burst: arms the run's hard deadline (%s); runs at every boot.
deadline=%d
now=$(date +%%s)
if [ "$now" -ge "$deadline" ]; then
  echo "burst-boot: the run's deadline has passed: shutting down now" >&2
  shutdown -h now
  exit 1
fi
minutes=$(( (deadline - now) / 60 ))
if [ "$minutes" -lt 1 ]; then minutes=1; fi
echo "burst-boot: deadline in $minutes min: scheduling shutdown" >&2
shutdown -h "+$minutes"
`, deadline.UTC().Format(time.RFC3339), deadline.Unix())
}

// UserData renders the boot script of a run's instances: a bash script that
//
//   - exports AWS_REGION (and spec.Env) and nothing secret;
//   - schedules `shutdown -h +M` for the deadline, M whole minutes from the
//     boot's clock (rounded down, at least 1), or shuts down at once when
//     the deadline has passed, and installs the same arming (armScript)
//     as a cloud-init per-boot script ($BURST_PERBOOT_DIR, by default
//     /var/lib/cloud/scripts/per-boot), so that every later boot re-arms
//     the deadline;
//   - uses the burst on PATH, or downloads spec.BurstURL (curl, with
//     retries) into a fresh temporary directory;
//   - runs `burst worker --ec2 [--workers N] [--python P] RUN`, its output
//     going to the script's stdout and stderr (which cloud-init keeps);
//   - calls `shutdown -h now` when it ends for any reason: the worker
//     exiting (whatever its status), a failed step, or a signal.
//
// It calls shutdown and burst through PATH, needs no root beyond what
// shutdown itself needs, and writes only under $TMPDIR (mktemp). It returns
// an error for an invalid spec, or if the script would exceed MaxUserData.
func UserData(spec UserDataSpec) (string, error) {
	if err := spec.validate(); err != nil {
		return "", fmt.Errorf("user data: %w", err)
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	runID, _ := ValidRunURL(spec.Run)

	w("#!/bin/bash\n")
	w("# burst: boot script of a worker instance of run %s (generated).\n", runID)
	w("# The instance shuts itself down (and so terminates) when the worker\n")
	w("# exits, when anything here fails, and at the run's deadline.\n")
	w("set -euo pipefail\n\n")
	w("log() { printf 'burst-boot: %%s\\n' \"$*\" >&2; }\n")
	w("BURST_BOOT_DONE=0\n")
	w("finish() {\n")
	w("  local status=$?\n")
	w("  trap - EXIT\n")
	w("  if [ \"$BURST_BOOT_DONE\" = 0 ]; then\n")
	w("    BURST_BOOT_DONE=1\n")
	w("    log \"exiting with status $status: shutting down now\"\n")
	w("    shutdown -h now || log \"shutdown -h now failed\"\n")
	w("  fi\n")
	w("  exit \"$status\"\n")
	w("}\n")
	w("trap finish EXIT\n")
	w("trap 'exit 129' HUP\ntrap 'exit 130' INT\ntrap 'exit 143' TERM\n\n")

	w("export AWS_REGION=%s\n", shellQuote(spec.Region))
	keys := make([]string, 0, len(spec.Env))
	for k := range spec.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w("export %s=%s\n", k, shellQuote(spec.Env[k]))
	}
	w("if [ -z \"${HOME:-}\" ]; then export HOME=/root; fi\n\n")

	w("# The run's hard deadline: shut down then, whatever happens. The\n")
	w("# arming script is also installed to run at every boot (cloud-init's\n")
	w("# per-boot scripts), so that a reboot never leaves the instance\n")
	w("# without its deadline; past it, the instance shuts down at once.\n")
	w("BURST_BOOT_DEADLINE=%d # %s\n", spec.Deadline.Unix(), spec.Deadline.UTC().Format(time.RFC3339))
	w("BURST_BOOT_ARM_DIR=\"${BURST_PERBOOT_DIR:-/var/lib/cloud/scripts/per-boot}\"\n")
	w("BURST_BOOT_ARM=\"$BURST_BOOT_ARM_DIR/burst-deadline.sh\"\n")
	w("if ! { mkdir -p \"$BURST_BOOT_ARM_DIR\" && printf '%%s' %s > \"$BURST_BOOT_ARM\" && chmod 755 \"$BURST_BOOT_ARM\"; } 2>/dev/null; then\n", shellQuote(armScript(spec.Deadline)))
	w("  log \"cannot install $BURST_BOOT_ARM: the deadline is armed for this boot only\"\n")
	w("  BURST_BOOT_ARM=$(mktemp \"${TMPDIR:-/tmp}/burst-deadline.XXXXXX\")\n")
	w("  printf '%%s' %s > \"$BURST_BOOT_ARM\"\n", shellQuote(armScript(spec.Deadline)))
	w("fi\n")
	w("if ! bash \"$BURST_BOOT_ARM\"; then\n")
	w("  BURST_BOOT_DONE=1\n")
	w("  exit 0\n")
	w("fi\n\n")

	if spec.BurstURL == "" {
		w("BURST_BOOT_BIN=burst\n")
		w("if ! command -v burst >/dev/null; then log 'no burst on PATH'; exit 127; fi\n")
	} else {
		w("BURST_BOOT_DIR=$(mktemp -d \"${TMPDIR:-/tmp}/burst-boot.XXXXXX\")\n")
		w("BURST_BOOT_BIN=\"$BURST_BOOT_DIR/burst\"\n")
		w("log 'downloading burst'\n")
		w("curl --fail --silent --show-error --location --retry 8 --retry-delay 3 --retry-connrefused --connect-timeout 10 --max-time 900 -o \"$BURST_BOOT_BIN\" %s\n", shellQuote(spec.BurstURL))
		w("chmod +x \"$BURST_BOOT_BIN\"\n")
	}
	w("\n")

	args := []string{"worker", "--ec2"}
	if spec.Workers > 0 {
		args = append(args, "--workers", strconv.Itoa(spec.Workers))
	}
	if spec.Python != "" {
		args = append(args, "--python", spec.Python)
	}
	args = append(args, spec.Run)
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(a)
	}
	w("log \"starting the worker\"\n")
	w("BURST_BOOT_STATUS=0\n")
	w("\"$BURST_BOOT_BIN\" %s || BURST_BOOT_STATUS=$?\n", strings.Join(quoted, " "))
	w("log \"the worker exited with status $BURST_BOOT_STATUS\"\n")
	w("exit \"$BURST_BOOT_STATUS\"\n")

	out := b.String()
	if len(out) > MaxUserData {
		return "", fmt.Errorf("user data: %d bytes, over EC2's limit of %d", len(out), MaxUserData)
	}
	return out, nil
}
