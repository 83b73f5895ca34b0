// Package executor is the worker agent: it claims chunks of a run's tasks
// through leases in the run store, runs one interpreter process per slot,
// writes results and statuses once, heartbeats, and honours cancel flags.
// The same code runs in `burst submit` on a laptop and in `burst worker` on
// a VM.
package executor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/slicerburst/burst/staging"
)

// ErrCancelled means the run was cancelled (burst cancel) while this worker
// was on it.
var ErrCancelled = errors.New("run cancelled")

// Config is what a worker needs. Run, Python and WorkDir are required.
type Config struct {
	Run *staging.Run
	// Slots is the number of tasks run at once (one interpreter each).
	Slots int
	// Python is the interpreter's path (see ResolvePython).
	Python string
	// WorkDir holds the script, the shared files and each task's
	// scratch directory. It is this worker's own.
	WorkDir string
	// CacheDir keeps shared files by content hash across runs; WorkDir's
	// when empty.
	CacheDir string
	// ID names the worker in leases and heartbeats; generated when empty.
	ID string
	// Host names the machine in heartbeats and task statuses; the
	// hostname when empty.
	Host string
	// Heartbeat is how often the worker writes its heartbeat and checks
	// for a cancel flag (default 5s).
	Heartbeat time.Duration
	// Poll is how long the worker waits before looking again at chunks
	// that other workers hold (default: a quarter of the lease TTL, at
	// most 5s).
	Poll time.Duration
	// OnEvent, when set, is called as tasks start and finish, from
	// several goroutines.
	OnEvent func(Event)
	Logger  *slog.Logger

	// Notices, when set, is asked every NoticePoll (default 5s) whether
	// the machine is about to go away. On a spot interruption notice the
	// worker stops claiming, kills its running tasks, releases its leases
	// and returns a *NoticeError. On a rebalance recommendation it drains:
	// it stops claiming and starting tasks, lets the running ones finish
	// for up to Drain (default 90s), kills what is left, releases its
	// leases and returns a *NoticeError. Killed tasks are not recorded:
	// whoever takes their chunks runs them again from the first attempt.
	Notices    NoticeSource
	NoticePoll time.Duration
	Drain      time.Duration
	// Instance, when set, is written into the heartbeat.
	Instance *Instance
	// Warm tunes the task servers of a warm run (see WarmLimits).
	Warm WarmLimits
	// Clock is this machine's clock (time.Now when nil), used only for
	// what people read: heartbeats, finish times. Leases are judged by the
	// store's clock and by elapsed time, so a machine whose clock is off
	// works like any other.
	Clock func() time.Time
}

// EventKind says what happened to a task.
type EventKind int

const (
	TaskStarted EventKind = iota
	TaskFinished
)

// Event reports a task's progress on this worker.
type Event struct {
	Kind   EventKind
	Task   string
	Status *staging.Status // for TaskFinished
}

// Summary is what one worker did.
type Summary struct {
	OK, Failed int
	// Duplicates counts tasks finished here that another worker had
	// already finished (after a lease was lost); their results were
	// discarded.
	Duplicates int
}

// NewWorkerID returns a worker id unique across machines: host, pid and
// random bits.
func NewWorkerID() string {
	host, _ := os.Hostname()
	var b [3]byte
	_, _ = rand.Read(b[:])
	id := fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	if !staging.ValidID(id) {
		id = fmt.Sprintf("w-%d-%s", os.Getpid(), hex.EncodeToString(b[:]))
	}
	return id
}

