package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/provision"
	"github.com/slicerburst/burst/staging"
)

// localRun runs a staged run's tasks on this machine's cores, showing
// progress and collecting results as they finish: the shared end of submit
// and resume.
type localRun struct {
	g       *globalOptions
	run     *staging.Run
	man     *staging.Manifest
	workers int // 0: none here
	python  string
	out     string
	json    bool
	// hosts run workers over ssh too, with the interpreter sshPython
	// (found on each host when empty).
	hosts     []provision.SSHHost
	sshPython string
	keepalive time.Duration
}

// runSummary is the final report, printed as JSON with --json.
type runSummary struct {
	Run       string  `json:"run"`
	State     string  `json:"state"`
	Total     int     `json:"total"`
	OK        int     `json:"ok"`
	Failed    int     `json:"failed"`
	Unfinish  int     `json:"unfinished"`
	DurationS float64 `json:"duration_s"`
	Out       string  `json:"out"`
	Results   string  `json:"results"`
	Store     string  `json:"store"`
}

func (l *localRun) execute(ctx context.Context) error {
	io := l.g.io
	human := io.Out
	if l.json {
		human = io.Err
	}
	start := time.Now()
	coll, err := staging.NewCollector(l.run, l.man, l.out)
	if err != nil {
		return err
	}
	defer coll.Close()

	// What is finished already (a resumed run) is collected first.
	prog, err := l.run.ReadProgress(ctx, l.man)
	if err != nil {
		return err
	}
	if _, err := coll.CollectAll(ctx, prog); err != nil {
		return err
	}
	var (
		mu      sync.Mutex
		c       = counts{Total: len(l.man.Tasks), OK: prog.OK, Failed: prog.Failed}
		collErr error
	)
	view := newProgressView(human, io.OutTTY && !l.json, io.Width, c.done())
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
	pool := provision.Machines{
		Hosts: l.hosts, OnEvent: onEvent,
		SSH: provision.SSH{
			Python: l.sshPython, Heartbeat: 2 * time.Second, Logger: slog.Default(), Verbose: l.g.verbose,
			Stream: staging.StreamOptions{PingEvery: l.keepalive},
			OnState: func(st provision.HostState) {
				mu.Lock()
				hosts.state(st)
				mu.Unlock()
			},
			OnLog: func(host, line string) {
				mu.Lock()
				view.Note(io.Err, host+": "+line)
				mu.Unlock()
			},
		},
		OnHostError: func(err error) {
			mu.Lock()
			view.Note(io.Err, fmt.Sprintf("burst: %v; going on with the other workers", err))
			mu.Unlock()
		},
	}
	if l.workers > 0 {
		hosts.state(provision.HostState{Host: provision.LocalHost(), State: provision.HostRunning, Slots: l.workers})
	}
	for _, h := range l.hosts {
		hosts.get(h.Name())
	}
	if l.workers > 0 {
		pool.Local = &provision.Local{
			Slots: l.workers, Python: l.python, Heartbeat: 2 * time.Second,
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
		runErr = pool.Run(ctx, l.run)
	}()
	tick := 200 * time.Millisecond
	if !io.OutTTY {
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
		if len(l.hosts) > 0 {
			snap.Hosts = hosts.summary()
		}
		view.Update(snap)
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
	prog, err = l.run.ReadProgress(cctx, l.man)
	if err == nil {
		_, err = coll.CollectAll(cctx, prog)
	}
	if err != nil && collErr == nil {
		collErr = err
	}
	if err := coll.Close(); err != nil && collErr == nil {
		collErr = err
	}
	final := counts{Total: len(l.man.Tasks), OK: prog.OK, Failed: prog.Failed}
	if len(l.hosts) > 0 {
		final.Hosts = hosts.summary()
	}
	view.Done(final)

	s := runSummary{
		Run: l.run.ID, State: prog.State, Total: final.Total, OK: final.OK, Failed: final.Failed,
		Unfinish: final.Total - final.done(), DurationS: round1(time.Since(start)),
		Out: l.out, Results: filepath.Join(l.out, "results.jsonl"), Store: l.run.Store.Location(),
	}
	switch {
	case errors.Is(runErr, executor.ErrCancelled):
		s.State = staging.StateCancelled
	case runErr != nil && ctx.Err() != nil:
		s.State = staging.StateStopped
	}
	l.report(human, s)
	if l.json {
		_ = writeJSON(io.Out, s)
	}
	switch {
	case runErr != nil && ctx.Err() != nil:
		return exitError{code: exitInterrupted, msg: fmt.Sprintf("interrupted: %d of %d tasks finished; carry on with: burst resume %s", final.done(), final.Total, l.run.ID)}
	case errors.Is(runErr, executor.ErrCancelled):
		return exitError{code: exitTaskFailed, msg: fmt.Sprintf("run %s was cancelled with %d of %d tasks finished", l.run.ID, final.done(), final.Total)}
	case runErr != nil:
		return fmt.Errorf("run %s stopped: %w (burst resume %s carries on once that is fixed)", l.run.ID, runErr, l.run.ID)
	case collErr != nil:
		return fmt.Errorf("collecting results: %w (burst results %s tries again)", collErr, l.run.ID)
	case final.Failed > 0:
		return exitError{code: exitTaskFailed}
	}
	return nil
}

func (l *localRun) report(w io.Writer, s runSummary) {
	fmt.Fprintf(w, "%s in %s: %d ok, %d failed", s.State, fmtDuration(time.Duration(s.DurationS*float64(time.Second))), s.OK, s.Failed)
	if s.Unfinish > 0 {
		fmt.Fprintf(w, ", %d not finished", s.Unfinish)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "results: %s\n", s.Results)
	fmt.Fprintf(w, "outputs: %s\n", filepath.Join(s.Out, "outputs"))
	if s.Failed > 0 {
		fmt.Fprintf(w, "failed:  %s (inputs and stderr; burst logs %s TASK, burst repro %s TASK)\n", filepath.Join(s.Out, "failed"), s.Run, s.Run)
	}
}

func round1(d time.Duration) float64 { return float64(d.Milliseconds()/100) / 10 }
