package provision

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// bootNow is the clock of the fake `date` in the boot tests.
const bootNow = 1_900_000_000

// bootEnv is a directory with fake burst, shutdown, curl and date on PATH,
// each recording its arguments, where a rendered boot script is run for
// real with bash, as a non-root user, the way the fleet simulator does.
type bootEnv struct {
	t   *testing.T
	dir string
}

func newBootEnv(t *testing.T) *bootEnv {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatalf("bash is needed to run boot scripts: %v", err)
	}
	e := &bootEnv{t: t, dir: t.TempDir()}
	for _, d := range []string{"bin", "home", "tmp", "work"} {
		if err := os.Mkdir(filepath.Join(e.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.script("shutdown", `echo "$*" >> "$BOOT_LOG/shutdown"`+"\n")
	e.script("burst", `printf '%s\n' "$@" > "$BOOT_LOG/burst.args"; echo "$0" > "$BOOT_LOG/burst.path"; echo worker running; exit "${FAKE_BURST_STATUS:-0}"`+"\n")
	// curl writes a fake burst to the -o path: the downloaded one records
	// under another name, so the test sees which burst ran.
	e.script("curl", `printf '%s\n' "$@" > "$BOOT_LOG/curl.args"
out=
while [ $# -gt 0 ]; do
  if [ "$1" = -o ]; then out=$2; shift; fi
  shift
done
[ -n "${FAKE_CURL_FAIL:-}" ] && exit 22
printf '#!/bin/bash\nprintf "%%s\\n" "$@" > "$BOOT_LOG/burst.args"; echo "$0" > "$BOOT_LOG/burst.path"; exit "${FAKE_BURST_STATUS:-0}"\n' > "$out"
`)
	e.script("date", `if [ "$1" = +%s ]; then echo `+strconv.Itoa(bootNow)+`; else exec /bin/date "$@"; fi`+"\n")
	return e
}

func (e *bootEnv) script(name, body string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.dir, "bin", name), []byte("#!/bin/bash\n"+body), 0o755); err != nil {
		e.t.Fatal(err)
	}
}

// run runs script with bash in the work directory, the fakes first on
// PATH, and returns its exit status and combined output.
func (e *bootEnv) run(script string, env ...string) (int, string) {
	e.t.Helper()
	path := filepath.Join(e.dir, "boot.sh")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command("bash", path)
	cmd.Dir = filepath.Join(e.dir, "work")
	cmd.Env = append([]string{
		"PATH=" + filepath.Join(e.dir, "bin") + ":/usr/bin:/bin",
		"HOME=" + filepath.Join(e.dir, "home"),
		"TMPDIR=" + filepath.Join(e.dir, "tmp"),
		"BOOT_LOG=" + e.dir,
		"BURST_PERBOOT_DIR=" + filepath.Join(e.dir, "per-boot"),
	}, env...)
	out, err := cmd.CombinedOutput()
	var xe *exec.ExitError
	switch {
	case errors.As(err, &xe):
		return xe.ExitCode(), string(out)
	case err != nil:
		e.t.Fatalf("running the boot script: %v", err)
	}
	return 0, string(out)
}

