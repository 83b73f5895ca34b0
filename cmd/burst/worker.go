package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/spf13/cobra"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/provision"
	"github.com/slicerburst/burst/staging"
)

type workerOptions struct {
	g          *globalOptions
	run        string
	slots      int
	python     string
	workDir    string
	heartbeat  time.Duration
	ec2        bool
	noticePoll time.Duration
	drain      time.Duration
	// ec2Only lists the --ec2 flags given without it.
	ec2Only []string
	// identityWait bounds the retries of the first instance metadata
	// read.
	identityWait time.Duration
	// stdio: the run store is served on stdin and stdout by the burst
	// that started this worker over ssh, which names this host hostName.
	stdio     bool
	hostName  string
	keepalive time.Duration
	ssh       sshOptions
	// slotsSet says --workers was given.
	slotsSet bool
}

func newWorkerCmd(g *globalOptions) *cobra.Command {
	o := &workerOptions{g: g, identityWait: 30 * time.Second}
	cmd := &cobra.Command{
		Use:   "worker RUN",
		Short: "Join a run as a worker until nothing is left to do",
		Long: `Work on a run's tasks alongside any other workers: claim chunks of tasks,
run them (one interpreter per slot: in a warm run, as the run was submitted
with, a task server per slot that imports the script's modules once and
forks each task), write their results, and exit when
nothing is left to claim (every task is finished, or the rest is held by
live workers) or the run is cancelled. A worker that dies is replaced
without loss: its leases lapse and other workers take its chunks over.

RUN is a run id in --store, or a run location as burst prints it:
STORE/runs/ID, for example s3://my-bucket/burst/runs/offset-20261126-0930-1a2b.
This is what each cloud VM runs; on any machine with access to the store it
adds workers to a run. Results are not collected here: use burst results.

With --ssh HOST (repeatable, [USER@]HOST[:PORT][/N]) this burst starts
workers on those machines instead, as burst submit --ssh does: it copies
itself there if needed and serves the run store to them over the ssh
session, until they exit. Workers run here too only when --workers is
given.

--ec2 is for a worker on an EC2 instance (the instances burst launches run
it from their boot script). The worker reads the instance metadata service
(IMDSv2): it takes the instance id as its name and puts the id, type and
availability zone in its heartbeat, and every --notice-poll it looks for
spot notices:
  - a spot interruption notice (the instance goes in about two minutes):
    the worker stops claiming, kills its running tasks, gives its chunks
    back at once so other workers take them over without waiting for the
    leases to lapse, and exits with status 3;
  - a rebalance recommendation (an early warning of a likely interruption):
    the worker drains: it claims and starts nothing more, lets the running
    tasks finish for up to --drain, kills the rest, gives its chunks back
    and exits with status 3.
Killed tasks are not counted as failed attempts: whoever takes their chunks
runs them again. When the metadata service is slow or unreachable the
worker logs it and keeps working. AWS_EC2_METADATA_SERVICE_ENDPOINT points
it at another metadata service.

Exit status: 0 when nothing is left to claim or the run was cancelled, 1 on
an error, 2 on bad usage (a run staged by a burst of another protocol
version among them), 3 when a spot notice stopped the worker.`,
		Example: `  burst submit job.py --sweep sweep.yaml --store s3://my-bucket/burst --detach
  burst worker s3://my-bucket/burst/runs/job-20261126-093012-1a2b --workers 8
  burst worker --ec2 s3://my-bucket/burst/runs/job-20261126-093012-1a2b
  burst worker job-20261126-093012-1a2b --ssh lab1 --ssh lab2/16
`,
		Args: exactArgs("RUN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.run = args[0]
			o.slotsSet = cmd.Flags().Changed("workers")
			for _, name := range []string{"notice-poll", "drain"} {
				if cmd.Flags().Changed(name) {
					o.ec2Only = append(o.ec2Only, "--"+name)
				}
			}
			return runWorker(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.IntVarP(&o.slots, "workers", "w", provision.Cores(), "tasks to run at once")
	f.StringVar(&o.python, "python", "", "interpreter `PATH` (default PythonSlicer when on PATH, else python3)")
	f.StringVar(&o.workDir, "work-dir", "", "`DIR` for scratch space and the shared-file cache (default: burst in the user cache directory)")
	f.DurationVar(&o.heartbeat, "heartbeat", 5*time.Second, "how often to report liveness and check for cancel")
	f.BoolVar(&o.ec2, "ec2", false, "run as the worker of an EC2 instance: name it after the instance, and honour spot interruption notices and rebalance recommendations")
	f.DurationVar(&o.noticePoll, "notice-poll", 5*time.Second, "with --ec2, how often to look for spot notices")
	f.DurationVar(&o.drain, "drain", 90*time.Second, "with --ec2, how long running tasks may finish after a rebalance recommendation")
	o.ssh.addFlags(f)
	f.BoolVar(&o.stdio, "stdio", false, "reach the run store through stdin and stdout, served by the burst that started this worker over ssh")
	f.StringVar(&o.hostName, "host-name", "", "`NAME` of this machine in heartbeats and task records (default: the hostname)")
	f.DurationVar(&o.keepalive, "keepalive", 5*time.Second, "how often the ends of an ssh session's store stream say they are alive; six missed ones end it")
	_ = f.MarkHidden("stdio")
	_ = f.MarkHidden("keepalive")
	_ = f.MarkHidden("host-name")
	return cmd
}

func runWorker(ctx context.Context, o *workerOptions) error {
	if err := o.ssh.parse(); err != nil {
		return err
	}
	switch {
	case o.stdio && (o.ec2 || len(o.ssh.hosts) > 0):
		return usageErrorf("--stdio does not mix with --ec2 or --ssh")
	case o.stdio:
		return runStdioWorker(ctx, o)
	case len(o.ssh.hosts) > 0:
		return runSSHWorkers(ctx, o)
	}
	if o.slots < 1 {
		return usageErrorf("--workers must be at least 1, got %d", o.slots)
	}
	if !o.ec2 && len(o.ec2Only) > 0 {
		return usageErrorf("%s needs --ec2", o.ec2Only[0])
	}
	if o.ec2 && (o.noticePoll <= 0 || o.drain <= 0) {
		return usageErrorf("--notice-poll and --drain must be positive")
	}
	run, _, err := o.g.openRun(ctx, o.run)
	if err != nil {
		return protocolUsageError(err)
	}
	if !o.ec2 {
		if err := checkSeal(ctx, run); err != nil {
			return err
		}
	}
	python, err := executor.ResolvePython(o.python)
	if err != nil {
		return usageError{err}
	}
	log := slog.Default()
	if !o.g.verbose {
		log = slog.New(slog.NewTextHandler(o.g.io.Err, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	dir := o.workDir
	if dir == "" {
		dir = provision.DefaultDir()
	}
	cfg := executor.Config{
		Run: run, Slots: o.slots, Python: python, CacheDir: provision.CacheDir(dir),
		Heartbeat: o.heartbeat, Logger: log, Host: o.hostName,
	}
	if o.ec2 {
		client := imds.New(imds.Options{EnableFallback: aws.FalseTernary}) // IMDSv2 only
		in, err := provision.LookupInstance(ctx, client, o.identityWait, log)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// The notices matter more than the name: work on.
			log.Warn("no instance identity from the metadata service; working under a generated name", "err", err)
		} else {
			cfg.ID, cfg.Instance = in.ID, &in
		}
		cfg.Notices = &executor.EC2Notices{API: client, Instance: in.ID}
		cfg.NoticePoll, cfg.Drain = o.noticePoll, o.drain
	}
	if cfg.ID == "" {
		cfg.ID = executor.NewWorkerID()
	}
	cfg.WorkDir = filepath.Join(dir, "work", cfg.ID)
	defer os.RemoveAll(cfg.WorkDir)

	attrs := []any{"worker", cfg.ID, "run", run.Location(), "slots", o.slots, "python", python}
	if in := cfg.Instance; in != nil {
		attrs = append(attrs, "instance_type", in.Type, "zone", in.Zone)
	}
	log.Info("worker starting", attrs...)
	sum, err := executor.Run(ctx, cfg)
	fmt.Fprintf(o.g.io.Out, "worker %s: %d ok, %d failed\n", cfg.ID, sum.OK, sum.Failed)
	var notice *executor.NoticeError
	switch {
	case errors.Is(err, executor.ErrCancelled):
		fmt.Fprintf(o.g.io.Out, "run %s was cancelled\n", run.ID)
		return nil
	case errors.As(err, &notice):
		return exitError{code: exitReclaimed, msg: notice.Error()}
	case err != nil:
		return protocolUsageError(err)
	}
	return nil
}

// protocolUsageError turns a run of another protocol version into a
// usage error that says so in one line; other errors pass unchanged.
func protocolUsageError(err error) error {
	var pe *staging.ProtocolError
	if errors.As(err, &pe) {
		return usageErrorf("run %s was staged by a burst with protocol %d; this worker speaks %d: use a matching burst build", pe.Run, pe.Protocol, staging.Protocol)
	}
	return err
}

// runStdioWorker is the remote end of burst submit --ssh: its output goes
// to stderr, as stdout carries the store stream.
func runStdioWorker(ctx context.Context, o *workerOptions) error {
	if o.slots < 0 {
		return usageErrorf("--workers must be 0 (the cores) or more, got %d", o.slots)
	}
	in, out, err := provision.TakeStdio()
	if err != nil {
		return err
	}
	// When the session goes, stderr goes with it: a write there must
	// fail, not kill this worker before it has killed its tasks; and a
	// hangup stops the work like the end of the stream.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGHUP)
	defer stop()
	python, err := executor.ResolvePython(o.python)
	if err != nil {
		return usageError{err}
	}
	level := slog.LevelWarn
	if o.g.verbose {
		level = slog.LevelDebug
	}
	w := provision.StdioWorker{
		Slots: o.slots, Python: python, Heartbeat: o.heartbeat, Host: o.hostName, Dir: o.workDir,
		Stream: staging.StreamOptions{PingEvery: o.keepalive},
		Logger: slog.New(slog.NewTextHandler(o.g.io.Err, &slog.HandlerOptions{Level: level})),
	}
	_, err = w.Run(ctx, o.run, in, out)
	switch {
	case errors.Is(err, executor.ErrCancelled), errors.Is(err, provision.ErrStopped):
		return nil
	case err != nil:
		return protocolUsageError(err)
	}
	return nil
}

// runSSHWorkers adds workers on ssh hosts to a run, and here only with
// --workers.
func runSSHWorkers(ctx context.Context, o *workerOptions) error {
	if o.ec2 {
		return usageErrorf("--ssh does not mix with --ec2")
	}
	if o.slotsSet && o.slots < 0 {
		return usageErrorf("--workers must be 0 or more, got %d", o.slots)
	}
	run, _, err := o.g.openRun(ctx, o.run)
	if err != nil {
		return protocolUsageError(err)
	}
	w := o.g.io.Out
	pool := provision.Machines{
		Hosts: o.ssh.hosts,
		SSH: provision.SSH{
			Python: o.python, Heartbeat: o.heartbeat, Logger: slog.Default(), Verbose: o.g.verbose,
			Stream: staging.StreamOptions{PingEvery: o.keepalive},
			OnState: func(st provision.HostState) {
				if st.State == provision.HostRunning {
					fmt.Fprintf(w, "host %s: %d workers\n", st.Host, st.Slots)
				}
			},
		},
		OnHostError: func(err error) { fmt.Fprintf(o.g.io.Err, "burst: %v\n", err) },
	}
	if o.slotsSet && o.slots > 0 {
		python, err := executor.ResolvePython(o.python)
		if err != nil {
			return usageError{err}
		}
		pool.Local = &provision.Local{Slots: o.slots, Python: python, Heartbeat: o.heartbeat, Dir: o.workDir, Logger: slog.Default()}
	}
	err = pool.Run(ctx, run)
	switch {
	case errors.Is(err, executor.ErrCancelled):
		fmt.Fprintf(w, "run %s was cancelled\n", run.ID)
		return nil
	case err != nil:
		return protocolUsageError(err)
	}
	fmt.Fprintf(w, "workers on %s ended: nothing is left to do on run %s\n", strings.Join(o.ssh.specs, ", "), run.ID)
	return nil
}
