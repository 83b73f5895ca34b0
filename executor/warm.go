package executor

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Warm workers. Each slot keeps one task server (taskserver.py) alive
// under the run's interpreter, started exactly as a task's interpreter
// would be. It imports the script's modules once and forks a child per
// task, which runs the unchanged script as __main__ with the task's stdin,
// stdout, stderr, directory, environment and process group: as isolated
// as a fresh process, without its start-up.
//
// A task's peak memory (max_rss_kb) is its process's own high-water mark:
// it counts the pages of the preloaded modules that the child shares with
// the server, as a fresh process counts the modules it imports, but not
// the server's own earlier peaks (an import's transient spike) nor the
// worker's, nor other tasks'.

//go:embed taskserver.py
var taskServerPy []byte

// WarmLimits tune the task servers of warm workers; zero fields take
// their defaults.
type WarmLimits struct {
	// MaxTasks replaces a server after this many tasks (default 500).
	MaxTasks int
	// MaxGrowthKB replaces a server whose resident memory has grown by
	// more than this since it became ready (default 512 MiB).
	MaxGrowthKB int64
	// Answer is how long a server may take to answer; one that does not
	// (a ping while its task runs, a run request) is killed and
	// restarted, and its task run again (default 30s).
	Answer time.Duration
	// Start is how long a server may take to import its modules; one
	// that takes longer is killed and the slot runs tasks cold
	// (default 10m).
	Start time.Duration
}

func (l WarmLimits) withDefaults() WarmLimits {
	if l.MaxTasks <= 0 {
		l.MaxTasks = 500
	}
	if l.MaxGrowthKB <= 0 {
		l.MaxGrowthKB = 512 << 10
	}
	if l.Answer <= 0 {
		l.Answer = 30 * time.Second
	}
	if l.Start <= 0 {
		l.Start = 10 * time.Minute
	}
	return l
}

// maxServerLosses is how many servers one attempt may lose before it is
// run in a fresh process instead.
const maxServerLosses = 3

// errServerLost means a server died or stopped answering during a task;
// the attempt did not happen.
var errServerLost = errors.New("task server lost")

// serverParams is how a pool starts its servers.
type serverParams struct {
	python  string
	path    string // taskserver.py, written in the cache directory
	script  string
	preload string // "auto", "none" or module names, comma-separated
	dir     string
	env     []string
	limits  WarmLimits
	log     *slog.Logger
}

// preloadArg turns the manifest's preload field into the server's
// argument: "" is auto.
func preloadArg(p string) string {
	if p == "" {
		return "auto"
	}
	return p
}

// ValidatePreload checks a --preload value: "none", or module names
// separated by commas. The empty string means the script's own top-level
// imports.
func ValidatePreload(p string) error {
	if p == "" || p == "none" {
		return nil
	}
	for _, name := range strings.Split(p, ",") {
		if name == "" {
			return fmt.Errorf("--preload %q: an empty module name", p)
		}
		if name == "none" {
			return fmt.Errorf("--preload %q: none stands alone", p)
		}
		for _, part := range strings.Split(name, ".") {
			if !isIdentifier(part) {
				return fmt.Errorf("--preload %q: %q is not a module name", p, name)
			}
		}
	}
	return nil
}

