package executor

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// NoticeKind says what the platform warned of.
type NoticeKind int

const (
	// SpotInterruption: the spot instance will be stopped or terminated
	// about two minutes from the notice. The worker stops at once.
	SpotInterruption NoticeKind = iota + 1
	// Rebalance: the spot instance is at raised risk of interruption, an
	// early warning that may come well before an interruption or without
	// one. The worker drains (see Config.Drain).
	Rebalance
)

func (k NoticeKind) String() string {
	switch k {
	case SpotInterruption:
		return "spot interruption notice"
	case Rebalance:
		return "rebalance recommendation"
	}
	return fmt.Sprintf("notice kind %d", int(k))
}

// Notice is a warning that the machine the worker runs on will go away.
type Notice struct {
	Kind NoticeKind
	// Instance names the machine (an EC2 instance id), when known.
	Instance string
	// Action is what will happen to a spot instance: terminate, stop or
	// hibernate. Empty for a rebalance recommendation.
	Action string
	// Time is when the action happens (SpotInterruption) or when the
	// recommendation was made (Rebalance); zero when not given.
	Time time.Time
}

func (n Notice) String() string {
	s := n.Kind.String()
	if n.Instance != "" {
		s += " for " + n.Instance
	}
	return s
}

// NoticeSource tells whether the platform has warned that this machine
// will go away.
type NoticeSource interface {
	// Notice returns the pending notice, or nil when there is none. When
	// both an interruption and a rebalance recommendation are pending, it
	// returns the interruption. An error is transient: the worker logs it
	// and asks again at its next poll. Safe to call repeatedly.
	Notice(ctx context.Context) (*Notice, error)
}

// Instance describes the cloud machine a worker runs on, for its
// heartbeat.
type Instance struct {
	ID   string // i-0123456789abcdef0
	Type string // c7i.4xlarge
	Zone string // us-east-1a
}

// NoticeError is what Run returns when a notice from the platform stopped
// the worker: its chunks were handed back for other workers to take over
// at once, and the tasks it killed were left unrecorded, to be run again
// in full there. It is not a failure of the run.
type NoticeError struct {
	Notice Notice
	// Released counts the chunks given back.
	Released int
}

func (e *NoticeError) Error() string {
	chunks := "chunks"
	if e.Released == 1 {
		chunks = "chunk"
	}
	return fmt.Sprintf("%s: released %d %s", e.Notice, e.Released, chunks)
}

// errNoticeStop is the cause of the worker's context when a notice ends
// its running tasks.
var errNoticeStop = errors.New("stopped by a notice that the machine is going away")

// Defaults of the notice settings in Config.
const (
	defaultNoticePoll = 5 * time.Second
	defaultDrain      = 90 * time.Second
)

// noticeLoop asks the notice source every NoticePoll until the worker
// stops. A spot interruption stops the worker at once: no more claims,
// running tasks killed. A rebalance recommendation drains it: no more
// claims and no more tasks started, running tasks given up to Drain to
// finish; an interruption notice during the drain ends it at once.
// Errors from the source are logged, never fatal: the metadata service
// may be slow or briefly unreachable, and the work goes on meanwhile.
func (w *worker) noticeLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.NoticePoll)
	defer t.Stop()
	var drainEnd <-chan time.Time
	failing := 0
	for {
		n, err := w.cfg.Notices.Notice(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			failing++
			if failing == 1 || failing%60 == 0 {
				w.log.Warn("checking for spot notices; trying again", "err", err, "failures", failing)
			}
		case failing > 0:
			w.log.Info("checking for spot notices works again", "after_failures", failing)
			failing = 0
		}
		if n != nil {
			if n.Kind == SpotInterruption {
				w.stopForNotice(*n)
				return
			}
			if drainEnd == nil {
				w.drainForNotice(ctx, *n)
				drainEnd = time.After(w.cfg.Drain)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-drainEnd:
			w.log.Warn("drain time is up: stopping the tasks still running", "drain", w.cfg.Drain)
			w.cancel(errNoticeStop)
			return
		}
	}
}

// stopForNotice stops claiming and kills the running tasks.
func (w *worker) stopForNotice(n Notice) {
	w.mu.Lock()
	w.notice = &n
	w.mu.Unlock()
	w.log.Warn(n.String()+": stopping now and handing the chunks back", "action", n.Action, "time", n.Time)
	w.stopClaiming()
	w.cancel(errNoticeStop)
}

// drainForNotice stops claiming and starting tasks; the running ones go on.
func (w *worker) drainForNotice(ctx context.Context, n Notice) {
	w.mu.Lock()
	if w.notice == nil {
		w.notice = &n
	}
	w.draining = true
	w.mu.Unlock()
	w.log.Warn(n.String()+": draining: no new tasks; running ones may finish, then the chunks are handed back", "drain", w.cfg.Drain)
	w.stopClaiming()
	w.writeHeartbeat(ctx, "running")
}
