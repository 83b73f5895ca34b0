// Package testsshd runs a real OpenSSH server for tests: one private sshd
// per call to Start, on 127.0.0.1 and a free port, with a host key, a user
// key and a configuration generated in the test's temporary folder. It
// logs in the user the tests run as (root included, with a dedicated
// authorized_keys file), and touches nothing of the machine's own ssh
// setup. Clients reach it through an ssh configuration file of its own
// (ssh -F), which checks the generated host key strictly.
//
// The server comes from $BURST_SSHD, else /usr/sbin/sshd, which
// scripts/sshd.sh (run by `make test`) installs. Without one, Start skips
// the test, saying so.
package testsshd

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slicerburst/burst/internal/testserver"
)

// Server is one running sshd.
type Server struct {
	Dir  string // the server's folder: keys, configuration, logs
	Port int
	User string
	// Config is the ssh client configuration that reaches the server; SSH
	// is the ssh command that uses it (for BURST_SSH).
	Config string
	SSH    []string
	// Host is a host alias (in Config) that logs in with the right key.
	// WrongKey logs in with a key the server does not accept; Closed
	// points at a port where nothing listens.
	Host, WrongKey, Closed string
	// RemoteCache is XDG_CACHE_HOME in the server's sessions: the remote
	// user's cache, where burst copies itself and keeps its work.
	RemoteCache string

	proc testserver.Process
}

// Binary returns the sshd path, or "" when there is none.
func Binary() string {
	if p := os.Getenv("BURST_SSHD"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/sbin/sshd"); err == nil {
		return "/usr/sbin/sshd"
	}
	p, _ := exec.LookPath("sshd")
	return p
}

// Start starts an sshd for the test and waits until it accepts
// connections; it is stopped when the test ends. The test is skipped when
// no OpenSSH server or client can be had.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		t.Skip("no OpenSSH server (sshd): run scripts/sshd.sh as root, or set BURST_SSHD")
	}
	for _, tool := range []string{"ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s (OpenSSH client): run scripts/sshd.sh as root", tool)
		}
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	// Short paths: sshd and ssh limit the length of socket paths.
	dir, err := os.MkdirTemp("", "sshd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		// sshd's privilege separation directory, as its package makes it.
		_ = os.MkdirAll("/run/sshd", 0o755)
	}
	s := &Server{Dir: dir, User: u.Username, RemoteCache: filepath.Join(dir, "remote-cache"),
		Host: "burst-test", WrongKey: "burst-test-wrongkey", Closed: "burst-test-closed"}
	keygen := func(name string) {
		out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", filepath.Join(dir, name)).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
	}
	keygen("host_key")
	keygen("user_key")
	keygen("wrong_key")
	pub, err := os.ReadFile(filepath.Join(dir, "user_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "authorized_keys"), string(pub))
	closed, err := testserver.FreeAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	_, closedPort, _ := net.SplitHostPort(closed[0])

	err = s.proc.StartOnFreePorts(1, func(addrs []string) error {
		_, port, _ := net.SplitHostPort(addrs[0])
		s.Port, _ = strconv.Atoi(port)
		cfg := filepath.Join(dir, "sshd_config")
		write(t, cfg, fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile none
AuthorizedKeysFile %s
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
SetEnv XDG_CACHE_HOME=%s
MaxSessions 50
MaxStartups 50
LogLevel INFO
`, s.Port, filepath.Join(dir, "host_key"), filepath.Join(dir, "authorized_keys"), s.RemoteCache))
		cmd := exec.Command(bin, "-D", "-e", "-f", cfg)
		exited, err := s.proc.Start(cmd)
		if err != nil {
			return err
		}
		return testserver.WaitReady(exited, 20*time.Second, func() error {
			c, err := net.DialTimeout("tcp", addrs[0], time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			// Ready when it speaks: the SSH banner.
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "SSH-") {
				return fmt.Errorf("no ssh banner (%q, %v)", line, err)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatalf("starting sshd: %v", err)
	}
	t.Cleanup(s.proc.Stop)

	hostPub, err := os.ReadFile(filepath.Join(dir, "host_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(hostPub))
	write(t, filepath.Join(dir, "known_hosts"), fmt.Sprintf("[127.0.0.1]:%d %s %s\n", s.Port, f[0], f[1]))
	common := fmt.Sprintf(`  HostName 127.0.0.1
  User %s
  UserKnownHostsFile %s
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  IdentitiesOnly yes
  IdentityAgent none
  PasswordAuthentication no
  KbdInteractiveAuthentication no
  LogLevel ERROR
`, u.Username, filepath.Join(dir, "known_hosts"))
	s.Config = filepath.Join(dir, "ssh_config")
	write(t, s.Config, fmt.Sprintf(`Host %s
  Port %d
  IdentityFile %s
%s
Host %s
  Port %d
  IdentityFile %s
%s
Host %s
  Port %s
  IdentityFile %s
%s
Host 127.0.0.1
  IdentityFile %s
%s`, s.Host, s.Port, filepath.Join(dir, "user_key"), common,
		s.WrongKey, s.Port, filepath.Join(dir, "wrong_key"), common,
		s.Closed, closedPort, filepath.Join(dir, "user_key"), common,
		filepath.Join(dir, "user_key"), common))
	s.SSH = []string{"ssh", "-F", s.Config}
	return s
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Log returns the server's log.
func (s *Server) Log() string { return s.proc.Log() }

// Processes lists the processes started in the server's sessions: those
// with the sessions' XDG_CACHE_HOME in their environment (the remote
// workers, their interpreters, and anything those started), as "pid
// command line".
func (s *Server) Processes() []string {
	marker := []byte("XDG_CACHE_HOME=" + s.RemoteCache + "\x00")
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(env, marker) || !testserver.Alive(pid) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out = append(out, fmt.Sprintf("%d %s", pid, bytes.ReplaceAll(bytes.TrimRight(cmdline, "\x00"), []byte{0}, []byte{' '})))
	}
	return out
}

// WaitNoProcesses waits up to timeout until no process of the server's
// sessions is left, and returns those left then.
func (s *Server) WaitNoProcesses(timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		left := s.Processes()
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}
