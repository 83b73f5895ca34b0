package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/slicerburst/burst/staging"
)

// liveStates are the instance states that may still cost money or become
// running again: everything but terminated.
var liveStates = []string{"pending", "running", "stopping", "stopped", "shutting-down"}

// terminateBatch is how many instances one TerminateInstances call ends.
const terminateBatch = 100

// Defaults of the waits for termination.
const (
	defaultPoll        = 5 * time.Second
	defaultWaitTimeout = 10 * time.Minute
)

// TeardownProgress is where a wait for termination stands.
type TeardownProgress struct {
	// Total is the number of instances being ended, Terminated how many
	// of them EC2 reports terminated (or no longer knows).
	Total, Terminated int
	// Remaining are the ids not terminated yet.
	Remaining []string
}

// DownOptions tunes Down.
type DownOptions struct {
	// Poll is the interval between checks while waiting for instances to
	// terminate; 5 s when zero.
	Poll time.Duration
	// Timeout bounds the wait for termination; 10 min when zero. The
	// context's own deadline applies too.
	Timeout time.Duration
	// Progress, when set, is called after each check.
	Progress func(TeardownProgress)
	// Logger receives diagnostics; slog.Default() when nil.
	Logger *slog.Logger
	// IDs are instances known to be the run's (from its launches): they
	// are terminated by id too, in case EC2 does not list them by tag
	// yet.
	IDs []string
	// Grace, when positive, keeps searching by tag for that long after
	// the first search, ending what appears: after an interrupted launch,
	// EC2 may list instances a while after launching them.
	Grace time.Duration
}

func (o DownOptions) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.Default()
	}
	return o.Logger
}

// DownResult is what Down ended.
type DownResult struct {
	// Instances are the run's instances that were not terminated yet,
	// as found (all terminated when Down returns no error).
	Instances []Instance
	// TemplateDeleted says whether the run's launch template was deleted
	// now (false: there was none, or it was already gone).
	TemplateDeleted bool
}

// StillRunningError is a teardown that ended before EC2 reported every
// instance terminated: they may still be running, and cost money.
type StillRunningError struct {
	IDs []string
	Err error
}

func (e *StillRunningError) Error() string {
	return fmt.Sprintf("%d instances may still be running (%s): %v; check again with burst down, or in the EC2 console",
		len(e.IDs), strings.Join(e.IDs, " "), e.Err)
}

func (e *StillRunningError) Unwrap() error { return e.Err }

// Down ends a run's fleet: it terminates every instance tagged with the
// run that is not terminated yet, waits until EC2 reports them all
// terminated, and deletes the run's launch template. It looks once more
// after the wait, so that instances launched meanwhile are ended too.
//
// Down is idempotent: instances and a template that are already gone
// count as ended, and a second call finds nothing to do. Throttled calls
// are retried. If the wait times out, the error is a *StillRunningError
// listing what may still be running.
//
// Down is cleanup, typically called after the user pressed Ctrl-C: the
// caller must pass a context that is not already cancelled, such as
// context.WithoutCancel(ctx) with a timeout.
func Down(ctx context.Context, api EC2API, runID string, opts DownOptions) (DownResult, error) {
	var res DownResult
	if !staging.ValidID(runID) {
		return res, fmt.Errorf("ending run %q: invalid run id", runID)
	}
	log := opts.logger().With("run", runID)
	ended := map[string]bool{}
	graceEnd := time.Now().Add(opts.Grace)
	poll := opts.Poll
	if poll <= 0 {
		poll = defaultPoll
	}
	for pass := 0; ; pass++ {
		var found []Instance
		err := describeInstances(ctx, api, log, []types.Filter{
			{Name: aws.String("tag:" + TagRun), Values: []string{runID}},
			{Name: aws.String("instance-state-name"), Values: liveStates},
		}, func(in Instance) {
			if !ended[in.ID] {
				found = append(found, in)
			}
		})
		if err != nil {
			return res, fmt.Errorf("ending run %s: %w", runID, err)
		}
		if pass == 0 && len(opts.IDs) > 0 {
			// The known ids that the tag search missed, unless EC2 says
			// they are terminated: terminating one that is gone is
			// success.
			listed, err := describeByID(ctx, api, log, opts.IDs, nil)
			if err != nil {
				return res, fmt.Errorf("ending run %s: %w", runID, err)
			}
			for _, id := range opts.IDs {
				in, ok := listed[id]
				switch {
				case slices.ContainsFunc(found, func(in Instance) bool { return in.ID == id }):
				case !ok:
					found = append(found, Instance{ID: id, RunID: runID})
				case in.Live():
					found = append(found, in)
				}
			}
		}
		if len(found) == 0 || pass >= 3 && !time.Now().Before(graceEnd) {
			if !time.Now().Before(graceEnd) {
				break
			}
			log.Debug("searching again for instances EC2 may not list yet", "until", graceEnd)
			t := time.NewTimer(min(poll, time.Until(graceEnd)))
			select {
			case <-ctx.Done():
				t.Stop()
				return res, fmt.Errorf("ending run %s: %w", runID, ctx.Err())
			case <-t.C:
			}
			continue
		}
		ids := instanceIDs(found)
		log.Info("terminating the run's instances", "instances", len(ids))
		res.Instances = append(res.Instances, found...)
		for _, id := range ids {
			ended[id] = true
		}
		if err := terminate(ctx, api, log, ids); err != nil {
			return res, fmt.Errorf("ending run %s: %w", runID, err)
		}
		if err := waitTerminated(ctx, api, log, instanceIDs(res.Instances), opts.Poll, opts.Timeout, opts.Progress); err != nil {
			return res, fmt.Errorf("ending run %s: %w", runID, err)
		}
	}
	deleted, err := deleteTemplate(ctx, api, log, runID)
	if err != nil {
		return res, fmt.Errorf("ending run %s: %w", runID, err)
	}
	res.TemplateDeleted = deleted
	return res, nil
}

