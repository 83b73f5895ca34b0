// Package fleetsim boots the EC2 instances that an EC2 emulator (moto's
// server, see internal/testmoto) reports, as local processes, so that a
// fleet launch can be tested end to end on one machine.
//
// Each instance that appears pending or running is booted once: its user
// data (DescribeInstanceAttribute userData) runs with bash in a folder of its
// own, as root would run it on the instance, with a clean environment and an
// instance metadata service (IMDSv2) of its own that hands out the instance
// profile's credentials. The instance then behaves as on AWS:
//
//   - `shutdown -h now` in the instance terminates it in the emulator and
//     kills all its processes (the launch sets shutdown behaviour to
//     terminate); `shutdown -h +M` schedules that, `shutdown -c` cancels it.
//   - When someone else terminates it through the API (a CLI's teardown,
//     `burst gc`), its processes are killed within a poll interval.
//   - Interrupt announces a spot interruption on its metadata service, and
//     terminates it after Config.InterruptGrace.
//   - When its user data exits by itself, the instance stays up, as on AWS.
//
// The harness is Linux-first: it finds an instance's processes by a marker
// in their environment under /proc, so that a worker's task processes, which
// live in process groups of their own, die with their instance.
package fleetsim

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/slicerburst/burst/internal/testserver"
)

// MarkerEnv is the one variable, besides those Config lists, in every
// instance process's environment: a token unique to the instance, by which
// the harness finds all of the instance's processes. Nothing should read it.
const MarkerEnv = "FLEETSIM_INSTANCE"

// Config sets up a Harness.
type Config struct {
	// EC2 is a client of the emulator. Required.
	EC2 *ec2.Client
	// Env is added to every instance's environment, e.g.
	// AWS_ENDPOINT_URL_S3=<MinIO> and AWS_REGION. It must not hold
	// credentials: an instance gets those from its metadata service.
	Env []string
	// Path lists folders put on every instance's PATH, after the fake
	// shutdown's and before the system's: where a test puts the burst
	// binary, as the AMI would have it.
	Path []string
	// Credentials are what the instance profile hands out through each
	// instance's metadata service (for tests, the MinIO keys). When they
	// cannot expire, the metadata says they expire in six hours.
	Credentials aws.Credentials
	// Role is the instance profile's role name; default "burst-worker".
	Role string
	// InterruptGrace is how long after Interrupt the instance is
	// terminated; default 2 minutes, as on AWS.
	InterruptGrace time.Duration
	// MinuteIs is how long one minute of `shutdown +M` lasts; default one
	// minute. A test sets it to a second to make "+1" mean one second.
	MinuteIs time.Duration
	// Poll is the interval between DescribeInstances calls; default 200 ms.
	Poll time.Duration
	// Dir holds one folder per instance (user data, output, home). Default:
	// a temporary folder that Close removes.
	Dir string
	// Logf, if set, reports what the harness does: boots, exits, shutdown
	// requests, terminations.
	Logf func(format string, args ...any)
}

// Why an instance was terminated.
const (
	ByShutdown     = "shutdown"           // `shutdown now` in the instance
	ByScheduled    = "scheduled shutdown" // a `shutdown +M` that came due
	ByInterruption = "spot interruption"  // Interrupt, then InterruptGrace
	ByAPI          = "api"                // someone terminated it through the API
)

// Instance is what the harness saw of one instance.
type Instance struct {
	ID   string
	Type string
	Zone string
	Spot bool
	// Dir is the instance's folder, its HOME and working directory.
	Dir string
	// Output is the file with the user data's stdout and stderr.
	Output string
	// Booted is when its user data started.
	Booted time.Time
	// Running: the user data has not exited and the instance is up.
	Running bool
	// Exited: the user data's process has ended, by itself or killed.
	// ExitCode is its exit status, -1 if a signal ended it.
	Exited   bool
	ExitCode int
	// Shutdowns lists the arguments of each `shutdown` call, in order.
	Shutdowns []string
	// ScheduledShutdown is when a pending `shutdown +M` comes due; zero if
	// none is pending.
	ScheduledShutdown time.Time
	// Interrupted is when Interrupt announced a spot interruption.
	Interrupted time.Time
	// Terminated is when the harness saw or made the instance end, and
	// TerminatedBy why (ByShutdown, ByScheduled, ByInterruption, ByAPI).
	Terminated   time.Time
	TerminatedBy string
	// BootError says why the instance could not be booted, if it could not.
	BootError string
}

