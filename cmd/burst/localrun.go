package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
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
	var view *progressView
	tick := 200 * time.Millisecond
	if !io.OutTTY {
		tick = time.Second
	}
	res, err := (&provision.LocalRun{
		Run: l.run, Man: l.man, Workers: l.workers, Python: l.python, Out: l.out,
		Hosts: l.hosts, SSHPython: l.sshPython, Keepalive: l.keepalive, Verbose: l.g.verbose,
		Started: func(done int) { view = newProgressView(human, io.OutTTY && !l.json, io.Width, done) },
		Progress: func(p provision.LocalProgress) {
			view.Update(counts{Total: p.Total, OK: p.OK, Failed: p.Failed, Running: p.Running, Hosts: p.Hosts})
		},
		Tick: tick,
		Note: func(line string) { view.Note(io.Err, line) },
	}).Execute(ctx)
	if err != nil {
		return err
	}
	prog, runErr, collErr := res.Progress, res.RunErr, res.CollErr
	final := counts{Total: len(l.man.Tasks), OK: prog.OK, Failed: prog.Failed, Hosts: res.Hosts}
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