func instanceIDs(ins []Instance) []string {
	ids := make([]string, len(ins))
	for i, in := range ins {
		ids[i] = in.ID
	}
	return ids
}

// terminate terminates instances in batches. An instance EC2 no longer
// knows is already gone: success.
func terminate(ctx context.Context, api EC2API, log *slog.Logger, ids []string) error {
	call := func(batch []string) error {
		_, err := retryEC2(ctx, log, "TerminateInstances", func(ctx context.Context) (*ec2.TerminateInstancesOutput, error) {
			return api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: batch})
		})
		return err
	}
	for batch := range slices.Chunk(ids, terminateBatch) {
		err := call(batch)
		if err == nil {
			continue
		}
		if code, _ := ec2Code(err); !isNotFound(code) {
			return fmt.Errorf("terminating %s: %w", strings.Join(batch, " "), err)
		}
		// One unknown id fails the whole call: end them one by one.
		for _, id := range batch {
			if err := call([]string{id}); err != nil {
				if code, _ := ec2Code(err); isNotFound(code) {
					log.Info("instance already gone", "instance", id)
					continue
				}
				return fmt.Errorf("terminating %s: %w", id, err)
			}
		}
	}
	return nil
}

// waitTerminated polls until none of ids is in a live state.
func waitTerminated(ctx context.Context, api EC2API, log *slog.Logger, ids []string, poll, timeout time.Duration, progress func(TeardownProgress)) error {
	if poll <= 0 {
		poll = defaultPoll
	}
	if timeout <= 0 {
		timeout = defaultWaitTimeout
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	remaining := slices.Clone(ids)
	for {
		live, err := describeByID(wctx, api, log, remaining, liveStates)
		if err != nil {
			if wctx.Err() != nil {
				return &StillRunningError{IDs: remaining, Err: fmt.Errorf("waiting for termination: %w", wctx.Err())}
			}
			return &StillRunningError{IDs: remaining, Err: err}
		}
		remaining = slices.DeleteFunc(remaining, func(id string) bool { _, ok := live[id]; return !ok })
		if progress != nil {
			progress(TeardownProgress{Total: len(ids), Terminated: len(ids) - len(remaining), Remaining: slices.Clone(remaining)})
		}
		if len(remaining) == 0 {
			log.Info("all instances terminated", "instances", len(ids))
			return nil
		}
		log.Debug("waiting for instances to terminate", "remaining", len(remaining))
		t := time.NewTimer(poll)
		select {
		case <-wctx.Done():
			t.Stop()
			return &StillRunningError{IDs: remaining, Err: fmt.Errorf("waiting for termination: %w", wctx.Err())}
		case <-t.C:
		}
	}
}

// deleteTemplate deletes the run's launch template and reports whether
// there was one.
func deleteTemplate(ctx context.Context, api EC2API, log *slog.Logger, runID string) (bool, error) {
	name := TemplateName(runID)
	_, err := retryEC2(ctx, log, "DeleteLaunchTemplate", func(ctx context.Context) (*ec2.DeleteLaunchTemplateOutput, error) {
		return api.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateName: aws.String(name)})
	})
	if err != nil {
		code, _ := ec2Code(err)
		// moto answers MissingParameter for a name it does not know.
		if isNotFound(code) || code == "MissingParameter" {
			log.Info("no launch template to delete", "template", name)
			return false, nil
		}
		return false, fmt.Errorf("deleting launch template %s: %w", name, err)
	}
	log.Info("deleted launch template", "template", name)
	return true, nil
}

// GCOptions tunes GC.
type GCOptions struct {
	// Now is the time expiry is judged at; time.Now() when zero.
	Now time.Time
	// Ended, when set, reports whether a run has ended (finished or
	// cancelled, per the run store); its instances are then reaped
	// whatever their expiry. An error keeps the run's instances and is
	// reported in GCResult.Kept.
	Ended func(ctx context.Context, runID string) (bool, error)
	// Owner, when set, limits GC to instances with that burst:owner tag.
	Owner string
	// DryRun lists what would be reaped and ends nothing.
	DryRun bool
	// Poll, Timeout, Progress and Logger are as for Down.
	Poll     time.Duration
	Timeout  time.Duration
	Progress func(TeardownProgress)
	Logger   *slog.Logger
}