// Harness boots and runs the emulator's instances until Close.
type Harness struct {
	cfg  Config
	dir  string
	temp bool // dir is ours to remove

	cancel context.CancelFunc
	loop   sync.WaitGroup

	logMu  sync.Mutex
	logOff bool // after Close: goroutines still finishing log nothing

	mu     sync.Mutex
	insts  map[string]*instance
	order  []string
	closed bool
}

type instance struct {
	Instance
	marker   string
	endpoint string // the metadata service's URL
	md       *metadata
	srv      *http.Server
	cmd      *exec.Cmd
	done     chan struct{} // closed when the user data's process is reaped
	timer    *time.Timer   // the scheduled shutdown or interruption
	ending   bool          // being terminated
}

// Start starts a harness that polls the emulator for instances to boot. Close
// it when done.
func Start(ctx context.Context, cfg Config) (*Harness, error) {
	if cfg.EC2 == nil {
		return nil, errors.New("fleetsim: Config.EC2 is required")
	}
	for _, kv := range cfg.Env {
		k, _, _ := strings.Cut(kv, "=")
		if k == "AWS_ACCESS_KEY_ID" || k == "AWS_SECRET_ACCESS_KEY" || k == "AWS_SESSION_TOKEN" {
			return nil, fmt.Errorf("fleetsim: Config.Env sets %s: instances get credentials from their metadata service", k)
		}
	}
	if cfg.Role == "" {
		cfg.Role = "burst-worker"
	}
	if cfg.InterruptGrace <= 0 {
		cfg.InterruptGrace = 2 * time.Minute
	}
	if cfg.MinuteIs <= 0 {
		cfg.MinuteIs = time.Minute
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 200 * time.Millisecond
	}
	h := &Harness{cfg: cfg, dir: cfg.Dir, insts: map[string]*instance{}}
	if h.dir == "" {
		d, err := os.MkdirTemp("", "fleetsim-")
		if err != nil {
			return nil, fmt.Errorf("fleetsim: %w", err)
		}
		h.dir, h.temp = d, true
	}
	// The first poll runs before Start returns, so instances that already
	// exist are booted at once.
	h.poll(ctx)
	ctx, h.cancel = context.WithCancel(context.WithoutCancel(ctx))
	h.loop.Add(1)
	go func() {
		defer h.loop.Done()
		t := time.NewTicker(cfg.Poll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				h.poll(ctx)
			}
		}
	}()
	return h, nil
}

// Instances returns what the harness saw of every instance it booted, in
// boot order.
func (h *Harness) Instances() []Instance {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Instance, 0, len(h.order))
	for _, id := range h.order {
		in := h.insts[id].Instance
		in.Shutdowns = append([]string(nil), in.Shutdowns...)
		out = append(out, in)
	}
	return out
}

// Instance returns what the harness saw of one instance, and whether it
// booted it.
func (h *Harness) Instance(id string) (Instance, bool) {
	for _, in := range h.Instances() {
		if in.ID == id {
			return in, true
		}
	}
	return Instance{}, false
}