func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || r > 127 || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// writeServerScript places taskserver.py in dir, named by its hash, once.
func writeServerScript(dir string) (string, error) {
	sum := sha256.Sum256(taskServerPy)
	path := filepath.Join(dir, "taskserver-"+hex.EncodeToString(sum[:6])+".py")
	if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, taskServerPy) {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("writing the task server: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".taskserver-*")
	if err != nil {
		return "", fmt.Errorf("writing the task server: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(taskServerPy); err != nil {
		tmp.Close()
		return "", fmt.Errorf("writing the task server: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("writing the task server: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("writing the task server: %w", err)
	}
	return path, nil
}

// lockedTail is a tailBuffer safe for concurrent use: a server's output.
type lockedTail struct {
	mu sync.Mutex
	b  tailBuffer
}

func (l *lockedTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b.Bytes())
}

// taskServer is one running server process.
type taskServer struct {
	p      serverParams
	cmd    *exec.Cmd
	conn   *net.UnixConn
	msgs   chan serverMsg
	dead   chan struct{} // closed when the connection ends
	exited chan struct{} // closed when the process is reaped
	err    error         // why dead, set before dead closes
	out    *lockedTail
	pid    int
	tasks  int
	// readyKB is the server's resident memory once it was ready.
	readyKB int64
}

// errInterpreter means the interpreter itself could not be started.
type errInterpreter struct{ err error }

func (e *errInterpreter) Error() string { return e.err.Error() }
func (e *errInterpreter) Unwrap() error { return e.err }

// startServer starts a server and waits until it has imported its
// modules. An *errInterpreter means the interpreter could not be started
// at all; any other error, that the server did not become ready.
func startServer(ctx context.Context, p serverParams) (*taskServer, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("task server socket: %w", err)
	}
	local := os.NewFile(uintptr(fds[0]), "taskserver-control")
	remote := os.NewFile(uintptr(fds[1]), "taskserver-control")
	c, err := net.FileConn(local)
	local.Close()
	if err != nil {
		return nil, fmt.Errorf("task server socket: %w", err)
	}
	s := &taskServer{
		p: p, conn: c.(*net.UnixConn), msgs: make(chan serverMsg, 16),
		dead: make(chan struct{}), exited: make(chan struct{}), out: &lockedTail{b: tailBuffer{limit: 64 << 10}},
	}
	cmd := exec.Command(p.python, p.path, p.script, preloadArg(p.preload))
	cmd.Dir = p.dir
	cmd.Env = p.env
	cmd.Stdout = s.out
	cmd.Stderr = s.out
	cmd.ExtraFiles = []*os.File{remote} // fd 3
	cmd.SysProcAttr = procAttr()
	cmd.WaitDelay = time.Second
	err = cmd.Start()
	// The server's end is the server's alone: its death must read as EOF.
	remote.Close()
	if err != nil {
		s.conn.Close()
		return nil, &errInterpreter{err}
	}
	s.cmd, s.pid = cmd, cmd.Process.Pid
	go func() { cmd.Wait(); close(s.exited) }()
	go s.read()

	timer := time.NewTimer(p.limits.Start)
	defer timer.Stop()
	select {
	case m := <-s.msgs:
		if m.Op != opReady {
			s.kill()
			return nil, fmt.Errorf("task server said %q before it was ready", m.Op)
		}
		p.log.Debug("task server ready", "pid", s.pid, "preloaded", m.Preloaded, "failed", m.Failed, "threads", m.Threads)
		s.readyKB, _ = statusKB(s.pid, "VmRSS:")
		return s, nil
	case <-s.exited:
		return nil, s.endedEarly()
	case <-s.dead:
		return nil, s.endedEarly()
	case <-timer.C:
		s.kill()
		return nil, fmt.Errorf("task server not ready after %s", p.limits.Start)
	case <-ctx.Done():
		s.kill()
		return nil, ctx.Err()
	}
}

// endedEarly kills what is left of a server that went before it was
// ready, and says why.
func (s *taskServer) endedEarly() error {
	s.kill()
	return fmt.Errorf("task server ended before it was ready (%v): %s", s.cmd.ProcessState, lastLine([]byte(s.out.String())))
}

// read turns frames into messages until the connection ends.
func (s *taskServer) read() {
	defer close(s.dead)
	for {
		b, err := readFrame(s.conn, maxServerFrame)
		if err != nil {
			s.err = err
			return
		}
		m, err := parseServerMsg(b)
		if err != nil {
			s.err = err
			return
		}
		select {
		case s.msgs <- m:
		case <-s.exited:
			s.err = errors.New("task server exited")
			return
		}
	}
}

// kill ends the server and waits for it.
func (s *taskServer) kill() {
	s.conn.Close()
	_ = syscall.Kill(-s.pid, syscall.SIGKILL)
	<-s.exited
}

// close asks the server to exit, and kills it when it does not soon.
func (s *taskServer) close() {
	s.conn.Close() // EOF: the server exits
	select {
	case <-s.exited:
	case <-time.After(2 * time.Second):
	}
	s.kill()
}

// send writes one frame, with descriptors attached.
func (s *taskServer) send(v any, files ...*os.File) error {
	b, err := frame(v)
	if err != nil {
		return err
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.p.limits.Answer))
	n, _, err := s.conn.WriteMsgUnix(b, oob, nil)
	if err == nil && n < len(b) {
		_, err = s.conn.Write(b[n:])
	}
	return err
}

// worn says whether the server should be replaced after its last task.
func (s *taskServer) worn() string {
	if s.tasks >= s.p.limits.MaxTasks {
		return fmt.Sprintf("it ran %d tasks", s.tasks)
	}
	if kb, ok := statusKB(s.pid, "VmRSS:"); ok && kb-s.readyKB > s.p.limits.MaxGrowthKB {
		return fmt.Sprintf("its memory grew from %d to %d KiB", s.readyKB, kb)
	}
	return ""
}

