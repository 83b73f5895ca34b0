package executor

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/slicerburst/burst/staging"
	"github.com/slicerburst/burst/staging/pickle"
)

// stderrTail is how much of a task's stderr its status keeps; longer
// stderr is stored whole under logs/.
const stderrTail = 4096

// ResolvePython finds the interpreter: the one asked for, else
// PythonSlicer when it is on PATH, else python3. A relative path is made
// absolute, since tasks run in directories of their own; symbolic links
// are kept, as a virtualenv's python is one.
func ResolvePython(requested string) (string, error) {
	if requested != "" {
		p, err := exec.LookPath(requested)
		if err != nil {
			return "", fmt.Errorf("interpreter %q not found: give the path of PythonSlicer or python3 with --python", requested)
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		return p, nil
	}
	for _, name := range []string{"PythonSlicer", "python3"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no interpreter found: neither PythonSlicer nor python3 is on PATH; give one with --python")
}

// errDamaged marks a store object whose content is not what the run says
// it is: fetching it again will not help.
var errDamaged = errors.New("the store copy is damaged")

// prepare fetches the script and the shared files into the work directory.
func (w *worker) prepare(ctx context.Context) error {
	p, err := prepare(ctx, w.run, w.man, w.cfg.WorkDir, w.cfg.CacheDir, w.log)
	if err != nil {
		return err
	}
	w.script, w.shared = p.script, p.shared
	return nil
}

type prepared struct {
	script, shared, tmp string
}

// prepare fetches a run's script into workDir and its shared files into
// cacheDir (once per content hash, verified), linked from a shared
// directory by name.
func prepare(ctx context.Context, run *staging.Run, man *staging.Manifest, workDir, cacheDir string, log *slog.Logger) (prepared, error) {
	dir := filepath.Join(workDir, "runs", run.ID)
	p := prepared{
		script: filepath.Join(dir, "script", man.Script),
		shared: filepath.Join(dir, "shared"),
		tmp:    filepath.Join(dir, "tmp"),
	}
	for _, d := range []string{"script", "shared", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return p, fmt.Errorf("preparing work directory: %w", err)
		}
	}
	if err := run.Store.GetFile(ctx, run.ScriptKey(man.Script), p.script); err != nil {
		return p, fmt.Errorf("fetching the run's script: %w", err)
	}
	cache := filepath.Join(cacheDir, "sha256")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return p, fmt.Errorf("preparing cache: %w", err)
	}
	for _, f := range man.Shared {
		cached := filepath.Join(cache, f.SHA256)
		if ok, _ := fileHasHash(cached, f.SHA256); !ok {
			log.Info("fetching shared file", "name", f.Name, "bytes", f.Size)
			if err := run.Store.GetFile(ctx, staging.CASKey(f.SHA256), cached); err != nil {
				return p, fmt.Errorf("fetching shared file %s: %w", f.Name, err)
			}
			if ok, err := fileHasHash(cached, f.SHA256); !ok {
				os.Remove(cached)
				return p, fmt.Errorf("shared file %s does not match its hash %s (%v): %w", f.Name, f.SHA256, err, errDamaged)
			}
		}
		link := filepath.Join(p.shared, f.Name)
		os.Remove(link)
		if err := os.Symlink(cached, link); err != nil {
			return p, fmt.Errorf("placing shared file %s: %w", f.Name, err)
		}
	}
	return p, nil
}

func fileHasHash(path, want string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, err
	}
	return hex.EncodeToString(h.Sum(nil)) == want, nil
}

func (w *worker) emit(e Event) {
	if w.cfg.OnEvent != nil {
		w.cfg.OnEvent(e)
	}
}

// runTask runs one task, with its retries, and records it. A task stopped
// by cancel or interrupt is left unrecorded, to be run again later.
func (w *worker) runTask(ctx context.Context, t taskRef) {
	if ctx.Err() != nil {
		w.taskDone(ctx, t, false)
		return
	}
	// A task of a chunk whose lease is lost, or whose time ran out, does
	// not start: its taker runs it.
	w.mu.Lock()
	live := t.chunk.live()
	if live {
		w.running[t.id] = true
		t.chunk.running[t.pos] = true
	}
	fin, running := t.chunk.finishedList(), t.chunk.runningList()
	w.mu.Unlock()
	if !live {
		w.taskDone(ctx, t, false)
		return
	}
	defer func() {
		w.mu.Lock()
		delete(w.running, t.id)
		delete(t.chunk.running, t.pos)
		w.mu.Unlock()
	}()
	if t.chunk.lease.Lease().Takeovers > 0 {
		// A chunk that changed hands may hold a task that takes its
		// workers down: record the start, so that if this worker is lost
		// too, its taker knows which task was running (see MaxLost).
		rctx, cancel := context.WithDeadline(ctx, t.chunk.lease.ValidUntil())
		err := t.chunk.lease.Renew(rctx, fin, running)
		cancel()
		if errors.Is(err, staging.ErrLeaseLost) {
			w.lose(t.chunk, err)
			w.taskDone(ctx, t, false)
			return
		}
	}
	w.emit(Event{Kind: TaskStarted, Task: t.id})
	st, err := w.execute(ctx, t.id, t.input)
	if err != nil {
		if ctx.Err() == nil {
			w.fail(fmt.Errorf("task %s: %w", t.id, err))
		}
		w.taskDone(ctx, t, false)
		return
	}
	if st == nil { // interrupted
		w.taskDone(ctx, t, false)
		return
	}
	w.mu.Lock()
	if st.Status == staging.StatusOK {
		w.summary.OK++
	} else {
		w.summary.Failed++
	}
	w.mu.Unlock()
	w.emit(Event{Kind: TaskFinished, Task: t.id, Status: st})
	w.taskDone(ctx, t, true)
}

