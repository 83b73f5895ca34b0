//go:build !linux

package testminio

import "syscall"

// procAttr: outside Linux there is no parent-death signal; t.Cleanup
// stops the server.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
