package provision

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/staging"
)

// SSH runs workers on ssh hosts with the system's OpenSSH client. Nothing
// needs installing there but Python: burst copies its own binary to the
// remote user's cache (by content hash, once) when the host's OS and
// architecture match this one's, else it uses a burst on the remote PATH.
// The remote worker reaches the run store over the ssh session itself:
// this process serves the store on the session's stdin and stdout (see
// staging.StreamServer), so the host needs neither store credentials nor
// a shared filesystem.
//
// A session that ends, or falls silent, ends only that host's workers:
// their leases lapse and other workers take their chunks over. The remote
// worker exits, killing its tasks, when its stdin closes.
type SSH struct {
	// Command is the ssh client and its options (SSHCommand() when
	// empty).
	Command []string
	// Binary is the burst executable to copy (os.Executable() when
	// empty).
	Binary string
	// Python is the interpreter to run tasks with on the hosts; when
	// empty, each host finds PythonSlicer, else python3, on its PATH.
	Python string
	// Heartbeat is passed to the remote workers (see executor.Config).
	Heartbeat time.Duration
	// Verbose has the remote workers log diagnostics.
	Verbose bool
	// Stream tunes the store stream (keepalive); its OnNotify is
	// burst's own.
	Stream staging.StreamOptions
	// StopGrace is how long remote workers have to stop and release
	// their chunks once ctx ends (default 20s), before their sessions
	// are closed.
	StopGrace time.Duration
	Logger    *slog.Logger
	// OnEvent, when set, sees tasks start and finish on the hosts, from
	// several goroutines.
	OnEvent func(host string, e executor.Event)
	// OnState, when set, sees each host's state change.
	OnState func(HostState)
	// OnLog, when set, receives the remote workers' diagnostics (their
	// stderr), line by line; else they go to Logger.
	OnLog func(host, line string)
}

// HostState is what a host is doing.
type HostState struct {
	Host  string
	State string // HostStarting, HostRunning, HostFailed, HostLost or HostDone
	Slots int    // once running
	Err   error  // for HostFailed and HostLost: one line saying why
}

// Host states.
const (
	HostStarting = "starting" // connecting, probing, copying burst
	HostRunning  = "running"
	HostFailed   = "failed" // never got to work: unreachable, refused, something missing
	HostLost     = "lost"   // the session ended mid-run
	HostDone     = "done"
)

// stopNotice is what the serving side sends a remote worker to have it
// stop, release its chunks and exit.
const stopNotice = "stop"

// remoteEvent is a task event sent from a remote worker.
type remoteEvent struct {
	Kind   string          `json:"kind"` // "ready", "start" or "finish"
	Task   string          `json:"task,omitempty"`
	Status *staging.Status `json:"status,omitempty"`
	Slots  int             `json:"slots,omitempty"` // ready
}

