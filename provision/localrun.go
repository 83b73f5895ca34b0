package provision

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/staging"
)

// LocalRun runs a staged run's tasks on this machine's cores and on ssh
// hosts, collecting results into Out as they finish: the shared end of
// burst submit and burst resume.
type LocalRun struct {
	Run     *staging.Run
	Man     *staging.Manifest
	Workers int // on this machine; 0: none here
	Python  string
	Out     string
	// Hosts run workers over ssh too, with the interpreter SSHPython
	// (found on each host when empty).
	Hosts     []SSHHost
	SSHPython string
	Keepalive time.Duration
	Verbose   bool

	// Started, when set, is called once, with the number of tasks already
	// finished (a resumed run), before any worker starts.
	Started func(done int)
	// Progress, when set, is called every Tick until the workers exit,
	// never at once with Note.
	Progress func(LocalProgress)
	Tick     time.Duration
	// Note, when set, is told a line to show: a host's log line, a host
	// lost.
	Note func(line string)
}

// LocalProgress is a local run's progress so far.
type LocalProgress struct {
	Total, OK, Failed, Running int
	// Hosts, with ssh hosts, says where the workers are: "here 2, lab1 4".
	Hosts string
}

// LocalResult is how a local run ended.
type LocalResult struct {
	// Progress is the run's progress as the store has it at the end.
	Progress staging.Progress
	// Hosts, with ssh hosts, is the last LocalProgress.Hosts.
	Hosts string
	// RunErr is the workers' error: executor.ErrCancelled, ctx's error, or
	// what stopped them.
	RunErr error
	// CollErr is the first error collecting results.
	CollErr error
}

// Execute runs the workers until they exit, then collects from the store
// what other workers finished too. Its error is one that stopped the run
// from starting; how the run ended is in the result.
func (l *LocalRun) Execute(ctx context.Context) (LocalResult, error) {
	coll, err := staging.NewCollector(l.Run, l.Man, l.Out)
	if err != nil {
		return LocalResult{}, err
	}
	defer coll.Close()

	// What is finished already (a resumed run) is collected first.
	prog, err := l.Run.ReadProgress(ctx, l.Man)
	if err != nil {
		return LocalResult{}, err
	}
	if _, err := coll.CollectAll(ctx, prog); err != nil {
		return LocalResult{}, err
	}
	var (
		mu      sync.Mutex
		c       = LocalProgress{Total: len(l.Man.Tasks), OK: prog.OK, Failed: prog.Failed}
		collErr error
	)
	if l.Started != nil {
		l.Started(c.OK + c.Failed)
	}
	note := func(line string) {
		if l.Note != nil {
			l.Note(line)
		}
	}
	finished := make(chan *staging.Status, 256)
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for st := range finished {
			if err := coll.Collect(ctx, st.Task, st); err != nil && ctx.Err() == nil {
				mu.Lock()
				if collErr == nil {
					collErr = err
				}
				mu.Unlock()
			}
		}
	}()

	hosts := newHostCounts()
	onEvent := func(host string, e executor.Event) {
		mu.Lock()
		switch e.Kind {
		case executor.TaskStarted:
			hosts.started(host)
		case executor.TaskFinished:
			hosts.finished(host)
			if e.Status.Status == staging.StatusOK {
				c.OK++
			} else {
				c.Failed++
			}
		}
		mu.Unlock()
		if e.Kind == executor.TaskFinished {
			finished <- e.Status
		}
	}
	pool := Machines{
		Hosts: l.Hosts, OnEvent: onEvent,
		SSH: SSH{
			Python: l.SSHPython, Heartbeat: 2 * time.Second, Logger: slog.Default(), Verbose: l.Verbose,
			Stream: staging.StreamOptions{PingEvery: l.Keepalive},
			OnState: func(st HostState) {
				mu.Lock()
				hosts.state(st)
				mu.Unlock()
			},
			OnLog: func(host, line string) {
				mu.Lock()
				note(host + ": " + line)
				mu.Unlock()
			},
		},
		OnHostError: func(err error) {
			mu.Lock()
			note(fmt.Sprintf("burst: %v; going on with the other workers", err))
			mu.Unlock()
		},
	}
	if l.Workers > 0 {
		hosts.state(HostState{Host: LocalHost(), State: HostRunning, Slots: l.Workers})
	}
	for _, h := range l.Hosts {
		hosts.get(h.Name())
	}
	if l.Workers > 0 {
		pool.Local = &Local{
			Slots: l.Workers, Python: l.Python, Heartbeat: 2 * time.Second,
			Logger: slog.Default(),
		}
	}
	var (
		runErr error
		wg     sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		runErr = pool.Run(ctx, l.Run)
	}()
	tick := l.Tick
	if tick <= 0 {
		tick = time.Second
	}
	workerDone := make(chan struct{})
	go func() { wg.Wait(); close(workerDone) }()
	t := time.NewTicker(tick)
	defer t.Stop()
loop:
	for {
		mu.Lock()
		snap := c
		snap.Running = hosts.running()
		if len(l.Hosts) > 0 {
			snap.Hosts = hosts.summary()
		}
		if l.Progress != nil {
			l.Progress(snap)
		}
		mu.Unlock()
		select {
		case <-workerDone:
			break loop
		case <-t.C:
		}
	}
	close(finished)
	<-collected

	// Other workers (burst worker elsewhere) may have finished tasks too:
	// collect from the store, which has the last word.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	prog, err = l.Run.ReadProgress(cctx, l.Man)
	if err == nil {
		_, err = coll.CollectAll(cctx, prog)
	}
	if err != nil && collErr == nil {
		collErr = err
	}
	if err := coll.Close(); err != nil && collErr == nil {
		collErr = err
	}
	res := LocalResult{Progress: prog, RunErr: runErr, CollErr: collErr}
	if len(l.Hosts) > 0 {
		res.Hosts = hosts.summary()
	}
	return res, nil
}

// hostCounts follows the workers of each host of a run: their slots, state
// and running tasks, in the order the hosts appeared.
type hostCounts struct {
	order []string
	hosts map[string]*hostCount
}

type hostCount struct {
	slots, running int
	state          string
}

func newHostCounts() *hostCounts { return &hostCounts{hosts: map[string]*hostCount{}} }

func (h *hostCounts) get(host string) *hostCount {
	c := h.hosts[host]
	if c == nil {
		c = &hostCount{state: HostStarting}
		h.hosts[host] = c
		h.order = append(h.order, host)
	}
	return c
}

func (h *hostCounts) started(host string)  { h.get(host).running++ }
func (h *hostCounts) finished(host string) { c := h.get(host); c.running = max(0, c.running-1) }

// state records a host's new state; a host that stops has nothing running.
func (h *hostCounts) state(st HostState) {
	c := h.get(st.Host)
	c.state = st.State
	if st.Slots > 0 {
		c.slots = st.Slots
	}
	if st.State != HostRunning && st.State != HostStarting {
		c.running = 0
	}
}

func (h *hostCounts) running() int {
	n := 0
	for _, c := range h.hosts {
		n += c.running
	}
	return n
}

// summary is "host slots" for working hosts, "host state" for the others.
func (h *hostCounts) summary() string {
	parts := make([]string, 0, len(h.order))
	for _, name := range h.order {
		c := h.hosts[name]
		switch c.state {
		case HostRunning:
			parts = append(parts, fmt.Sprintf("%s %d", name, c.slots))
		default:
			parts = append(parts, name+" "+c.state)
		}
	}
	return strings.Join(parts, ", ")
}