func (e *bootEnv) read(name string) string {
	b, err := os.ReadFile(filepath.Join(e.dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

func (e *bootEnv) shutdowns() []string {
	s := strings.TrimSpace(e.read("shutdown"))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func testUserDataSpec() UserDataSpec {
	return UserDataSpec{
		Run:      "s3://my-bucket/burst/runs/offset-20261126-093012-1a2b",
		Region:   "eu-west-1",
		Deadline: time.Unix(bootNow+2*3600+30, 0),
	}
}

func TestUserDataRunsWorkerThenShutsDown(t *testing.T) {
	for _, status := range []int{0, 3} {
		t.Run("exit"+strconv.Itoa(status), func(t *testing.T) {
			e := newBootEnv(t)
			spec := testUserDataSpec()
			spec.Workers = 6
			spec.Python = "/opt/slicer/bin/PythonSlicer"
			script, err := UserData(spec)
			if err != nil {
				t.Fatal(err)
			}
			code, out := e.run(script, "FAKE_BURST_STATUS="+strconv.Itoa(status))
			if code != status {
				t.Errorf("script exit status %d, want the worker's %d; output:\n%s", code, status, out)
			}
			want := "worker\n--ec2\n--workers\n6\n--python\n/opt/slicer/bin/PythonSlicer\ns3://my-bucket/burst/runs/offset-20261126-093012-1a2b\n"
			if got := e.read("burst.args"); got != want {
				t.Errorf("worker args:\n%s\nwant:\n%s", got, want)
			}
			if got := strings.TrimSpace(e.read("burst.path")); filepath.Base(got) != "burst" || !strings.HasPrefix(got, filepath.Join(e.dir, "bin")) {
				t.Errorf("ran %q, want the burst on PATH", got)
			}
			// 2 h 30 s away: 120 whole minutes, then now once the worker exits.
			if got, want := e.shutdowns(), []string{"-h +120", "-h now"}; strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("shutdown calls %q, want %q", got, want)
			}
			if !strings.Contains(out, "worker running") {
				t.Errorf("the worker's output is not the script's:\n%s", out)
			}
			if strings.Contains(script, "sudo") || strings.Contains(script, "/sbin/") || strings.Contains(script, "systemctl") {
				t.Errorf("script uses root-only paths or tools:\n%s", script)
			}
		})
	}
}

func TestUserDataDefaultsOmitFlags(t *testing.T) {
	e := newBootEnv(t)
	script, err := UserData(testUserDataSpec())
	if err != nil {
		t.Fatal(err)
	}
	if code, out := e.run(script); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if got, want := e.read("burst.args"), "worker\n--ec2\ns3://my-bucket/burst/runs/offset-20261126-093012-1a2b\n"; got != want {
		t.Errorf("worker args %q, want %q", got, want)
	}
	if !strings.Contains(script, "export AWS_REGION='eu-west-1'\n") {
		t.Errorf("no AWS_REGION export in:\n%s", script)
	}
	for _, secret := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} {
		if strings.Contains(script, secret) {
			t.Errorf("script mentions %s", secret)
		}
	}
}

func TestUserDataDeadlineArithmetic(t *testing.T) {
	for _, tc := range []struct {
		ahead  int64 // deadline - boot clock, seconds
		want   []string
		worker bool
	}{
		{3600, []string{"-h +60", "-h now"}, true},
		{3599, []string{"-h +59", "-h now"}, true},
		{61, []string{"-h +1", "-h now"}, true},
		{59, []string{"-h +1", "-h now"}, true}, // at least one minute
		{1, []string{"-h +1", "-h now"}, true},
		{0, []string{"-h now"}, false}, // passed: at once, no worker
		{-7200, []string{"-h now"}, false},
	} {
		t.Run(strconv.FormatInt(tc.ahead, 10), func(t *testing.T) {
			e := newBootEnv(t)
			spec := testUserDataSpec()
			spec.Deadline = time.Unix(bootNow+tc.ahead, 0)
			script, err := UserData(spec)
			if err != nil {
				t.Fatal(err)
			}
			code, out := e.run(script)
			if code != 0 {
				t.Errorf("exit %d:\n%s", code, out)
			}
			if got := e.shutdowns(); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("shutdown calls %q, want %q\n%s", got, tc.want, out)
			}
			if ran := e.read("burst.args") != ""; ran != tc.worker {
				t.Errorf("worker ran: %v, want %v", ran, tc.worker)
			}
		})
	}
}

func TestUserDataDownloadsBurst(t *testing.T) {
	e := newBootEnv(t)
	spec := testUserDataSpec()
	spec.BurstURL = "https://my-bucket.s3.eu-west-1.amazonaws.com/burst/runs/x/bin/burst?X-Amz-Signature=ab&X-Amz-Expires=3600"
	script, err := UserData(spec)
	if err != nil {
		t.Fatal(err)
	}
	if code, out := e.run(script, "FAKE_BURST_STATUS=1"); code != 1 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	curl := strings.Split(strings.TrimSpace(e.read("curl.args")), "\n")
	if curl[len(curl)-1] != spec.BurstURL {
		t.Errorf("curl fetched %q, want %q", curl[len(curl)-1], spec.BurstURL)
	}
	if !strings.Contains(strings.Join(curl, " "), "--retry") || !strings.Contains(strings.Join(curl, " "), "--fail") {
		t.Errorf("curl without retries or --fail: %q", curl)
	}
	got := strings.TrimSpace(e.read("burst.path"))
	if !strings.HasPrefix(got, filepath.Join(e.dir, "tmp")+"/") || filepath.Base(got) != "burst" {
		t.Errorf("ran %q, want the downloaded burst under TMPDIR", got)
	}
	if e.read("burst.args") == "" {
		t.Error("the downloaded burst did not run")
	}
	if got, want := e.shutdowns(), []string{"-h +120", "-h now"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("shutdown calls %q, want %q", got, want)
	}
	if entries, _ := os.ReadDir(filepath.Join(e.dir, "work")); len(entries) != 0 {
		t.Errorf("the script wrote into its working directory: %v", entries)
	}
}

func TestUserDataFailedStepShutsDown(t *testing.T) {
	t.Run("download", func(t *testing.T) {
		e := newBootEnv(t)
		spec := testUserDataSpec()
		spec.BurstURL = "https://example.invalid/burst"
		script, err := UserData(spec)
		if err != nil {
			t.Fatal(err)
		}
		code, _ := e.run(script, "FAKE_CURL_FAIL=1")
		if code == 0 {
			t.Error("a failed download exited 0")
		}
		if e.read("burst.args") != "" {
			t.Error("the worker ran without a burst")
		}
		if got, want := e.shutdowns(), []string{"-h +120", "-h now"}; strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("shutdown calls %q, want %q", got, want)
		}
	})
	t.Run("no burst", func(t *testing.T) {
		e := newBootEnv(t)
		if err := os.Remove(filepath.Join(e.dir, "bin", "burst")); err != nil {
			t.Fatal(err)
		}
		script, err := UserData(testUserDataSpec())
		if err != nil {
			t.Fatal(err)
		}
		if code, _ := e.run(script); code != 127 {
			t.Errorf("exit %d, want 127", code)
		}
		if got := e.shutdowns(); len(got) == 0 || got[len(got)-1] != "-h now" {
			t.Errorf("shutdown calls %q, want a final -h now", got)
		}
	})
}

