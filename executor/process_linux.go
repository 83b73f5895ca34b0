package executor

import (
	"os"
	"syscall"
)

// procAttr puts the interpreter in a process group of its own, and has the
// kernel kill it if this worker dies (kill -9 included), so no orphan keeps
// running, or holding a core, after its worker is gone.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func maxRSSKB(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss // kilobytes on Linux
	}
	return 0
}