// WaitUntil polls the harness's view until cond holds, and returns ctx's
// error if it never does.
func (h *Harness) WaitUntil(ctx context.Context, cond func([]Instance) bool) error {
	for {
		if cond(h.Instances()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fleetsim: waiting: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Interrupt announces a spot interruption on the instance's metadata
// service (spot/instance-action and the rebalance recommendation), and
// terminates the instance InterruptGrace later, as AWS does. It fails for
// an instance the harness has not booted, one that is not spot, or one
// already terminated; interrupting twice keeps the first deadline.
func (h *Harness) Interrupt(instanceID string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	in, ok := h.insts[instanceID]
	switch {
	case !ok:
		return fmt.Errorf("fleetsim: interrupting %s: no such instance booted", instanceID)
	case !in.Spot:
		return fmt.Errorf("fleetsim: interrupting %s: not a spot instance", instanceID)
	case in.ending || !in.Terminated.IsZero():
		return fmt.Errorf("fleetsim: interrupting %s: already terminated", instanceID)
	case !in.Interrupted.IsZero():
		return nil
	case in.md == nil:
		return fmt.Errorf("fleetsim: interrupting %s: instance not booted", instanceID)
	}
	now := time.Now()
	in.Interrupted = now
	in.md.interrupt(now, now.Add(h.cfg.InterruptGrace))
	h.logf("fleetsim: %s: spot interruption announced, terminating in %v", instanceID, h.cfg.InterruptGrace)
	if in.timer != nil {
		in.timer.Stop()
	}
	in.ScheduledShutdown = time.Time{}
	in.timer = time.AfterFunc(h.cfg.InterruptGrace, func() { h.terminate(in, ByInterruption, true) })
	return nil
}

// Close stops polling and kills every process of every instance, waiting
// until they are gone. It leaves the emulator's instances as they are. Safe
// to call more than once.
func (h *Harness) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	h.loop.Wait()

	h.mu.Lock()
	all := make([]*instance, 0, len(h.insts))
	var servers []*http.Server
	for _, in := range h.insts {
		if in.timer != nil {
			in.timer.Stop()
		}
		all = append(all, in)
		if in.srv != nil {
			servers = append(servers, in.srv)
		}
	}
	h.mu.Unlock()
	var errs []error
	for _, in := range all {
		if err := h.kill(in); err != nil {
			errs = append(errs, err)
		}
	}
	for _, srv := range servers {
		srv.Close()
	}
	if h.temp {
		if err := os.RemoveAll(h.dir); err != nil {
			errs = append(errs, err)
		}
	}
	h.logMu.Lock()
	h.logOff = true
	h.logMu.Unlock()
	return errors.Join(errs...)
}

func (h *Harness) logf(format string, args ...any) {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	if !h.logOff && h.cfg.Logf != nil {
		h.cfg.Logf(format, args...)
	}
}

// poll boots the instances that are new, and kills those that the API says
// are going or gone.
func (h *Harness) poll(ctx context.Context) {
	states := map[string]types.Instance{}
	p := ec2.NewDescribeInstancesPaginator(h.cfg.EC2, &ec2.DescribeInstancesInput{})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			if ctx.Err() == nil {
				h.logf("fleetsim: DescribeInstances: %v", err)
			}
			return
		}
		for _, r := range out.Reservations {
			for _, i := range r.Instances {
				states[aws.ToString(i.InstanceId)] = i
			}
		}
	}

	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	var gone []*instance
	for id, in := range h.insts {
		st, ok := states[id]
		if in.ending || !in.Terminated.IsZero() {
			continue
		}
		if !ok || (st.State != nil && st.State.Name != types.InstanceStateNamePending && st.State.Name != types.InstanceStateNameRunning) {
			gone = append(gone, in)
		}
	}
	var fresh []types.Instance
	for id, st := range states {
		if _, ok := h.insts[id]; ok || st.State == nil {
			continue
		}
		if st.State.Name == types.InstanceStateNamePending || st.State.Name == types.InstanceStateNameRunning {
			fresh = append(fresh, st)
		}
	}
	h.mu.Unlock()

	for _, in := range gone {
		h.terminate(in, ByAPI, false)
	}
	sort.Slice(fresh, func(i, j int) bool {
		return aws.ToString(fresh[i].InstanceId) < aws.ToString(fresh[j].InstanceId)
	})
	for _, st := range fresh {
		h.boot(ctx, st)
	}
}