func TestUserDataQuotesHostileValues(t *testing.T) {
	e := newBootEnv(t)
	spec := testUserDataSpec()
	hostile := `'; rm -rf / ; touch pwned1; '$(touch pwned2)` + "`touch pwned3`" + `"; touch pwned4 #\`
	spec.Python = hostile
	spec.Env = map[string]string{"AWS_ENDPOINT_URL_S3": hostile + "$HOME"}
	script, err := UserData(spec)
	if err != nil {
		t.Fatal(err)
	}
	e.script("burst", `printf '%s\n' "$@" > "$BOOT_LOG/burst.args"; printf '%s' "$AWS_ENDPOINT_URL_S3" > "$BOOT_LOG/env"`+"\n")
	if code, out := e.run(script); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	args := strings.Split(strings.TrimSuffix(e.read("burst.args"), "\n"), "\n")
	if len(args) != 5 || args[3] != hostile {
		t.Errorf("worker args %q, want --python %q verbatim", args, hostile)
	}
	if got := e.read("env"); got != hostile+"$HOME" {
		t.Errorf("AWS_ENDPOINT_URL_S3 = %q, want %q", got, hostile+"$HOME")
	}
	spec = testUserDataSpec()
	spec.BurstURL = "https://h.example/burst?a='$(touch pwned5)'&b=`touch pwned6`;touch pwned7"
	if script, err = UserData(spec); err != nil {
		t.Fatal(err)
	}
	if code, out := e.run(script); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	curl := strings.Split(strings.TrimSpace(e.read("curl.args")), "\n")
	if curl[len(curl)-1] != spec.BurstURL {
		t.Errorf("curl fetched %q, want %q", curl[len(curl)-1], spec.BurstURL)
	}
	for _, dir := range []string{"work", "home", "tmp", "."} {
		for i := 1; i <= 7; i++ {
			if _, err := os.Stat(filepath.Join(e.dir, dir, "pwned"+strconv.Itoa(i))); err == nil {
				t.Errorf("pwned%d created in %s: a value was run as code", i, dir)
			}
		}
	}
}

func TestUserDataRejects(t *testing.T) {
	for name, mod := range map[string]func(*UserDataSpec){
		"run not s3":        func(s *UserDataSpec) { s.Run = "/tmp/store/runs/x" },
		"run no runs/":      func(s *UserDataSpec) { s.Run = "s3://my-bucket/burst/x" },
		"run hostile id":    func(s *UserDataSpec) { s.Run = "s3://my-bucket/runs/x';rm -rf /" },
		"run bad bucket":    func(s *UserDataSpec) { s.Run = "s3://My_Bucket/runs/x" },
		"run trailing":      func(s *UserDataSpec) { s.Run = "s3://my-bucket/runs/x/" },
		"run newline":       func(s *UserDataSpec) { s.Run = "s3://my-bucket/a\nb/runs/x" },
		"region":            func(s *UserDataSpec) { s.Region = "eu-west-1; reboot" },
		"no region":         func(s *UserDataSpec) { s.Region = "" },
		"no deadline":       func(s *UserDataSpec) { s.Deadline = time.Time{} },
		"workers":           func(s *UserDataSpec) { s.Workers = -1 },
		"python newline":    func(s *UserDataSpec) { s.Python = "python3\nreboot" },
		"python flag":       func(s *UserDataSpec) { s.Python = "--help" },
		"burst url scheme":  func(s *UserDataSpec) { s.BurstURL = "file:///etc/passwd" },
		"burst url nul":     func(s *UserDataSpec) { s.BurstURL = "https://x/\x00" },
		"env name":          func(s *UserDataSpec) { s.Env = map[string]string{"A B": "x"} },
		"env secret":        func(s *UserDataSpec) { s.Env = map[string]string{"AWS_SECRET_ACCESS_KEY": "x"} },
		"env session":       func(s *UserDataSpec) { s.Env = map[string]string{"aws_session_token": "x"} },
		"env path":          func(s *UserDataSpec) { s.Env = map[string]string{"PATH": "/evil"} },
		"env reserved":      func(s *UserDataSpec) { s.Env = map[string]string{"BURST_BOOT_BIN": "/evil"} },
		"over 16 KB":        func(s *UserDataSpec) { s.Env = map[string]string{"BIG": strings.Repeat("x", MaxUserData)} },
		"over 16 KB quoted": func(s *UserDataSpec) { s.Python = strings.Repeat("'", MaxUserData/4) },
	} {
		t.Run(name, func(t *testing.T) {
			spec := testUserDataSpec()
			mod(&spec)
			if out, err := UserData(spec); err == nil {
				t.Errorf("accepted; rendered %d bytes", len(out))
			}
		})
	}
}

func TestUserDataSizeLimit(t *testing.T) {
	spec := testUserDataSpec()
	base, err := UserData(spec)
	if err != nil {
		t.Fatal(err)
	}
	// An env value that brings the script to exactly the limit is fine;
	// one byte more is not.
	overhead := len("export BIG=''\n")
	spec.Env = map[string]string{"BIG": strings.Repeat("x", MaxUserData-len(base)-overhead)}
	out, err := UserData(spec)
	if err != nil || len(out) != MaxUserData {
		t.Fatalf("at the limit: %d bytes, %v", len(out), err)
	}
	spec.Env["BIG"] += "x"
	if _, err := UserData(spec); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("one byte over: %v", err)
	}
}

func TestValidRunURL(t *testing.T) {
	id, err := ValidRunURL("s3://b-1.x/runs/r1")
	if err != nil || id != "r1" {
		t.Errorf("got %q, %v", id, err)
	}
	id, err = ValidRunURL("s3://bucket/a/b/runs/job-1")
	if err != nil || id != "job-1" {
		t.Errorf("got %q, %v", id, err)
	}
}

func FuzzUserData(f *testing.F) {
	f.Add("s3://my-bucket/burst/runs/r1", "us-east-1", "", "", "", "", 0, int64(bootNow))
	f.Add("s3://my-bucket/runs/r1", "eu-west-1", "/opt/py", "https://x.example/b?s=1", "AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000", 8, int64(0))
	f.Add("s3://my-bucket/runs/r1", "us-east-1", `'; rm -rf /`, "http://127.0.0.1/'$(x)`y`", "X", `"$(reboot)"\`, 1, int64(-1))
	f.Add("s3://my-bucket/runs/r1'", "us-east-1", "\x00", "https://", "AWS_SECRET_ACCESS_KEY", "k", -3, int64(1<<62))
	f.Add("s3://a/runs/-x", "", "python3", "ftp://x", "1X", "", 65537, int64(4102444800))
	f.Fuzz(func(t *testing.T, run, region, python, burstURL, envKey, envVal string, workers int, deadline int64) {
		spec := UserDataSpec{Run: run, Region: region, Python: python, BurstURL: burstURL, Workers: workers}
		if deadline != 0 {
			spec.Deadline = time.Unix(deadline, 0)
		}
		if envKey != "" {
			spec.Env = map[string]string{envKey: envVal}
		}
		script, err := UserData(spec)
		if err != nil {
			return
		}
		if len(script) > MaxUserData {
			t.Fatalf("%d bytes rendered", len(script))
		}
		if !strings.Contains(script, shellQuote(run)) || python != "" && !strings.Contains(script, shellQuote(python)) {
			t.Fatal("a value is not quoted in the script")
		}
		cmd := exec.Command("bash", "-n")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("bash -n: %v\n%s\n%s", err, out, script)
		}
	})
}

