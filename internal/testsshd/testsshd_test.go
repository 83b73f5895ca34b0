package testsshd_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/slicerburst/burst/internal/testsshd"
)

// The server logs in with the generated key only, checks its host key
// strictly, and gives sessions their own cache directory.
func TestServer(t *testing.T) {
	s := testsshd.Start(t)
	ssh := func(host string, args ...string) (string, error) {
		out, err := exec.Command("ssh", append([]string{"-F", s.Config, "-o", "BatchMode=yes", host}, args...)...).CombinedOutput()
		return string(out), err
	}
	out, err := ssh(s.Host, "echo", "cache=$XDG_CACHE_HOME")
	if err != nil || strings.TrimSpace(out) != "cache="+s.RemoteCache {
		t.Fatalf("ssh %s: %v: %q\nserver log:\n%s", s.Host, err, out, s.Log())
	}
	if out, err := ssh(s.WrongKey, "true"); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("ssh with the wrong key: %v: %q", err, out)
	}
	if out, err := ssh(s.Closed, "true"); err == nil || !strings.Contains(out, "Connection refused") {
		t.Errorf("ssh to a closed port: %v: %q", err, out)
	}
}
