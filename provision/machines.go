package provision

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/staging"
)

// Machines runs a run's workers on this machine and on ssh hosts at once.
type Machines struct {
	// Local is this machine's worker; nil for none here.
	Local *Local
	// SSH starts the workers of Hosts.
	SSH   SSH
	Hosts []SSHHost
	// OnEvent, when set, sees tasks start and finish, with the host that
	// runs them (LocalHost() for this machine), from several goroutines.
	OnEvent func(host string, e executor.Event)
	// OnHostError, when set, is told of each host that failed to start or
	// was lost, in one line; the run goes on with the others.
	OnHostError func(error)
}

// ErrNoWorkers means that no worker is left on the run: there is none
// here and every ssh host failed or was lost.
var ErrNoWorkers = errors.New("no worker is left on the run")

// LocalHost names this machine in progress and records: its hostname.
func LocalHost() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// Run works on run until every worker has exited: the run is done or
// cancelled (executor.ErrCancelled), or ctx ends (its error; remote workers
// are stopped and release their chunks). A host that cannot start or is
// lost is reported to OnHostError, and the others go on; when none is left
// and there is no local worker, Run returns an error wrapping ErrNoWorkers.
func (p Machines) Run(ctx context.Context, run *staging.Run) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		finished int // hosts whose workers exited normally
		localErr error
	)
	for _, h := range p.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := p.SSH
			if p.OnEvent != nil {
				s.OnEvent = p.OnEvent
			}
			err := s.Run(ctx, run, h)
			if err != nil && ctx.Err() == nil && p.OnHostError != nil {
				p.OnHostError(err)
			}
			if err == nil {
				mu.Lock()
				finished++
				mu.Unlock()
			}
		}()
	}
	if p.Local != nil {
		l := *p.Local
		if p.OnEvent != nil {
			host := LocalHost()
			l.OnEvent = func(e executor.Event) { p.OnEvent(host, e) }
		}
		_, localErr = l.Run(ctx, run)
	}
	wg.Wait()
	switch {
	case p.Local != nil:
		return localErr
	case ctx.Err() != nil:
		return ctx.Err()
	}
	// The remote workers stayed until the run was done or cancelled, or
	// were all lost.
	cancelled, err := run.Cancelled(ctx)
	if err == nil && cancelled {
		return executor.ErrCancelled
	}
	if finished == 0 && len(p.Hosts) > 0 {
		return fmt.Errorf("%w: every ssh host failed or was lost", ErrNoWorkers)
	}
	return nil
}
