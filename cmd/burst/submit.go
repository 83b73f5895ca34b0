package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"log/slog"

	"github.com/spf13/cobra"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/provision"
	"github.com/slicerburst/burst/staging"
)

type submitOptions struct {
	g        *globalOptions
	script   string
	sweep    string
	inputs   string
	local    bool
	workers  int
	out      string
	timeout  time.Duration
	retries  int
	maxLost  int
	python   string
	shared   []string
	json     bool
	detach   bool
	leaseTTL time.Duration
	warm     bool
	preload  string
	ssh      sshOptions

	// Cloud runs.
	cloud string
	yes   bool
	ami   string
	poll  time.Duration
	plan  planOptions
}

func newSubmitCmd(g *globalOptions) *cobra.Command {
	o := &submitOptions{g: g}
	cmd := &cobra.Command{
		Use:   "submit SCRIPT (--sweep FILE | --inputs DIR)",
		Short: "Run a script over a sweep or a directory of inputs",
		Long: `Stage a run (the script, one pickled input per task, shared files) in the
run store and run it on this machine's cores, one interpreter per worker
slot, showing progress; results are collected into --out as they finish.

Inputs come from a sweep spec (YAML):
  grid:       {name: [values...]}   cartesian product, last name fastest
  zip:        {name: [values...]}   equal-length lists, element-wise
  list:       [{name: value}, ...]  explicit combinations
  constants:  {name: value}         added to every task
  repeat: N                         each combination N times, with seed 0..N-1
Sections combine as a product. Task ids are 0000, 0001, ... in that order.
Or from --inputs DIR: every DIR/*.pkl is one task, named by its file name.

With --ssh HOST (repeatable) workers run on other machines too, over the
system's ssh (your ~/.ssh/config, agent, ProxyJump and ControlMaster apply;
host keys are checked as ssh checks them; nothing prompts, so keys must be
in the agent or need no passphrase; BURST_SSH, for example "ssh -F FILE",
replaces the ssh command). A host needs only Python: burst copies
itself into the remote user's cache once (when the OS and architecture
match this machine's; else it uses a burst on the remote PATH) and serves
the run store to it over the ssh session, so the host needs no access to
the store. --python applies there too; without it each host finds
PythonSlicer, else python3, on its PATH. A host that cannot be reached gets
one line and the run goes on with the others; one whose session drops
loses no task: its chunks go to the other workers once their leases lapse.
--workers 0 runs no workers here.

The run store is a directory, or s3://BUCKET/PREFIX with the standard AWS
configuration (--profile, AWS_REGION, AWS_ENDPOINT_URL_S3 for S3-compatible
servers). Any machine that reaches the store can add workers to the run
with burst worker RUN, or follow it with burst status and burst watch.

With --cloud aws the run goes to a fleet of EC2 instances instead, sized
by the plan flags (--task-time or --probe, --budget, --deadline, --types,
--market, ...; burst plan shows the same plan without launching), in the
account and bucket of burst's configuration (burst init). The plan is
shown and needs a yes (--yes without a terminal); every instance is
terminated when the run ends, fails or is interrupted.

The script reads its input with pickle.load(sys.stdin.buffer) and writes a
dict with pickle.dump(result, sys.stdout.buffer); anything it prints to
stderr is its log. It starts in a scratch directory of its own, removed
afterwards, and sees BURST_RUN_ID, BURST_TASK_ID, BURST_ATTEMPT and
BURST_SHARED_DIR (where --shared files are, by base name).

Warm workers (the default): each worker slot starts one task server under
the interpreter, which imports the script's modules once (those it imports
at its top level, found by parsing it, never by running it; --preload
names others) and forks a child per task. The child runs the unchanged
script as __main__ with its own stdin, stdout, stderr, directory,
environment and process group, as a fresh process would, without paying
for the imports again. --warm=false starts a fresh interpreter per task.
Every worker of the run, here, from burst worker or in the cloud, does
the same.

Exit status: 0 when every task succeeded, 1 when some failed, 2 for bad
usage or input (nothing is started), 130 when interrupted (burst resume RUN
carries on).`,
		Example: `  burst submit offset.py --sweep sweep.yaml
  burst submit filter.py --sweep radii.yaml --shared volume.nrrd --timeout 10m
  burst submit segment.py --inputs cases/ --workers 4 --out results/
  burst submit offset.py --sweep sweep.yaml --workers 0 --ssh lab1 --ssh alice@lab2:2222/8
  burst submit offset.py --sweep sweep.yaml --cloud aws --task-time 40s --budget 5 --deadline 2h`,
		Args: exactArgs("SCRIPT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.script = args[0]
			return runSubmit(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.sweep, "sweep", "", "sweep spec `FILE` (YAML) to expand into tasks")
	f.StringVar(&o.inputs, "inputs", "", "`DIR` of *.pkl inputs, one task each")
	f.BoolVar(&o.local, "local", false, "run on this machine (the default)")
	f.IntVarP(&o.workers, "workers", "w", provision.Cores(), "tasks to run at once here (0: none here, with --ssh)")
	f.StringVarP(&o.out, "out", "o", "", "collect results into `DIR` (default ./burst-results/RUN)")
	f.DurationVar(&o.timeout, "timeout", 0, "limit on one attempt of a task, e.g. 90s or 10m (default none)")
	f.IntVar(&o.retries, "retries", 2, "retries of a failed attempt before the task fails")
	f.IntVar(&o.maxLost, "max-lost", staging.DefaultMaxLost, "fail a task, rather than run it again, once `N` workers were lost while running it (killed, out of memory, machine gone)")
	f.StringVar(&o.python, "python", "", "interpreter `PATH` (default PythonSlicer when on PATH, else python3)")
	f.StringArrayVar(&o.shared, "shared", nil, "`FILE` every task reads, stored once by content (repeatable)")
	f.BoolVar(&o.json, "json", false, "print the final summary as JSON on stdout")
	f.BoolVar(&o.detach, "detach", false, "stage the run and exit without running it: burst worker RUN runs it, from any machine that reaches the store")
	f.BoolVar(&o.warm, "warm", true, "import the script's modules once per worker slot and fork each task from there; --warm=false starts a fresh interpreter per task")
	f.StringVar(&o.preload, "preload", "", "modules a warm worker imports before forking, `MOD,...` or none (default: the script's top-level imports)")
	o.ssh.addFlags(f)
	f.DurationVar(&o.leaseTTL, "lease-ttl", 30*time.Second, "how long a worker's claim on a chunk of tasks outlives its last renewal")
	_ = f.MarkHidden("lease-ttl")
	f.StringVar(&o.cloud, "cloud", "", "run on a fleet in `CLOUD` instead of here: aws (sized by the plan flags; see burst plan)")
	f.BoolVarP(&o.yes, "yes", "y", false, "launch the planned fleet without asking")
	f.StringVar(&o.ami, "ami", "", "worker image `AMI` id (default: the configuration's, else the newest burst image in the region)")
	f.DurationVar(&o.poll, "poll", 5*time.Second, "how often a cloud run's progress and instances are read")
	_ = f.MarkHidden("poll")
	o.plan.addFlags(f)
	return cmd
}

// validate checks everything that can be checked before anything is
// written, so that bad input never leaves a half-created run.
func (o *submitOptions) validate() error {
	if (o.sweep == "") == (o.inputs == "") {
		return usageErrorf("give exactly one of --sweep FILE or --inputs DIR")
	}
	if err := o.ssh.parse(); err != nil {
		return err
	}
	if o.workers < 0 || o.workers == 0 && len(o.ssh.hosts) == 0 {
		return usageErrorf("--workers must be at least 1 (or 0 with --ssh), got %d", o.workers)
	}
	if o.cloud != "" && len(o.ssh.hosts) > 0 {
		return usageErrorf("--ssh and --cloud do not mix: the cloud run has workers of its own")
	}
	if o.retries < 0 {
		return usageErrorf("--retries must be 0 or more, got %d", o.retries)
	}
	if o.maxLost < 1 {
		return usageErrorf("--max-lost must be at least 1, got %d", o.maxLost)
	}
	if o.timeout < 0 {
		return usageErrorf("--timeout must be positive, got %s", o.timeout)
	}
	if o.leaseTTL < time.Second {
		return usageErrorf("--lease-ttl must be at least 1s")
	}
	if err := executor.ValidatePreload(o.preload); err != nil {
		return usageError{err}
	}
	if o.preload != "" && !o.warm {
		return usageErrorf("--preload is for warm workers: drop --warm=false")
	}
	if err := readableFile(o.script, "script"); err != nil {
		return err
	}
	for _, s := range o.shared {
		if err := readableFile(s, "shared file"); err != nil {
			return err
		}
	}
	return nil
}

func readableFile(path, what string) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return usageErrorf("%s %s: no such file", what, path)
		}
		return usageErrorf("%s %s: %v", what, path, errors.Unwrap(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return usageErrorf("%s %s: %v", what, path, err)
	}
	if fi.IsDir() {
		return usageErrorf("%s %s is a directory", what, path)
	}
	return nil
}

// loadInputs builds the tasks' pickled inputs from --sweep or --inputs.
func (o *submitOptions) loadInputs() ([]staging.Input, string, error) {
	if o.sweep != "" {
		inputs, err := staging.SweepInputs(o.sweep)
		if err != nil {
			return nil, "", usageError{err}
		}
		return inputs, "sweep spec " + o.sweep, nil
	}
	inputs, err := staging.ReadInputsDir(o.inputs)
	if err != nil {
		return nil, "", usageError{err}
	}
	return inputs, "inputs dir " + o.inputs, nil
}

func runSubmit(ctx context.Context, o *submitOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	if o.cloud != "" {
		return runCloudSubmit(ctx, o)
	}
	if o.plan.flags != nil {
		for _, name := range []string{"yes", "ami", "task-time", "probe", "memory", "budget", "deadline", "max-instances", "max-vcpus", "types", "market", "boot-time"} {
			if o.plan.flags.Changed(name) {
				return usageErrorf("--%s is for cloud runs: add --cloud aws", name)
			}
		}
	}
	python, err := o.resolvePython()
	if err != nil {
		return err
	}
	inputs, source, err := o.loadInputs()
	if err != nil {
		return err
	}
	loc, err := o.g.storeDir()
	if err != nil {
		return err
	}
	store, err := o.g.openStore(ctx, loc)
	if err != nil {
		return err
	}
	human := o.g.io.Out
	if o.json {
		human = o.g.io.Err
	}
	run, man, out, err := o.stage(ctx, store, inputs, source, python, o.workers+o.ssh.slots())
	if err != nil {
		return err
	}
	if o.detach {
		fmt.Fprintf(human, "staged run %s: %d tasks from %s\n", run.ID, len(man.Tasks), source)
		fmt.Fprintf(human, "work on it with: burst worker %s\n", run.Location())
		if o.json {
			return writeJSON(o.g.io.Out, map[string]any{"run": run.ID, "location": run.Location(), "total": len(man.Tasks), "state": "staged"})
		}
		return nil
	}
	fmt.Fprintf(human, "run %s: %d tasks from %s, %s, %s\n", run.ID, len(man.Tasks), source, workersLine(o.workers, o.ssh.specs), python)
	lr := &localRun{g: o.g, run: run, man: man, workers: o.workers, python: python, out: out, json: o.json, hosts: o.ssh.hosts, sshPython: o.python, keepalive: o.ssh.keepalive}
	return lr.execute(ctx)
}

// stage writes a run to store (the script, one pickled input per task, the
// shared files and the manifest) and returns it with its manifest and the
// folder its results are collected into. python is the interpreter the
// workers use; slots the number of tasks the run is planned to run at once.
func (o *submitOptions) stage(ctx context.Context, store staging.Store, inputs []staging.Input, source, python string, slots int) (*staging.Run, *staging.Manifest, string, error) {
	run, man, out, err := staging.StageNew(ctx, store, staging.StageRequest{
		ScriptPath:  o.script,
		Inputs:      inputs,
		SharedPaths: o.shared,
		Manifest: staging.Manifest{
			Python:   python,
			Source:   source,
			Timeout:  staging.Duration(o.timeout),
			Retries:  o.retries,
			MaxLost:  o.maxLost,
			LeaseTTL: staging.Duration(o.leaseTTL),
			Slots:    slots,
			Warm:     o.warm,
			Preload:  o.preload,
		},
		Logger: slog.Default(),
	}, o.out)
	if err != nil {
		return nil, nil, "", err
	}
	sealRun(ctx, run)
	return run, man, out, nil
}

// resolvePython finds the interpreter here. With no workers here, an
// interpreter missing here is no error: the hosts find their own.
func (o *submitOptions) resolvePython() (string, error) {
	python, err := executor.ResolvePython(o.python)
	if err != nil && o.workers == 0 && len(o.ssh.hosts) > 0 {
		if o.python != "" {
			return o.python, nil
		}
		return "python3", nil
	}
	if err != nil {
		return "", usageError{err}
	}
	return python, nil
}

// workersLine says where a run's workers are: "4 workers", "2 workers
// here and ssh lab1, lab2/8".
func workersLine(here int, hosts []string) string {
	if len(hosts) == 0 {
		return fmt.Sprintf("%d workers", here)
	}
	s := "ssh " + strings.Join(hosts, ", ")
	if here > 0 {
		s = fmt.Sprintf("%d workers here and %s", here, s)
	}
	return s
}