// GCInstance is an instance GC reaped or kept, and why.
type GCInstance struct {
	Instance
	Reason string
}

// GCResult is what GC found.
type GCResult struct {
	// Reaped are the instances terminated (or, with DryRun, that would
	// be).
	Reaped []GCInstance
	// Kept are instances that GC could not judge: without a valid
	// burst:expires tag and not known to belong to an ended run, or whose
	// run could not be checked. `burst down RUN` ends them.
	Kept []GCInstance
	// Templates are the launch templates deleted, of the runs reaped.
	Templates []string
}

// GC ends the instances that burst launched and that have no reason to
// run any more: every instance with a burst:run tag, not terminated, whose
// burst:expires has passed or whose run has ended (opts.Ended). An
// instance whose expiry tag is missing or unparseable is not reaped on
// that ground (it may be a live run's, tagged by hand or by another tool)
// but listed in Kept, unless its run has ended. GC then waits for the
// reaped instances to terminate and deletes their runs' launch templates,
// as Down does.
//
// GC is idempotent; with opts.DryRun it only lists. The context must not
// be already cancelled (see Down).
func GC(ctx context.Context, api EC2API, opts GCOptions) (GCResult, error) {
	var res GCResult
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	filters := []types.Filter{
		{Name: aws.String("tag-key"), Values: []string{TagRun}},
		{Name: aws.String("instance-state-name"), Values: liveStates},
	}
	if opts.Owner != "" {
		filters = append(filters, types.Filter{Name: aws.String("tag:" + TagOwner), Values: []string{opts.Owner}})
	}
	byRun := map[string][]Instance{}
	if err := describeInstances(ctx, api, log, filters, func(in Instance) {
		byRun[in.RunID] = append(byRun[in.RunID], in)
	}); err != nil {
		return res, fmt.Errorf("collecting expired instances: %w", err)
	}
	runs := make([]string, 0, len(byRun))
	for r := range byRun {
		runs = append(runs, r)
	}
	sort.Strings(runs)
	var reapRuns []string
	for _, run := range runs {
		ins := byRun[run]
		var ended bool
		var endedErr error
		checked := false
		check := func() {
			if checked || opts.Ended == nil || !staging.ValidID(run) {
				return
			}
			checked = true
			ended, endedErr = opts.Ended(ctx, run)
			if endedErr != nil {
				log.Warn("could not tell whether a run has ended", "run", run, "err", endedErr)
			}
		}
		reapedAll := true
		for _, in := range ins {
			switch {
			case !in.Expires.IsZero() && !in.Expires.After(now):
				res.Reaped = append(res.Reaped, GCInstance{in, "expired at " + in.Expires.Format(time.RFC3339)})
				continue
			}
			check()
			switch {
			case ended:
				res.Reaped = append(res.Reaped, GCInstance{in, "run ended"})
			case endedErr != nil:
				reapedAll = false
				res.Kept = append(res.Kept, GCInstance{in, "could not check the run: " + endedErr.Error()})
			case in.Expires.IsZero():
				reapedAll = false
				res.Kept = append(res.Kept, GCInstance{in, "no valid " + TagExpires + " tag"})
			default:
				reapedAll = false // a live run's: not listed
			}
		}
		if reapedAll && staging.ValidID(run) {
			reapRuns = append(reapRuns, run)
		}
	}
	for _, g := range res.Reaped {
		log.Info("reaping instance", "instance", g.ID, "run", g.RunID, "reason", g.Reason, "dry_run", opts.DryRun)
	}
	for _, g := range res.Kept {
		log.Warn("keeping instance", "instance", g.ID, "run", g.RunID, "reason", g.Reason)
	}
	if opts.DryRun || len(res.Reaped) == 0 {
		return res, nil
	}
	ids := make([]string, len(res.Reaped))
	for i, g := range res.Reaped {
		ids[i] = g.ID
	}
	if err := terminate(ctx, api, log, ids); err != nil {
		return res, fmt.Errorf("collecting expired instances: %w", err)
	}
	if err := waitTerminated(ctx, api, log, ids, opts.Poll, opts.Timeout, opts.Progress); err != nil {
		return res, fmt.Errorf("collecting expired instances: %w", err)
	}
	var errs []error
	for _, run := range reapRuns {
		deleted, err := deleteTemplate(ctx, api, log, run)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if deleted {
			res.Templates = append(res.Templates, TemplateName(run))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("collecting expired instances: %w", err)
	}
	return res, nil
}

// RunEnded is a GCOptions.Ended that reads the run store: a run has ended
// when it is finished, cancelled, or gone from the store.
func RunEnded(store staging.Store) func(ctx context.Context, id string) (bool, error) {
	return func(ctx context.Context, id string) (bool, error) {
		run, err := staging.OpenRun(store, id)
		if err != nil {
			return false, err
		}
		man, err := run.Manifest(ctx)
		if errors.Is(err, staging.ErrNoRun) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		p, err := run.ReadProgress(ctx, man)
		if err != nil {
			return false, err
		}
		return p.State == staging.StateDone || p.State == staging.StateCancelled, nil
	}
}
