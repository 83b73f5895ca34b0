package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/slicerburst/burst/internal/testpy"
	"github.com/slicerburst/burst/internal/testsshd"
	"github.com/slicerburst/burst/staging"
)

// sshServers maps a script's work directory to its sshd.
var sshServers sync.Map

// TestSSHScripts runs the CLI end to end with workers on ssh hosts:
// testdata/ssh/*.txtar, each with a real OpenSSH server of its own on
// 127.0.0.1 (BURST_SSH points ssh at its configuration; $HOST logs in,
// $WRONGKEY is refused, $CLOSED is unreachable). The "remote" is this
// machine, as the user that runs the tests, with a cache of its own.
func TestSSHScripts(t *testing.T) {
	python := testpy.Python(t)
	root := testpy.ModuleRoot(t)
	testscript.Run(t, testscript.Params{
		Dir: "testdata/ssh",
		Setup: func(env *testscript.Env) error {
			s := testsshd.Start(env.T().(testing.TB))
			sshServers.Store(env.WorkDir, s)
			env.Defer(func() { sshServers.Delete(env.WorkDir) })
			env.Setenv("PYTHON", python)
			env.Setenv("EXAMPLES", filepath.Join(root, "examples"))
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("XDG_CACHE_HOME", filepath.Join(env.WorkDir, ".cache"))
			env.Setenv("XDG_DATA_HOME", filepath.Join(env.WorkDir, ".data"))
			env.Setenv("BURST_STORE", filepath.Join(env.WorkDir, "store"))
			env.Setenv("BURST_SSH", strings.Join(s.SSH, " "))
			env.Setenv("HOST", s.Host)
			env.Setenv("WRONGKEY", s.WrongKey)
			env.Setenv("CLOSED", s.Closed)
			env.Setenv("SSHUSER", s.User)
			env.Setenv("SSHPORT", strconv.Itoa(s.Port))
			env.Setenv("REMOTECACHE", s.RemoteCache)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"lastrun":    cmdLastRun,
			"sshleft":    cmdSSHLeft,
			"sshkill":    cmdSSHKill,
			"waitstatus": cmdWaitStatus,
		},
		RequireExplicitExec: true,
	})
}

func scriptSSHD(ts *testscript.TestScript) *testsshd.Server {
	s, ok := sshServers.Load(ts.Getenv("WORK"))
	if !ok {
		ts.Fatalf("no sshd for this script")
	}
	return s.(*testsshd.Server)
}

// cmdSSHLeft checks, on the ssh host, that no process of the script's
// sessions is left: no burst, no interpreter (waiting up to 20s for
// processes that are being killed to go).
func cmdSSHLeft(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: sshleft")
	}
	if left := scriptSSHD(ts).WaitNoProcesses(20 * time.Second); len(left) > 0 {
		ts.Fatalf("processes left on the ssh host:\n%s", strings.Join(left, "\n"))
	}
}

// cmdSSHKill signals the ssh client of the session that runs the workers
// of a host: sshkill [-STOP] HOST, or sshkill [-STOP] @FILE for the host
// named on FILE's first line. SIGKILL (the default) cuts the session;
// SIGSTOP stalls it as a network gone silent would.
func cmdSSHKill(ts *testscript.TestScript, neg bool, args []string) {
	sig := syscall.SIGKILL
	if len(args) == 2 && args[0] == "-STOP" {
		sig, args = syscall.SIGSTOP, args[1:]
	}
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sshkill [-STOP] HOST|@FILE")
	}
	host := args[0]
	if f, ok := strings.CutPrefix(host, "@"); ok {
		host, _, _ = strings.Cut(ts.ReadFile(f), "\n")
	}
	// This script's sessions only: scripts run in parallel, each with an
	// sshd and an ssh configuration of its own.
	own := []byte("\x00" + scriptSSHD(ts).Config + "\x00")
	want := []byte("--host-name")
	ents, _ := os.ReadDir("/proc")
	killed := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv := bytes.Split(cmdline, []byte{0})
		// The remote command names the host, quoted (once or twice).
		if filepath.Base(string(argv[0])) != "ssh" || !bytes.Contains(cmdline, own) || !bytes.Contains(cmdline, want) ||
			!bytes.Contains(cmdline, []byte(shellQuoteTest(host))) {
			continue
		}
		if err := syscall.Kill(pid, sig); err == nil {
			killed++
		}
	}
	if killed == 0 {
		ts.Fatalf("no ssh session of host %q to signal", host)
	}
	ts.Logf("sent %v to %d ssh session(s) of %s", sig, killed, host)
}

func shellQuoteTest(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// cmdWaitStatus waits (up to 60s) until the newest run in $BURST_STORE has
// at least N finished tasks.
func cmdWaitStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitstatus N")
	}
	n, err := strconv.Atoi(args[0])
	ts.Check(err)
	store, err := staging.OpenFS(ts.Getenv("BURST_STORE"))
	ts.Check(err)
	defer store.Close()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		ids, _ := store.ListDirs(context.Background(), "runs/")
		for _, id := range ids {
			st, _ := store.List(context.Background(), "runs/"+id+"/status/")
			if len(st) >= n {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	ts.Fatalf("no run reached %d finished tasks in 60s", n)
}