// worker is one Run call's state.
type worker struct {
	cfg    Config
	run    *staging.Run
	man    *staging.Manifest
	log    *slog.Logger
	script string
	shared string
	// servers run the attempts of a warm run; nil when it is cold.
	servers *serverPool
	ttl     time.Duration
	cancel  context.CancelCauseFunc
	// stopClaiming ends the claiming and the feeding of tasks to the
	// slots; running tasks go on.
	stopClaiming context.CancelFunc
	claimer      *Claimer
	bgctx        context.Context // the renewals'

	renewers sync.WaitGroup
	mu       sync.Mutex
	held     map[int]*chunkState
	running  map[string]bool
	summary  Summary
	started  time.Time
	fatalErr error
	// notice is the notice that stopped or drains the worker; draining
	// is set while running tasks are let finish.
	notice   *Notice
	draining bool
}

// chunkState tracks a chunk this worker holds. Its fields but lease and
// stop are guarded by worker.mu.
type chunkState struct {
	lease    *staging.HeldLease
	finished map[int]bool // positions within the chunk
	running  map[int]bool // positions running now
	pending  int          // tasks handed to slots, not finished
	fed      bool         // every task has been handed out
	lost     bool
	ended    bool          // completed, released or lost
	stop     chan struct{} // closed when ended: stops its renewals
}

func (c *chunkState) finishedList() []int { return keys(c.finished) }
func (c *chunkState) runningList() []int  { return keys(c.running) }

func keys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	return out
}

// live reports whether tasks of the chunk may start: the lease is held
// and its time has not run out (on the monotonic clock, whatever the
// renewals are doing).
func (c *chunkState) live() bool {
	return !c.lost && time.Now().Before(c.lease.ValidUntil())
}

type taskRef struct {
	chunk *chunkState
	pos   int
	id    string
	input []byte // from the chunk's bundle; nil: read it on its own
}

// Run works on the run until every chunk is done (staying, while other
// workers hold the last chunks, to take over any whose holder dies), the
// run is cancelled
// (ErrCancelled), a notice says the machine is going away (*NoticeError;
// see Config.Notices) or ctx ends (its error). On the way out it stops its
// processes and releases its leases so that other workers, or a later
// resume, take over at once. A run staged by a burst of another protocol
// version is refused with a *staging.ProtocolError.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	if cfg.Slots < 1 {
		return Summary{}, fmt.Errorf("worker needs at least one slot, got %d", cfg.Slots)
	}
	if cfg.ID == "" {
		cfg.ID = NewWorkerID()
	}
	if cfg.Host == "" {
		cfg.Host, _ = os.Hostname()
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 5 * time.Second
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(cfg.WorkDir, "cache")
	}
	if cfg.NoticePoll <= 0 {
		cfg.NoticePoll = defaultNoticePoll
	}
	if cfg.Drain <= 0 {
		cfg.Drain = defaultDrain
	}
	// Tasks run in directories of their own: every path they are given
	// must be absolute.
	for _, d := range []*string{&cfg.WorkDir, &cfg.CacheDir} {
		abs, err := filepath.Abs(*d)
		if err != nil {
			return Summary{}, fmt.Errorf("work directory: %w", err)
		}
		*d = abs
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &worker{
		cfg: cfg, run: cfg.Run, log: log.With("worker", cfg.ID, "run", cfg.Run.ID),
		held: map[int]*chunkState{}, running: map[string]bool{},
	}
	w.started = w.now()
	// The store may be down for a while: wait for it.
	if err := retryStore(ctx, w.log, "reading the manifest", func(ctx context.Context) (err error) {
		w.man, err = w.run.Manifest(ctx)
		return err
	}); err != nil {
		return Summary{}, err
	}
	w.ttl = w.man.LeaseTTL.D()
	if w.cfg.Poll <= 0 {
		w.cfg.Poll = min(w.ttl/4, 5*time.Second)
	}
	if err := retryStore(ctx, w.log, "fetching the script and shared files", w.prepare); err != nil {
		return Summary{}, err
	}
	if err := w.startServers(); err != nil {
		return Summary{}, err
	}
	defer w.stopServers()

	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w.cancel = cancel
	var cancelled bool
	if err := retryStore(wctx, w.log, "checking for cancel", func(ctx context.Context) (err error) {
		cancelled, err = w.cancelRequested(ctx)
		return err
	}); err != nil {
		return Summary{}, err
	} else if cancelled {
		return Summary{}, ErrCancelled
	}

	cctx, stopClaiming := context.WithCancel(wctx)
	defer stopClaiming()
	w.stopClaiming = stopClaiming

	var bg sync.WaitGroup
	bgctx, stopBG := context.WithCancel(wctx)
	w.bgctx = bgctx
	w.claimer = NewClaimer(w.run, w.man, w.cfg.ID, w.cfg.Poll)
	bg.Add(1)
	go func() { defer bg.Done(); w.heartbeatLoop(bgctx) }()
	if cfg.Notices != nil {
		bg.Add(1)
		go func() { defer bg.Done(); w.noticeLoop(bgctx) }()
	}

	work := make(chan taskRef)
	var slots sync.WaitGroup
	for i := 0; i < cfg.Slots; i++ {
		slots.Add(1)
		go func() {
			defer slots.Done()
			for t := range work {
				if cctx.Err() != nil {
					// Handed over as the claiming stopped (drain):
					// not started, it stays in the chunk for its taker.
					w.taskDone(wctx, t, false)
					continue
				}
				w.runTask(wctx, t)
			}
		}()
	}
	claimErr := w.claimLoop(cctx, work)
	close(work)
	slots.Wait()
	stopBG()
	bg.Wait()
	w.renewers.Wait()

	// Release what we still hold, with a context of its own: the run's may
	// be cancelled already, and a lease left behind delays the next worker
	// by a whole TTL.
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer ccancel()
	released := w.releaseAll(cctx)
	w.writeHeartbeat(cctx, "exited")

	w.mu.Lock()
	sum, fatal, notice := w.summary, w.fatalErr, w.notice
	w.mu.Unlock()
	switch cause := context.Cause(wctx); {
	case fatal != nil:
		return sum, fatal
	case errors.Is(cause, ErrCancelled):
		return sum, ErrCancelled
	case notice != nil:
		return sum, &NoticeError{Notice: *notice, Released: released}
	case ctx.Err() != nil:
		return sum, ctx.Err()
	case claimErr != nil:
		return sum, claimErr
	}
	return sum, nil
}

