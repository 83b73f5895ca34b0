package executor

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// procAttr puts the interpreter in a process group of its own, and has the
// kernel kill it if this worker dies (kill -9 included), so no orphan keeps
// running, or holding a core, after its worker is gone.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// rssProbe measures an interpreter's peak memory. The kernel's figure
// (ru_maxrss) cannot be taken alone: Go starts processes with vfork, and
// exec folds the parent's peak into the child's, so a task would seem to
// use at least as much memory as the worker ever did. So the probe also
// reads the worker's own peak before the start, and samples the child's
// own high-water mark (VmHWM) while it runs: a ru_maxrss above the
// worker's peak is the child's own; one at or below it is the worker's,
// and the samples tell the child's. Before each start the worker resets
// its own peak to its current size (clear_refs), so that what exec folds
// in is what the worker holds then, not the most it ever held, and the
// kernel's exact figure serves for every interpreter larger than that.
type rssProbe struct {
	parentKB int64
	sampled  atomic.Int64
	stop     chan struct{}
	done     chan struct{}
}

// rssSampleEvery is how often a running interpreter's memory is sampled.
const rssSampleEvery = 50 * time.Millisecond

func newRSSProbe() *rssProbe {
	// "5" resets the peak resident size to the current one (Linux 4.0).
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	kb, _ := readStatusKB("/proc/self/status", "VmHWM:")
	return &rssProbe{parentKB: kb, stop: make(chan struct{}), done: make(chan struct{})}
}

// watch samples process pid until end.
func (p *rssProbe) watch(pid int) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	go func() {
		defer close(p.done)
		t := time.NewTicker(rssSampleEvery)
		defer t.Stop()
		for {
			if kb, ok := readStatusKB(path, "VmHWM:"); ok && kb > p.sampled.Load() {
				p.sampled.Store(kb)
			}
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
}

// end stops sampling and returns the peak memory in KiB of the process
// that ps describes.
func (p *rssProbe) end(ps *os.ProcessState) int64 {
	close(p.stop)
	<-p.done
	var maxrss int64
	if ps == nil {
		return 0
	}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		maxrss = ru.Maxrss // KiB on Linux
	}
	if maxrss > p.parentKB || p.sampled.Load() == 0 {
		return maxrss
	}
	return p.sampled.Load()
}

// statusKB reads a figure in KiB (key "VmRSS:", "VmHWM:") of process
// pid's /proc status.
func statusKB(pid int, key string) (int64, bool) {
	return readStatusKB(fmt.Sprintf("/proc/%d/status", pid), key)
}

// readStatusKB reads the line key ("VmHWM:") of a /proc status file, in
// KiB.
func readStatusKB(path, key string) (int64, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if rest, ok := bytes.CutPrefix(sc.Bytes(), []byte(key)); ok {
			f := bytes.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			kb, err := strconv.ParseInt(string(f[0]), 10, 64)
			return kb, err == nil
		}
	}
	return 0, false
}
