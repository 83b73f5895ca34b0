//go:build !linux

package executor

import (
	"os"
	"runtime"
	"syscall"
)

func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// rssProbe measures an interpreter's peak memory: the kernel's figure.
type rssProbe struct{}

func newRSSProbe() *rssProbe      { return &rssProbe{} }
func (p *rssProbe) watch(pid int) {}
func (p *rssProbe) end(ps *os.ProcessState) int64 {
	if ps == nil {
		return 0
	}
	return maxRSSKB(ps)
}

func maxRSSKB(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		if runtime.GOOS == "darwin" {
			return ru.Maxrss / 1024 // bytes on macOS
		}
		return ru.Maxrss
	}
	return 0
}

// statusKB reads a process's memory figures where /proc has them: not
// here.
func statusKB(pid int, key string) (int64, bool) { return 0, false }
