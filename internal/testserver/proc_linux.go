package testserver

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// ProcAttr is what Start gives a server process, for other processes that
// tests start: a process group of its own, so that it and anything it
// started can be signalled together, and a SIGKILL from the kernel when the
// test process dies without cleaning up (a test timeout, say), so that it
// does not outlive its test.
func ProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// Alive reports whether process pid exists and is not a zombie: a killed
// orphan that no init process has reaped is dead all the same.
func Alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesized command name: "pid (comm) S ...".
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}