func (s *SSH) defaults() {
	if len(s.Command) == 0 {
		s.Command = SSHCommand()
	}
	if s.StopGrace <= 0 {
		s.StopGrace = 20 * time.Second
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
}

func (s *SSH) state(st HostState) {
	if s.OnState != nil {
		s.OnState(st)
	}
}

// Run works on run with host's workers until they exit (the run is done or
// cancelled) or ctx ends, when they are stopped. It returns an error of one
// line when the host could not start (HostFailed) or its session ended
// with an error (HostLost).
//
// A host that has this burst's binary already is reached with one ssh
// session; otherwise a first session probes it and, when its platform
// matches, a second copies the binary there.
func (s SSH) Run(ctx context.Context, run *staging.Run, host SSHHost) error {
	s.defaults()
	name := host.Name()
	s.state(HostState{Host: name, State: HostStarting})
	var (
		slots   int
		working bool
	)
	onReady := func(n int) {
		slots, working = n, true
		s.state(HostState{Host: name, State: HostRunning, Slots: n})
	}
	binary, hash, err := s.ownBinary()
	if err == nil {
		err = s.work(ctx, run, host, cachedCommand(hash, s.workerArgs(run, host)), onReady)
		if errors.Is(err, errNotCached) {
			var bin string
			if bin, err = s.prepare(ctx, host, binary, hash); err == nil {
				err = s.work(ctx, run, host, "exec "+quoteArgs(append([]string{bin}, s.workerArgs(run, host)...)), onReady)
			}
		}
	}
	switch {
	case ctx.Err() != nil:
		s.state(HostState{Host: name, State: HostDone, Slots: slots})
		return ctx.Err()
	case err == nil:
		s.state(HostState{Host: name, State: HostDone, Slots: slots})
		return nil
	case !working:
		err = fmt.Errorf("host %s: %w", name, err)
		s.state(HostState{Host: name, State: HostFailed, Err: err})
	default:
		err = fmt.Errorf("host %s: session lost: %w", name, err)
		s.state(HostState{Host: name, State: HostLost, Slots: slots, Err: err})
	}
	return err
}

// errNotCached says that the host has no copy of this burst yet.
var errNotCached = errors.New("burst is not in the host's cache")

// notCachedStatus is the exit status of cachedCommand without a copy.
const notCachedStatus = 97

// remoteBinDir is where burst keeps its copies on a host, by hash, as the
// remote shell expands it.
func remoteBinDir(hash string) string {
	return fmt.Sprintf("${XDG_CACHE_HOME:-$HOME/.cache}/burst/bin/%s", hash)
}

// cachedCommand runs the worker from the host's copy of this burst, or
// exits with notCachedStatus when there is none.
func cachedCommand(hash string, args []string) string {
	script := fmt.Sprintf(`b="%s/burst"; if [ -x "$b" ]; then exec "$b" %s; fi; exit %d`, remoteBinDir(hash), quoteArgs(args), notCachedStatus)
	return "sh -c " + shellQuote(script)
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

// workerArgs are the remote worker's arguments, after the binary.
func (s *SSH) workerArgs(run *staging.Run, host SSHHost) []string {
	args := []string{"worker", "--stdio", "--host-name", host.Name(), "--workers", strconv.Itoa(host.Slots)}
	if s.Python != "" {
		args = append(args, "--python", s.Python)
	}
	if s.Heartbeat > 0 {
		args = append(args, "--heartbeat", s.Heartbeat.String())
	}
	if s.Verbose {
		args = append(args, "--verbose")
	}
	if s.Stream.PingEvery > 0 {
		args = append(args, "--keepalive", s.Stream.PingEvery.String())
	}
	return append(args, "--", run.ID)
}

// sshArgs returns the ssh command line that runs remote on host.
func (s *SSH) sshArgs(host SSHHost, remote string) []string {
	args := append([]string{}, s.Command[1:]...)
	// No terminal, no escape character, no X11: the session carries
	// binary data. BatchMode: no prompt can hang a run, a host that
	// wants a password fails at once.
	args = append(args, "-T", "-x", "-e", "none", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30")
	if host.Port != 0 {
		args = append(args, "-p", strconv.Itoa(host.Port))
	}
	return append(args, "--", host.Dest, remote)
}

// command returns an unstarted ssh command in a process group of its own,
// so that a Ctrl-C at the terminal reaches burst, which stops the remote
// workers in order, and not ssh; it dies with burst.
func (s *SSH) command(host SSHHost, remote string) *exec.Cmd {
	cmd := exec.Command(s.Command[0], s.sshArgs(host, remote)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// sshError turns a failed ssh command into one line: ssh's own last line
// (connection refused, permission denied, host key verification failed)
// when ssh failed, else the remote's.
func sshError(err error, stderr string) error {
	line := lastLine(stderr)
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 255 && line != "" {
		line = strings.TrimSuffix(line, ".")
		if strings.HasPrefix(line, "ssh: ") {
			return errors.New(line)
		}
		return fmt.Errorf("ssh: %s", line)
	}
	if line != "" {
		// The remote burst's own one-line error.
		return errors.New(strings.TrimPrefix(line, "burst: "))
	}
	return err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}

// probe is what a host says about itself.
type probe struct {
	os, arch string // uname -s, uname -m
	cached   string // burst already copied there, by hash
	cacheDir string // where it goes otherwise
	onPath   string // a burst on the remote PATH
	python   string // the interpreter found, "" when none
}

// probeScript is run by sh on the host, read from stdin.
func probeScript(hash, python string) string {
	var b strings.Builder
	b.WriteString("echo burst-probe\nuname -sm\n")
	fmt.Fprintf(&b, "d=\"%s\"\n", remoteBinDir(hash))
	b.WriteString("if [ -x \"$d/burst\" ]; then echo \"cached $d/burst\"; else echo \"cachedir $d\"; fi\n")
	b.WriteString("if p=$(command -v burst 2>/dev/null); then echo \"onpath $p\"; fi\n")
	if python != "" {
		fmt.Fprintf(&b, "if p=$(command -v %s 2>/dev/null); then echo \"python $p\"; fi\n", shellQuote(python))
	} else {
		b.WriteString("for c in PythonSlicer python3; do if p=$(command -v $c 2>/dev/null); then echo \"python $p\"; break; fi; done\n")
	}
	b.WriteString("echo end\n")
	return b.String()
}

func parseProbe(out string) (probe, error) {
	var p probe
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	// What a login shell prints comes first; the probe's output is the
	// last lines, from its marker to "end".
	start := -1
	for i, l := range lines {
		if l == "burst-probe" && i+1 < len(lines) {
			start = i + 1
		}
	}
	if start < 0 || lines[len(lines)-1] != "end" {
		return p, fmt.Errorf("unexpected answer to the probe: %q", lastLine(out))
	}
	f := strings.Fields(lines[start])
	if len(f) != 2 {
		return p, fmt.Errorf("unexpected uname -sm: %q", lines[start])
	}
	p.os, p.arch = f[0], f[1]
	for _, l := range lines[start+1:] {
		k, v, _ := strings.Cut(l, " ")
		switch k {
		case "cached":
			p.cached = v
		case "cachedir":
			p.cacheDir = v
		case "onpath":
			p.onPath = v
		case "python":
			p.python = v
		}
	}
	return p, nil
}

// goPlatform maps uname -sm to Go's GOOS and GOARCH.
func goPlatform(sys, machine string) (string, string) {
	goos := strings.ToLower(sys)
	arch := map[string]string{
		"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
		"armv7l": "arm", "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
	}[strings.ToLower(machine)]
	return goos, arch
}

// choice is which burst a host runs, or why none.
func (p probe) choose(python string) (bin string, copyTo string, err error) {
	if p.python == "" {
		if python != "" {
			return "", "", fmt.Errorf("no interpreter %s there", python)
		}
		return "", "", errors.New("no PythonSlicer or python3 on its PATH (install one, or give --python)")
	}
	goos, arch := goPlatform(p.os, p.arch)
	switch {
	case goos == runtime.GOOS && arch == runtime.GOARCH && p.cached != "":
		return p.cached, "", nil
	case goos == runtime.GOOS && arch == runtime.GOARCH && p.cacheDir != "":
		return p.cacheDir + "/burst", p.cacheDir, nil
	case p.onPath != "":
		return p.onPath, "", nil
	}
	return "", "", fmt.Errorf("it is %s %s, this burst is for %s/%s, and it has no burst on its PATH: install burst there", p.os, p.arch, runtime.GOOS, runtime.GOARCH)
}

var (
	hashOf = map[string]string{}
	hashMu sync.Mutex
)

// binaryHash returns the SHA-256 of the burst binary, once per path.
func binaryHash(path string) (string, error) {
	hashMu.Lock()
	defer hashMu.Unlock()
	if h, ok := hashOf[path]; ok {
		return h, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	hashOf[path] = sum
	return sum, nil
}

// ownBinary returns the burst binary to copy and its hash (shortened).
func (s *SSH) ownBinary() (path, hash string, err error) {
	path = s.Binary
	if path == "" {
		if path, err = os.Executable(); err != nil {
			return "", "", fmt.Errorf("finding burst's own binary: %w", err)
		}
	}
	hash, err = binaryHash(path)
	if err != nil {
		return "", "", fmt.Errorf("reading burst's own binary: %w", err)
	}
	return path, hash[:24], nil
}

// prepare probes host and copies burst there if needed. It returns the
// remote burst's path.
func (s *SSH) prepare(ctx context.Context, host SSHHost, binary, hash string) (string, error) {
	out, err := s.output(ctx, host, "sh -s", strings.NewReader(probeScript(hash, s.Python)))
	if err != nil {
		return "", err
	}
	p, err := parseProbe(out)
	if err != nil {
		return "", err
	}
	bin, copyTo, err := p.choose(s.Python)
	if err != nil {
		return "", err
	}
	if copyTo != "" {
		if err := s.install(ctx, host, binary, copyTo); err != nil {
			return "", fmt.Errorf("copying burst there: %w", err)
		}
		s.Logger.Info("copied burst", "host", host.Name(), "to", bin)
	}
	return bin, nil
}

// output runs remote on host with stdin and returns its stdout.
func (s *SSH) output(ctx context.Context, host SSHHost, remote string, stdin io.Reader) (string, error) {
	cmd := s.command(host, remote)
	var stdout, stderr strings.Builder
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("starting %s: %w", s.Command[0], err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return "", sshError(err, stderr.String())
		}
		return stdout.String(), nil
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return "", ctx.Err()
	}
}

// install copies the binary into dir on host: written beside its final
// name, checked for size, then renamed, so a broken copy is never run.
func (s *SSH) install(ctx context.Context, host SSHHost, binary, dir string) error {
	f, err := os.Open(binary)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	script := fmt.Sprintf(`set -e; d=%s; mkdir -p "$d"; t="$d/.tmp-$$"; cat > "$t"; `+
		`n=$(wc -c < "$t" | tr -d " "); if [ "$n" != %d ]; then rm -f "$t"; echo "copy truncated at $n bytes" >&2; exit 1; fi; `+
		`chmod 755 "$t"; mv -f "$t" "$d/burst"`, shellQuote(dir), fi.Size())
	_, err = s.output(ctx, host, "sh -c "+shellQuote(script), f)
	return err
}

// work runs the remote worker with the remote command line and serves the
// store to it until it exits. onReady is called when the worker has
// opened the stream and says how many slots it runs. It returns
// errNotCached when the command found no copy of burst.
func (s *SSH) work(ctx context.Context, run *staging.Run, host SSHHost, remote string, onReady func(slots int)) error {
	name := host.Name()
	cmd := s.command(host, remote)
	// Pipes of our own, not exec's: this side closes them when the
	// stream ends (a stalled session's reads and writes end with them),
	// and Wait never closes them under a read.
	sshIn, stdin, err := os.Pipe()
	if err != nil {
		return err
	}
	defer stdin.Close()
	stdout, sshOut, err := os.Pipe()
	if err != nil {
		sshIn.Close()
		return err
	}
	defer stdout.Close()
	stderr := &lineLog{host: name, out: s.OnLog}
	if stderr.out == nil {
		stderr.out = func(host, line string) { s.Logger.Warn("remote worker: "+line, "host", host) }
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = sshIn, sshOut, stderr
	err = cmd.Start()
	sshIn.Close()
	sshOut.Close()
	if err != nil {
		return fmt.Errorf("starting %s: %w", s.Command[0], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	opts := s.Stream
	opts.OnNotify = func(p []byte) {
		var e remoteEvent
		if json.Unmarshal(p, &e) != nil {
			return
		}
		if e.Kind == "ready" {
			stderr.live.Store(true)
			onReady(e.Slots)
			return
		}
		if s.OnEvent == nil {
			return
		}
		switch e.Kind {
		case "start":
			s.OnEvent(name, executor.Event{Kind: executor.TaskStarted, Task: e.Task})
		case "finish":
			if e.Status != nil {
				s.OnEvent(name, executor.Event{Kind: executor.TaskFinished, Task: e.Task, Status: e.Status})
			}
		}
	}
	srv := staging.NewStreamServer(run.Store, opts, "", s.Logger.With("host", name))
	sctx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServing()
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(sctx, stdout, stdin, func() { stdin.Close(); stdout.Close() })
	}()

	// waitOrKill waits up to d for ssh to exit, then kills it.
	waitOrKill := func(d time.Duration) error {
		select {
		case err := <-exited:
			return err
		case <-time.After(d):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			return <-exited
		}
	}
	var (
		waitErr, serveErr error
		serveDone         bool
	)
	select {
	case waitErr = <-exited:
	case serveErr = <-served:
		// The stream ended first: the worker closed it as it exits, or
		// it broke or fell silent (a network gone), and its stdin is
		// closed. A session that does not end then is cut.
		serveDone = true
		grace := 5 * time.Second
		if serveErr == nil {
			grace = 30 * time.Second
		}
		waitErr = waitOrKill(grace)
		if waitErr == nil && serveErr != nil {
			waitErr = serveErr
		}
	case <-ctx.Done():
		// Ask the worker to stop and release its chunks through the
		// store, which is still served; then close the session.
		nctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := srv.Notify(nctx, []byte(stopNotice)); err != nil {
			// Not yet (or no longer) talking: nothing to release.
			stdin.Close()
		}
		cancel()
		select {
		case waitErr = <-exited:
		case <-time.After(s.StopGrace):
			s.Logger.Warn("remote worker did not stop in time; closing its session", "host", name)
			stdin.Close()
			waitErr = waitOrKill(5 * time.Second)
		}
	}
	stopServing()
	if !serveDone {
		serveErr = <-served
	}
	if ctx.Err() != nil {
		return nil
	}
	var ee *exec.ExitError
	select {
	case <-srv.Opened():
	default:
		if errors.As(waitErr, &ee) && ee.ExitCode() == notCachedStatus {
			return errNotCached
		}
	}
	if waitErr != nil {
		if staging.StreamClosedError(serveErr) && !errors.Is(serveErr, context.Canceled) {
			return serveErr
		}
		return sshError(waitErr, stderr.String())
	}
	return nil
}

// lineLog passes a remote worker's stderr, line by line, to out, and keeps
// its tail for error messages.
type lineLog struct {
	out  func(host, line string)
	host string
	// live is set once the worker works: what comes before is ssh's or
	// the remote shell's, and is kept for the error message only.
	live atomic.Bool
	mu   sync.Mutex
	part []byte
	tail []string
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.part = append(l.part, p...)
	for {
		i := strings.IndexByte(string(l.part), '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(l.part[:i]), "\r")
		l.part = l.part[i+1:]
		if line == "" {
			continue
		}
		if l.live.Load() {
			l.out(l.host, line)
		}
		l.tail = append(l.tail, line)
		if len(l.tail) > 20 {
			l.tail = l.tail[1:]
		}
	}
	if len(l.part) > 64<<10 {
		l.part = l.part[len(l.part)-64<<10:]
	}
	return len(p), nil
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(append(append([]string{}, l.tail...), string(l.part)), "\n")
}