// The deadline survives a reboot: the boot script installs a per-boot
// script that, run at a later boot, schedules the shutdown for what is
// left of the deadline, or shuts down at once once it has passed.
func TestUserDataRearmsDeadlineAtEveryBoot(t *testing.T) {
	e := newBootEnv(t)
	spec := testUserDataSpec()
	spec.Deadline = time.Unix(bootNow+3600, 0)
	script, err := UserData(spec)
	if err != nil {
		t.Fatal(err)
	}
	if code, out := e.run(script); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	arm := filepath.Join(e.dir, "per-boot", "burst-deadline.sh")
	if fi, err := os.Stat(arm); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("no executable per-boot script: %v", err)
	}
	// Later boots, with the clock 20 minutes and then 2 hours on.
	for _, tc := range []struct {
		later int
		want  string
	}{{20 * 60, "-h +40"}, {2 * 3600, "-h now"}} {
		if err := os.Remove(filepath.Join(e.dir, "shutdown")); err != nil {
			t.Fatal(err)
		}
		e.script("date", `if [ "$1" = +%s ]; then echo `+strconv.Itoa(bootNow+tc.later)+`; else exec /bin/date "$@"; fi`+"\n")
		cmd := exec.Command("sh", arm)
		cmd.Env = []string{"PATH=" + filepath.Join(e.dir, "bin") + ":/usr/bin:/bin", "BOOT_LOG=" + e.dir}
		out, _ := cmd.CombinedOutput()
		if got := strings.Join(e.shutdowns(), "|"); got != tc.want {
			t.Errorf("boot %ds later: shutdown %q, want %q\n%s", tc.later, got, tc.want, out)
		}
	}
}

// Where the per-boot script cannot be installed (no root), the deadline
// is still armed for this boot, and the script says so.
func TestUserDataArmsWithoutPerBootDir(t *testing.T) {
	e := newBootEnv(t)
	blocked := filepath.Join(e.dir, "file")
	if err := os.WriteFile(blocked, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	script, err := UserData(testUserDataSpec())
	if err != nil {
		t.Fatal(err)
	}
	code, out := e.run(script, "BURST_PERBOOT_DIR="+filepath.Join(blocked, "per-boot"))
	if code != 0 || !strings.Contains(out, "armed for this boot only") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if got := e.shutdowns(); len(got) != 2 || got[0] != "-h +120" {
		t.Errorf("shutdown calls %q", got)
	}
}
