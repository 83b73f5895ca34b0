//go:build !linux

package testserver

import "syscall"

// ProcAttr is what Start gives a server process, for other processes that
// tests start: a process group of its own. Outside Linux there is no
// parent-death signal; the test's cleanup must stop the process.
func ProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// Alive asks the kernel whether process pid exists (a zombie counts as
// alive).
func Alive(pid int) bool { return syscall.Kill(pid, 0) == nil }
