// Package provision finds the machines that a run's workers run on and
// sizes them for the queue. Local is this machine: one worker process with
// a slot per core. SSH runs workers on machines reached over ssh, serving
// them the run store over the session (StdioWorker is their end), and Machines
// runs this machine's and the ssh hosts' workers together. On EC2: Catalog and the prices give the offers, Plan
// sizes a fleet for the queue within a budget and a deadline, UserData is
// the boot script that runs a worker and ends the instance, Launch starts
// the fleet and falls back on capacity errors, and Down and GC end it. All
// EC2 calls go through EC2API.
package provision

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/slicerburst/burst/executor"
	"github.com/slicerburst/burst/staging"
)

// Cores returns how many tasks this machine can run at once: the CPUs this
// process may use, within its CPU affinity mask and any cgroup CPU quota
// (as a container or systemd slice sets), and at least one.
func Cores() int {
	return max(1, runtime.GOMAXPROCS(0))
}

// Local runs a run's tasks on this machine, in this process.
type Local struct {
	// Slots is the number of tasks run at once; Cores() when zero.
	Slots int
	// Python is the interpreter (see executor.ResolvePython).
	Python string
	// ID names the worker in leases and heartbeats; generated when empty.
	ID string
	// Dir holds the workers' scratch directories (removed when they end)
	// and the cache of shared files, kept across runs by content hash.
	// DefaultDir() when empty.
	Dir string
	// Heartbeat and Logger are passed to the worker (see executor.Config).
	Heartbeat time.Duration
	Logger    *slog.Logger
	// OnEvent, when set, sees tasks start and finish.
	OnEvent func(executor.Event)
}

// DefaultDir is where local workers keep their scratch and cache
// directories: burst's folder in the user's cache directory.
func DefaultDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "burst")
}

// CacheDir is the cache of shared files under dir.
func CacheDir(dir string) string { return filepath.Join(dir, "cas") }

// Run works on run with one worker until nothing is left to claim, the
// run is cancelled (executor.ErrCancelled) or ctx ends. The worker's
// scratch directory is removed afterwards; the shared-file cache stays.
func (l Local) Run(ctx context.Context, run *staging.Run) (executor.Summary, error) {
	slots := l.Slots
	if slots == 0 {
		slots = Cores()
	}
	dir := l.Dir
	if dir == "" {
		dir = DefaultDir()
	}
	id := l.ID
	if id == "" {
		id = executor.NewWorkerID()
	}
	work := filepath.Join(dir, "work", id)
	defer os.RemoveAll(work)
	return executor.Run(ctx, executor.Config{
		Run: run, Slots: slots, Python: l.Python, ID: id,
		WorkDir: work, CacheDir: CacheDir(dir),
		Heartbeat: l.Heartbeat, Logger: l.Logger, OnEvent: l.OnEvent,
	})
}