// run runs one task on the server, with the semantics of runProcess. It
// returns errServerLost, and no attempt, when the server died or stopped
// answering before the task ended; the server is then killed.
func (s *taskServer) run(ctx context.Context, dir string, env []string, input []byte, timeout time.Duration, echo io.Writer) (attempt, error) {
	actx := ctx
	var cancel context.CancelFunc = func() {}
	if timeout > 0 {
		actx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	// Stale answers to earlier pings.
	for len(s.msgs) > 0 {
		<-s.msgs
	}

	var pipes [6]*os.File // stdin r,w; stdout r,w; stderr r,w
	for i := 0; i < 6; i += 2 {
		r, w, err := os.Pipe()
		if err != nil {
			for _, f := range pipes[:i] {
				f.Close()
			}
			return attempt{exitCode: -1, startErr: fmt.Errorf("task pipes: %w", err)}, nil
		}
		pipes[i], pipes[i+1] = r, w
	}
	inR, inW, outR, outW, errR, errW := pipes[0], pipes[1], pipes[2], pipes[3], pipes[4], pipes[5]
	start := time.Now()
	err := s.send(newRunRequest(s.p.script, dir, s.p.env, env), inR, outW, errW)
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		s.kill()
		return attempt{}, fmt.Errorf("%w: sending the task: %v", errServerLost, err)
	}
	var stdout bytes.Buffer
	stderr := &tailBuffer{limit: stderrLimit}
	var errDst io.Writer = stderr
	if echo != nil {
		errDst = io.MultiWriter(stderr, echo)
	}
	var copiers sync.WaitGroup
	copiers.Add(3)
	go func() { defer copiers.Done(); inW.Write(input); inW.Close() }()
	go func() { defer copiers.Done(); io.Copy(&stdout, outR) }()
	go func() { defer copiers.Done(); io.Copy(errDst, errR) }()
	closePipes := func() {
		// A background process of the task may hold the pipes: give it
		// the same grace as a fresh process gets, then stop reading.
		done := make(chan struct{})
		go func() { copiers.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
		outR.Close()
		errR.Close()
		inW.Close()
		<-done
	}

	pid := 0
	killTask := func() {
		if pid > 0 {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
	lost := func(why string) (attempt, error) {
		killTask()
		s.kill()
		closePipes()
		return attempt{}, fmt.Errorf("%w: %s", errServerLost, why)
	}
	heard := time.Now()
	tick := time.NewTicker(max(s.p.limits.Answer/4, 10*time.Millisecond))
	defer tick.Stop()
	done := actx.Done()
	for {
		select {
		case m := <-s.msgs:
			heard = time.Now()
			switch m.Op {
			case opStarted:
				if pid != 0 {
					return lost("a second start")
				}
				pid = m.PID
				if actx.Err() != nil {
					killTask()
				}
			case opExited:
				if m.PID != pid {
					return lost(fmt.Sprintf("exit of pid %d, not of task %d", m.PID, pid))
				}
				closePipes()
				// Whatever the script left behind in its group goes with it.
				killTask()
				a := attempt{
					stdout: stdout.Bytes(), stderr: stderr.Bytes(),
					duration: time.Since(start), exitCode: -1, maxRSSKB: m.MaxRSSKB,
				}
				if m.Code != nil {
					a.exitCode = *m.Code
				} else {
					a.signal = unix.SignalName(syscall.Signal(m.Signal))
				}
				if timeout > 0 && errors.Is(actx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
					a.timedOut = true
				}
				s.tasks++
				return a, nil
			case opError:
				if pid == 0 {
					// Refused before forking: nothing ran.
					return lost("it refused the task: " + m.Message)
				}
			}
		case <-s.dead:
			return lost(fmt.Sprintf("its connection ended (%v)", s.err))
		case <-s.exited:
			return lost("it exited")
		case <-done:
			// Timeout or cancel: the task's group goes, the server stays.
			done = nil
			killTask()
		case <-tick.C:
			if time.Since(heard) > s.p.limits.Answer {
				return lost(fmt.Sprintf("no answer for %s", s.p.limits.Answer))
			}
			if time.Since(heard) > s.p.limits.Answer/4 {
				if err := s.send(map[string]string{"op": opPing}); err != nil {
					return lost("ping: " + err.Error())
				}
			}
		}
	}
}

// serverPool holds one server per slot.
type serverPool struct {
	p    serverParams
	free chan *serverSlot
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// serverSlot is one slot's server, running or starting.
type serverSlot struct {
	srv     *taskServer
	pending chan startResult // the server being started, if any
	cold    bool             // a server could not start: run tasks cold
}

type startResult struct {
	srv *taskServer
	err error
}

func newServerPool(p serverParams, slots int) *serverPool {
	ctx, stop := context.WithCancel(context.Background())
	pool := &serverPool{p: p, free: make(chan *serverSlot, slots), ctx: ctx, stop: stop}
	for range slots {
		s := &serverSlot{}
		pool.launch(s)
		pool.free <- s
	}
	return pool
}

// launch starts a server for slot s in the background.
func (p *serverPool) launch(s *serverSlot) {
	ch := make(chan startResult, 1)
	s.pending = ch
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		srv, err := startServer(p.ctx, p.p)
		ch <- startResult{srv, err}
	}()
}

// get returns the slot's server, waiting for it to be ready.
func (p *serverPool) get(ctx context.Context, s *serverSlot) (*taskServer, error) {
	if s.srv != nil {
		return s.srv, nil
	}
	if s.pending == nil {
		p.launch(s)
	}
	select {
	case r := <-s.pending:
		s.pending = nil
		s.srv = r.srv
		return r.srv, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run runs one attempt on a slot's server; see runProcess. An attempt
// whose server is lost is run again on a new one, uncounted; after
// maxServerLosses, or when no server can start, it runs in a fresh
// process.
func (p *serverPool) run(ctx context.Context, dir string, env []string, input []byte, timeout time.Duration) attempt {
	s := <-p.free
	defer func() { p.free <- s }()
	cold := func() attempt {
		return runProcess(ctx, p.p.python, p.p.script, dir, env, input, timeout, nil)
	}
	for losses := 0; !s.cold; losses++ {
		srv, err := p.get(ctx, s)
		if ctx.Err() != nil {
			return attempt{exitCode: -1, startErr: ctx.Err()}
		}
		var ierr *errInterpreter
		if errors.As(err, &ierr) {
			return attempt{exitCode: -1, startErr: ierr.err, notStarted: true}
		}
		if err != nil {
			p.p.log.Warn("task server did not start; this slot runs each task in a fresh process", "err", err)
			s.cold = true
			break
		}
		a, err := srv.run(ctx, dir, env, input, timeout, nil)
		if err == nil {
			if why := srv.worn(); why != "" {
				p.p.log.Debug("replacing task server", "pid", srv.pid, "because", why)
				s.srv = nil
				p.wg.Add(1)
				go func() { defer p.wg.Done(); srv.close() }()
				p.launch(s)
			}
			return a
		}
		p.p.log.Warn("task server lost; running the task again on a new one", "pid", srv.pid, "err", err)
		s.srv = nil
		if losses+1 >= maxServerLosses {
			p.p.log.Warn("task server lost too often on this task; running it in a fresh process", "losses", losses+1)
			return cold()
		}
		if ctx.Err() != nil {
			return attempt{exitCode: -1, startErr: ctx.Err()}
		}
	}
	return cold()
}

// close ends every server, started or starting.
func (p *serverPool) close() {
	p.stop()
	p.wg.Wait()
	for range cap(p.free) {
		s := <-p.free
		if s.pending != nil {
			if r := <-s.pending; r.srv != nil {
				r.srv.close()
			}
		}
		if s.srv != nil {
			s.srv.close()
		}
	}
}

// startServers starts the slots' task servers when the run is warm.
func (w *worker) startServers() error {
	if !w.man.Warm {
		return nil
	}
	path, err := writeServerScript(w.cfg.CacheDir)
	if err != nil {
		return err
	}
	w.servers = newServerPool(serverParams{
		python: w.cfg.Python, path: path, script: w.script, preload: w.man.Preload,
		dir: filepath.Dir(w.shared), env: w.baseEnv(), limits: w.cfg.Warm.withDefaults(), log: w.log,
	}, w.cfg.Slots)
	return nil
}

// stopServers ends the task servers, if any.
func (w *worker) stopServers() {
	if w.servers != nil {
		w.servers.close()
	}
}

// baseEnv is the environment of every interpreter of the run; an
// attempt's adds its own variables.
func (w *worker) baseEnv() []string {
	return append(os.Environ(),
		"BURST_RUN_ID="+w.run.ID,
		"BURST_SHARED_DIR="+w.shared,
	)
}

// runAttempt runs one attempt in dir: on the slot's task server when the
// run is warm, else in a fresh process.
func (w *worker) runAttempt(ctx context.Context, dir string, env []string, input []byte) attempt {
	if w.servers != nil {
		return w.servers.run(ctx, dir, env, input, w.man.Timeout.D())
	}
	return runProcess(ctx, w.cfg.Python, w.script, dir, env, input, w.man.Timeout.D(), nil)
}