// fail stops the worker for an error it cannot work around (the store is
// unreachable beyond retries, the disk is full).
func (w *worker) fail(err error) {
	w.mu.Lock()
	if w.fatalErr == nil {
		w.fatalErr = err
	}
	w.mu.Unlock()
	w.cancel(err)
}

// claimLoop claims chunks and hands their tasks to the slots until every
// chunk is done or ctx ends.
func (w *worker) claimLoop(ctx context.Context, work chan<- taskRef) error {
	c := w.claimer
	for {
		held, err := c.Next(ctx)
		if ctx.Err() != nil {
			if held != nil {
				// Claimed as the worker was told to stop: hold it, so
				// that it is released with the others.
				w.hold(held)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("claiming work: %w", err)
		}
		if held == nil {
			w.log.Debug("every chunk is done", "claims", c.Stats())
			return nil
		}
		w.log.Debug("claimed chunk", "chunk", held.Chunk, "tasks", w.man.Chunks[held.Chunk].Len(), "takeover", held.TakenOver)
		if err := w.feed(ctx, held, work); err != nil {
			return err
		}
	}
}

// feed hands a held chunk's unfinished tasks to the slots, one at a time,
// so that the next chunk is claimed only when a slot is about to be free.
func (w *worker) feed(ctx context.Context, held *staging.HeldLease, work chan<- taskRef) error {
	c := w.man.Chunks[held.Chunk]
	cs := w.hold(held)
	var inputs map[string][]byte
	if w.man.Bundles {
		var err error
		if inputs, err = w.run.ReadBundle(ctx, held.Chunk); err != nil && ctx.Err() == nil {
			w.log.Warn("reading the chunk's input bundle; reading inputs one by one", "chunk", held.Chunk, "err", err)
		}
	}
	lease := held.Lease()
	for pos := 0; pos < c.Len(); pos++ {
		id := w.man.Tasks[c.Start+pos]
		w.mu.Lock()
		skip, live := cs.finished[pos], cs.live()
		w.mu.Unlock()
		if !live {
			break
		}
		if skip {
			continue
		}
		if held.TakenOver {
			// The previous holder may have finished it after its last
			// renewal.
			if _, err := w.run.Store.Stat(ctx, w.run.StatusKey(id)); err == nil {
				w.mu.Lock()
				cs.finished[pos] = true
				w.mu.Unlock()
				continue
			}
			if n := lease.Lost[pos]; n >= w.maxLost() {
				w.failLost(ctx, taskRef{chunk: cs, pos: pos, id: id}, n)
				continue
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		w.mu.Lock()
		cs.pending++
		w.mu.Unlock()
		select {
		case work <- taskRef{chunk: cs, pos: pos, id: id, input: inputs[id]}:
		case <-ctx.Done():
			w.mu.Lock()
			cs.pending--
			w.mu.Unlock()
			return nil
		}
	}
	w.mu.Lock()
	cs.fed = true
	w.mu.Unlock()
	w.maybeComplete(ctx, held.Chunk, cs)
	return nil
}

// maxLost is how often a task's worker may be lost while it runs before the
// task is failed.
func (w *worker) maxLost() int {
	if w.man.MaxLost > 0 {
		return w.man.MaxLost
	}
	return staging.DefaultMaxLost
}

// failLost commits a task whose worker was lost n times while it ran as
// failed, without running it again: it takes its workers down (out of
// memory, a full disk), and would take down every worker in turn.
func (w *worker) failLost(ctx context.Context, t taskRef, n int) {
	st := &staging.Status{
		Task: t.id, Exec: newExecID(), Worker: w.cfg.ID, Status: staging.StatusFailed,
		Error:    fmt.Sprintf("its worker was lost %d times while running it (killed, out of memory, or its machine went away): not run again", n),
		Finished: w.now().UTC(),
	}
	w.log.Warn("failing a task that its workers did not survive", "task", t.id, "lost", n)
	cur, err := w.commit(ctx, st, nil)
	if err != nil || cur == nil {
		return
	}
	w.mu.Lock()
	if cur.Status == staging.StatusOK {
		w.summary.OK++
	} else {
		w.summary.Failed++
	}
	t.chunk.finished[t.pos] = true
	w.mu.Unlock()
	w.emit(Event{Kind: TaskFinished, Task: t.id, Status: cur})
}

// hold records a chunk just claimed as held, and keeps its lease renewed.
func (w *worker) hold(held *staging.HeldLease) *chunkState {
	cs := &chunkState{lease: held, finished: map[int]bool{}, running: map[int]bool{}, stop: make(chan struct{})}
	for _, p := range held.Lease().Finished {
		cs.finished[p] = true
	}
	w.mu.Lock()
	w.held[held.Chunk] = cs
	w.mu.Unlock()
	w.renewers.Add(1)
	go func() { defer w.renewers.Done(); w.renew(w.bgctx, cs) }()
	return cs
}

// end records that the holding of a chunk ended (completed, released or
// lost). With w.mu held.
func (w *worker) end(cs *chunkState, lost bool) {
	if cs.ended {
		return
	}
	cs.ended, cs.lost = true, cs.lost || lost
	if w.held[cs.lease.Chunk] == cs {
		delete(w.held, cs.lease.Chunk)
	}
	close(cs.stop)
}

// lose gives up a chunk whose lease is lost: none of its tasks starts
// from now on.
func (w *worker) lose(cs *chunkState, why error) {
	cs.lease.Lose()
	w.mu.Lock()
	w.end(cs, true)
	w.mu.Unlock()
	w.log.Warn("lease lost: not starting the chunk's remaining tasks", "chunk", cs.lease.Chunk, "why", why)
}

// taskDone records a finished task in its chunk and completes the chunk
// when it was the last.
func (w *worker) taskDone(ctx context.Context, t taskRef, finished bool) {
	w.mu.Lock()
	t.chunk.pending--
	if finished {
		t.chunk.finished[t.pos] = true
	}
	w.mu.Unlock()
	w.maybeComplete(ctx, t.chunk.lease.Chunk, t.chunk)
}

func (w *worker) maybeComplete(ctx context.Context, chunk int, cs *chunkState) {
	w.mu.Lock()
	ready := cs.fed && cs.pending == 0 && !cs.ended && len(cs.finished) == w.man.Chunks[chunk].Len()
	var fin []int
	if ready && ctx.Err() == nil {
		fin = cs.finishedList()
		w.end(cs, false) // nobody else completes it, or renews it
	}
	w.mu.Unlock()
	if !ready || ctx.Err() != nil {
		return
	}
	// Within the lease's time: past it, a taker finds every task
	// committed and completes the chunk itself.
	cctx, cancel := context.WithDeadline(ctx, cs.lease.ValidUntil())
	defer cancel()
	var lost error
	err := w.store(cctx, "completing chunk", func(ctx context.Context) error {
		err := cs.lease.Complete(ctx, fin)
		if errors.Is(err, staging.ErrLeaseLost) {
			lost = err
			return nil
		}
		return err
	})
	if err == nil && lost == nil {
		w.claimer.Completed(chunk)
	}
}

// renew keeps a held chunk's lease alive, renewing it every third of its
// TTL, independently of the other chunks'. Each renewal is bounded by the
// time left on the lease: one that cannot get through before the lease
// lapses loses the chunk at once.
func (w *worker) renew(ctx context.Context, cs *chunkState) {
	margin := min(w.ttl/10, time.Second)
	for {
		due := cs.lease.ValidUntil().Add(-2 * w.ttl / 3)
		select {
		case <-ctx.Done():
			return
		case <-cs.stop:
			return
		case <-time.After(time.Until(due)):
		}
		rctx, cancel := context.WithDeadline(ctx, cs.lease.ValidUntil().Add(-margin))
		err := w.renewOnce(rctx, cs)
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return
		default:
			w.lose(cs, err)
			return
		}
	}
}

// renewOnce renews a lease, trying again after store errors until ctx
// ends.
func (w *worker) renewOnce(ctx context.Context, cs *chunkState) error {
	for {
		w.mu.Lock()
		if cs.ended {
			w.mu.Unlock()
			return nil
		}
		fin, running := cs.finishedList(), cs.runningList()
		w.mu.Unlock()
		err := cs.lease.Renew(ctx, fin, running)
		if err == nil || errors.Is(err, staging.ErrLeaseLost) {
			return err
		}
		w.mu.Lock()
		ended := cs.ended
		w.mu.Unlock()
		if ended {
			return nil // completed or released meanwhile
		}
		w.log.Warn("renewing lease; trying again", "chunk", cs.lease.Chunk, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("lease not renewed in time: %w", err)
		case <-time.After(min(w.ttl/20, 500*time.Millisecond)):
		}
	}
}

// releaseAll releases the leases still held and returns how many it
// released.
func (w *worker) releaseAll(ctx context.Context) int {
	w.mu.Lock()
	var items []*chunkState
	for _, cs := range w.held {
		items = append(items, cs)
	}
	w.mu.Unlock()
	n := 0
	for _, cs := range items {
		w.mu.Lock()
		fin := cs.finishedList()
		w.end(cs, false)
		w.mu.Unlock()
		err := cs.lease.Release(ctx, fin)
		switch {
		case err == nil:
			n++
			w.log.Debug("released chunk", "chunk", cs.lease.Chunk, "finished", len(fin))
		case !errors.Is(err, staging.ErrLeaseLost):
			w.log.Warn("releasing lease; it will lapse on its own", "chunk", cs.lease.Chunk, "err", err)
		}
	}
	return n
}

func (w *worker) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.Heartbeat)
	defer t.Stop()
	for {
		w.writeHeartbeat(ctx, "running")
		cancelled, err := w.cancelRequested(ctx)
		if err != nil && ctx.Err() == nil {
			w.log.Warn("checking for cancel", "err", err)
		}
		if cancelled {
			w.log.Info("run cancelled: stopping")
			w.cancel(ErrCancelled)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *worker) cancelRequested(ctx context.Context) (bool, error) {
	return w.run.Cancelled(ctx)
}

func (w *worker) writeHeartbeat(ctx context.Context, state string) {
	w.mu.Lock()
	if state == "running" && w.draining {
		state = "draining"
	}
	hb := staging.Heartbeat{
		Worker: w.cfg.ID, Host: w.cfg.Host, PID: os.Getpid(), Slots: w.cfg.Slots,
		OK: w.summary.OK, Failed: w.summary.Failed, State: state,
		Started: w.started, LastSeen: w.now().UTC(), Running: []string{},
		HeartbeatS: w.cfg.Heartbeat.Seconds(),
	}
	if w.notice != nil {
		hb.Reason = w.notice.String()
	}
	if in := w.cfg.Instance; in != nil {
		hb.Instance, hb.InstanceType, hb.Zone = in.ID, in.Type, in.Zone
	}
	for id := range w.running {
		hb.Running = append(hb.Running, id)
	}
	w.mu.Unlock()
	data, _ := json.Marshal(hb)
	if _, err := w.run.Store.Put(ctx, w.run.WorkerKey(w.cfg.ID), data); err != nil && ctx.Err() == nil {
		w.log.Warn("writing heartbeat", "err", err)
	}
}

// now reads the machine's clock (see Config.Clock).
func (w *worker) now() time.Time {
	if w.cfg.Clock != nil {
		return w.cfg.Clock()
	}
	return time.Now()
}

// store runs one store operation, trying it again with backoff after
// errors for as long as ctx lasts: a store outage stalls the worker but
// does not end it. It returns nil, or ctx's error, or an error no retry
// can fix (the bucket is gone, access denied, the run removed), after
// which the worker stops.
func (w *worker) store(ctx context.Context, what string, op func(context.Context) error) error {
	err := retryStore(ctx, w.log, what, op)
	if err != nil && ctx.Err() == nil {
		w.fail(fmt.Errorf("%s: %w", what, err))
	}
	return err
}

// retryStore runs op until it succeeds, ctx ends, or it fails in a way no
// retry can fix (see permanent), waiting between tries with exponential
// backoff and jitter up to 30s.
func retryStore(ctx context.Context, log *slog.Logger, what string, op func(context.Context) error) error {
	backoff := 200 * time.Millisecond
	for {
		err := op(ctx)
		if err == nil || permanent(err) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := backoff/2 + mrand.N(backoff)
		log.Warn("store operation failed; trying again", "op", what, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// permanent says whether a store error is one that trying again cannot
// fix: no access to the store, the run or an object of it missing (the
// run was removed), a manifest or a shared file that cannot be used, a
// local file that cannot be written.
func permanent(err error) bool {
	var pe *os.PathError
	var le *os.LinkError
	return errors.Is(err, staging.ErrAccess) || errors.Is(err, staging.ErrNotFound) ||
		errors.Is(err, staging.ErrNoRun) || errors.Is(err, staging.ErrBadManifest) ||
		errors.Is(err, errDamaged) || errors.As(err, &pe) || errors.As(err, &le)
}

// round3 rounds seconds to milliseconds for the records.
func round3(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }
