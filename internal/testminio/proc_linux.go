package testminio

import "syscall"

// procAttr has the kernel kill the server when the test process dies
// without cleaning up (a test timeout, say), so no server outlives its test.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