// boot starts one instance: its metadata service, then its user data.
func (h *Harness) boot(ctx context.Context, st types.Instance) {
	id := aws.ToString(st.InstanceId)
	in := &instance{Instance: Instance{
		ID:       id,
		Type:     string(st.InstanceType),
		Spot:     st.InstanceLifecycle == types.InstanceLifecycleTypeSpot,
		Dir:      filepath.Join(h.dir, id),
		ExitCode: -1,
	}}
	if st.Placement != nil {
		in.Zone = aws.ToString(st.Placement.AvailabilityZone)
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.insts[id] = in
	h.order = append(h.order, id)
	h.mu.Unlock()

	if err := h.start(ctx, in, st); err != nil {
		h.logf("fleetsim: %s: not booted: %v", id, err)
		h.mu.Lock()
		in.BootError = err.Error()
		h.mu.Unlock()
	}
}

func (h *Harness) start(ctx context.Context, in *instance, st types.Instance) error {
	out, err := h.cfg.EC2.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{
		InstanceId: st.InstanceId, Attribute: types.InstanceAttributeNameUserData,
	})
	if err != nil {
		return fmt.Errorf("reading user data: %w", err)
	}
	var userData []byte
	if out.UserData != nil && out.UserData.Value != nil {
		if userData, err = base64.StdEncoding.DecodeString(aws.ToString(out.UserData.Value)); err != nil {
			return fmt.Errorf("decoding user data: %w", err)
		}
	}

	var tok [8]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return err
	}
	// The instance's fields are set under h.mu at the end; until then,
	// locals.
	marker := MarkerEnv + "=" + in.ID + "-" + hex.EncodeToString(tok[:])
	lifecycle := "on-demand"
	if in.Spot {
		lifecycle = "spot"
	}
	md := &metadata{
		instanceID:   in.ID,
		instanceType: in.Type,
		zone:         in.Zone,
		region:       h.cfg.EC2.Options().Region,
		imageID:      aws.ToString(st.ImageId),
		lifecycle:    lifecycle,
		role:         h.cfg.Role,
		creds:        h.cfg.Credentials,
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("metadata service: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /_fleetsim/shutdown", func(w http.ResponseWriter, r *http.Request) { h.serveShutdown(in, w, r) })
	mux.Handle("/", md)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	started := false
	defer func() {
		if !started {
			srv.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	endpoint := fmt.Sprintf("http://127.0.0.1:%d/", port)

	sbin := filepath.Join(in.Dir, "sbin")
	if err := os.MkdirAll(sbin, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(sbin, "shutdown"), fmt.Appendf(nil, shutdownScript, port), 0o755); err != nil {
		return err
	}
	script := filepath.Join(in.Dir, "user-data")
	if err := os.WriteFile(script, userData, 0o755); err != nil {
		return err
	}
	output := filepath.Join(in.Dir, "output.log")
	log, err := os.Create(output)
	if err != nil {
		return err
	}
	defer log.Close()

	path := append([]string{sbin}, h.cfg.Path...)
	path = append(path, os.Getenv("PATH"))
	env := []string{
		"PATH=" + strings.Join(path, string(os.PathListSeparator)),
		"HOME=" + in.Dir,
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + endpoint,
		marker,
	}
	env = append(env, h.cfg.Env...)

	cmd := exec.Command("bash", script)
	cmd.Dir = in.Dir
	cmd.Env = env
	cmd.Stdin = nil
	cmd.Stdout = log
	cmd.Stderr = log
	// Its own process group, killed by the kernel if the test process dies
	// without cleaning up.
	cmd.SysProcAttr = testserver.ProcAttr()

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || in.ending || !in.Terminated.IsZero() {
		return errors.New("terminated before it booted")
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running user data: %w", err)
	}
	started = true
	in.marker, in.md, in.srv, in.endpoint, in.Output = marker, md, srv, endpoint, output
	in.cmd, in.done = cmd, make(chan struct{})
	in.Booted, in.Running = time.Now(), true
	h.logf("fleetsim: %s (%s, %s) booted; output in %s", in.ID, in.Type, lifecycle, in.Output)
	go func() {
		err := cmd.Wait()
		h.mu.Lock()
		in.Running, in.Exited = false, true
		in.ExitCode = cmd.ProcessState.ExitCode()
		h.mu.Unlock()
		h.logf("fleetsim: %s: user data exited: %v", in.ID, errOrOK(err))
		close(in.done)
	}()
	return nil
}

func errOrOK(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// serveShutdown carries out the instance's `shutdown` call.
func (h *Harness) serveShutdown(in *instance, w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var args []string
	if s := strings.TrimSuffix(string(body), "\n"); s != "" || len(body) > 0 {
		args = strings.Split(s, "\n")
	}
	req, err := parseShutdown(args)
	h.mu.Lock()
	in.Shutdowns = append(in.Shutdowns, strings.Join(args, " "))
	h.mu.Unlock()
	h.logf("fleetsim: %s: shutdown %s", in.ID, strings.Join(args, " "))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if in.ending || !in.Terminated.IsZero() {
		http.Error(w, "the system is going down", http.StatusConflict)
		return
	}
	switch {
	case req.WallOnly:
	case req.Cancel:
		if !in.ScheduledShutdown.IsZero() && in.timer != nil {
			in.timer.Stop()
			in.timer, in.ScheduledShutdown = nil, time.Time{}
		}
	case req.Minutes == 0:
		in.ending = true
		go h.terminate(in, ByShutdown, true)
	default:
		if !in.Interrupted.IsZero() {
			// The interruption's deadline stands.
			fmt.Fprintf(w, "Shutdown scheduled, use 'shutdown -c' to cancel.")
			return
		}
		if in.timer != nil {
			in.timer.Stop()
		}
		d := time.Duration(req.Minutes) * h.cfg.MinuteIs
		in.ScheduledShutdown = time.Now().Add(d)
		in.timer = time.AfterFunc(d, func() { h.terminate(in, ByScheduled, true) })
		fmt.Fprintf(w, "Shutdown scheduled for %s, use 'shutdown -c' to cancel.", in.ScheduledShutdown.UTC().Format(time.RFC1123))
	}
}

// terminate ends an instance: kills its processes and, if viaAPI, terminates
// it in the emulator (as the instance's shutdown behaviour or the spot
// service would). Once per instance; later calls do nothing.
func (h *Harness) terminate(in *instance, why string, viaAPI bool) {
	h.mu.Lock()
	if !in.Terminated.IsZero() || (in.ending && why != ByShutdown) || h.closed {
		h.mu.Unlock()
		return
	}
	in.ending = true
	if in.timer != nil {
		in.timer.Stop()
		in.timer = nil
	}
	in.ScheduledShutdown = time.Time{}
	h.mu.Unlock()

	h.logf("fleetsim: %s: terminating (%s)", in.ID, why)
	if err := h.kill(in); err != nil {
		h.logf("fleetsim: %s: %v", in.ID, err)
	}
	if viaAPI {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := h.cfg.EC2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{in.ID}})
		cancel()
		var ae smithy.APIError
		if err != nil && !(errors.As(err, &ae) && ae.ErrorCode() == "InvalidInstanceID.NotFound") {
			h.logf("fleetsim: %s: TerminateInstances: %v", in.ID, err)
		}
	}
	h.mu.Lock()
	in.Terminated, in.TerminatedBy, in.Running = time.Now(), why, false
	srv := in.srv
	h.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// killWait bounds the wait for an instance's processes to die.
const killWait = 10 * time.Second

// kill sends SIGKILL to every process of the instance (its process group,
// and every process carrying its marker) until none is left, and waits for
// the user data's process to be reaped.
func (h *Harness) kill(in *instance) error {
	h.mu.Lock()
	cmd, done, marker := in.cmd, in.done, in.marker
	h.mu.Unlock()
	if cmd == nil {
		return nil
	}
	deadline := time.Now().Add(killWait)
	for {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		n := killMarked(marker)
		if n == 0 && !groupAlive(cmd.Process.Pid) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("instance %s: %d processes still alive after %v", in.ID, n, killWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-done:
		return nil
	case <-time.After(killWait):
		return fmt.Errorf("instance %s: user data process not reaped after %v", in.ID, killWait)
	}
}

// groupAlive reports whether the process group pgid has a live member
// other than zombies. Signal 0 to a group only says that some member, dead
// or not, exists, so the leader is checked through /proc where it can be.
func groupAlive(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); err != nil {
		return false
	}
	return testserver.Alive(pgid)
}
