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

func maxRSSKB(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		if runtime.GOOS == "darwin" {
			return ru.Maxrss / 1024 // bytes on macOS
		}
		return ru.Maxrss
	}
	return 0
}
