package fleetsim

import (
	"bytes"
	"os"
	"strconv"
	"syscall"

	"github.com/slicerburst/burst/internal/testserver"
)

// killMarked sends SIGKILL to every live process whose environment holds
// marker (a NAME=VALUE entry), and reports how many it found. A process that
// left its process group (the worker starts each task in a group of its own)
// still inherits the environment, so this finds what the group kill misses.
func killMarked(marker string) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	want := append([]byte(marker), 0)
	self := os.Getpid()
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || !testserver.Alive(pid) {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !(bytes.HasPrefix(env, want) || bytes.Contains(env, append([]byte{0}, want...))) {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		n++
	}
	return n
}