// execute runs the attempts of one task and writes its result and status.
// It returns a nil status when ctx ended first, and an error only for
// store failures.
func (w *worker) execute(ctx context.Context, id string, input []byte) (*staging.Status, error) {
	if input == nil {
		if err := w.store(ctx, "reading input of task "+id, func(ctx context.Context) (err error) {
			input, _, err = w.run.Store.Get(ctx, w.run.TaskKey(id))
			return err
		}); err != nil {
			return nil, nil
		}
	}
	scratch := filepath.Join(w.cfg.WorkDir, "runs", w.run.ID, "tmp", id)
	defer os.RemoveAll(scratch)

	// This execution's own name: its output and logs are stored under
	// it, and the status that commits the task names it.
	exec := newExecID()
	var (
		st      = staging.Status{Task: id, Exec: exec, Worker: w.cfg.ID}
		a       attempt
		output  []byte
		reason  string
		written []string // keys this execution wrote
	)
	retries := w.man.Retries
	for n := 1; n <= retries+1; n++ {
		if err := os.MkdirAll(scratch, 0o755); err != nil {
			return nil, fmt.Errorf("creating scratch directory: %w", err)
		}
		env := append(os.Environ(),
			"BURST_RUN_ID="+w.run.ID,
			"BURST_TASK_ID="+id,
			"BURST_ATTEMPT="+strconv.Itoa(n),
			"BURST_SHARED_DIR="+w.shared,
		)
		a = w.runAttempt(ctx, scratch, env, input)
		if ctx.Err() != nil {
			return nil, nil
		}
		if a.notStarted {
			// Every task would fail the same way here, while another
			// worker may run them: stop this worker instead.
			return nil, fmt.Errorf("starting the interpreter %s: %w", w.cfg.Python, a.startErr)
		}
		st.Attempts = n
		reason = failureReason(a, w.man.Timeout.D())
		if reason == "" {
			output = a.stdout
		}
		if len(a.stderr) > stderrTail {
			key := w.run.LogKey(id, exec, n)
			written = append(written, key)
			if err := w.store(ctx, "storing stderr", func(ctx context.Context) error {
				_, err := w.run.Store.Put(ctx, key, a.stderr)
				return err
			}); err != nil {
				return nil, nil
			}
			st.LogAttempts = append(st.LogAttempts, n)
		}
		if reason == "" {
			break
		}
		w.log.Info("attempt failed", "task", id, "attempt", n, "reason", reason)
		os.RemoveAll(scratch)
	}
	st.Host = w.cfg.Host
	st.DurationS = round3(a.duration)
	st.MaxRSSKB = a.maxRSSKB
	st.StderrTail = tail(a.stderr, stderrTail)
	st.Finished = w.now().UTC()
	if a.startErr == nil {
		code := a.exitCode
		st.ExitCode = &code
	}
	if reason == "" {
		st.Status = staging.StatusOK
		key := w.run.ResultKey(id, exec)
		written = append(written, key)
		if err := w.store(ctx, "writing result", func(ctx context.Context) error {
			_, err := w.run.Store.Put(ctx, key, output)
			return err
		}); err != nil {
			return nil, nil
		}
	} else {
		st.Status = staging.StatusFailed
		st.Error = reason
	}
	return w.commit(ctx, &st, written)
}

// commit creates the task's status, the commit point of its execution.
// When another execution committed first, this one's output and logs are
// removed and the winner's status is returned.
func (w *worker) commit(ctx context.Context, st *staging.Status, written []string) (*staging.Status, error) {
	var cur *staging.Status
	err := w.store(ctx, "committing", func(ctx context.Context) (err error) {
		cur, err = w.run.CommitStatus(ctx, st)
		if errors.Is(err, staging.ErrExists) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, nil // ctx ended
	}
	if cur.Exec == st.Exec {
		return cur, nil
	}
	w.log.Info("task already committed by another execution; discarding this one's", "task", st.Task, "winner", cur.Exec, "worker", cur.Worker)
	w.mu.Lock()
	w.summary.Duplicates++
	w.mu.Unlock()
	for _, k := range written {
		if err := w.run.Store.Delete(ctx, k); err != nil && ctx.Err() == nil {
			w.log.Warn("removing a losing execution's file", "key", k, "err", err)
		}
	}
	return cur, nil
}

// newExecID names one execution of one task: 48 random bits.
func newExecID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// failureReason says why an attempt failed, or "" when it succeeded.
func failureReason(a attempt, timeout time.Duration) string {
	last := lastLine(a.stderr)
	withLast := func(s string) string {
		if last != "" {
			return s + ": " + last
		}
		return s
	}
	switch {
	case a.startErr != nil:
		return "could not start the interpreter: " + a.startErr.Error()
	case a.timedOut:
		return fmt.Sprintf("timed out after %s", timeout)
	case a.signal != "":
		return withLast("killed by signal " + a.signal)
	case a.exitCode != 0:
		return withLast(fmt.Sprintf("exit code %d", a.exitCode))
	case len(a.stdout) == 0:
		return "stdout is empty: the script must write a pickled dict to sys.stdout.buffer"
	}
	v, err := pickle.Unmarshal(a.stdout)
	if err != nil {
		return fmt.Sprintf("stdout is not a pickle (%v; it starts with %q)", err, head(a.stdout, 40))
	}
	if _, ok := v.(*pickle.Dict); !ok {
		return fmt.Sprintf("stdout is a pickle of %s, not a dict", pickle.TypeName(v))
	}
	return ""
}

func head(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
