package provision

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// SSHHost is a machine that runs workers over ssh, as given to --ssh:
// [user@]host[:port][/N].
type SSHHost struct {
	// Dest is [user@]host, as ssh takes it: a name from ~/.ssh/config
	// works as it does for ssh.
	Dest string
	// Port is the port, 0 for ssh's own choice (its config, else 22).
	Port int
	// Slots is the number of tasks run there at once; 0 for the host's
	// cores.
	Slots int
}

// ParseSSHHost parses [user@]host[:port][/N]. An IPv6 address takes
// brackets: [::1]:2222.
func ParseSSHHost(s string) (SSHHost, error) {
	var h SSHHost
	rest := s
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		n, err := strconv.Atoi(rest[i+1:])
		if err != nil || n < 1 {
			return h, fmt.Errorf("ssh host %q: the slots after / must be a whole number of at least 1", s)
		}
		h.Slots, rest = n, rest[:i]
	}
	user, host, hasUser := strings.Cut(rest, "@")
	if !hasUser {
		user, host = "", rest
	} else if user == "" || strings.ContainsAny(user, " \t") {
		return h, fmt.Errorf("ssh host %q: empty or invalid user name", s)
	}
	switch {
	case strings.HasPrefix(host, "["):
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return h, fmt.Errorf("ssh host %q: unclosed [", s)
		}
		after := host[end+1:]
		host = host[1:end]
		if after != "" {
			p, ok := strings.CutPrefix(after, ":")
			if !ok {
				return h, fmt.Errorf("ssh host %q: expected :PORT after ]", s)
			}
			if err := h.setPort(s, p); err != nil {
				return h, err
			}
		}
	case strings.Count(host, ":") == 1:
		var p string
		host, p, _ = strings.Cut(host, ":")
		if err := h.setPort(s, p); err != nil {
			return h, err
		}
	}
	if host == "" || strings.HasPrefix(host, "-") || strings.ContainsAny(host, " \t'\"\\/@") {
		return h, fmt.Errorf("ssh host %q: expected [user@]host[:port][/N]", s)
	}
	h.Dest = host
	if user != "" {
		h.Dest = user + "@" + host
	}
	return h, nil
}

func (h *SSHHost) setPort(spec, p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("ssh host %q: port %q is not a number from 1 to 65535", spec, p)
	}
	h.Port = n
	return nil
}

// Name names the host in progress, statuses and results:
// [user@]host[:port], as given.
func (h SSHHost) Name() string {
	if h.Port == 0 {
		return h.Dest
	}
	user, host, ok := strings.Cut(h.Dest, "@")
	if !ok {
		user, host = "", h.Dest
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	name := host + ":" + strconv.Itoa(h.Port)
	if user != "" {
		name = user + "@" + name
	}
	return name
}

// SSHCommand is the ssh client and the options burst runs it with:
// $BURST_SSH split at spaces when set (for example "ssh -F
// ~/lab/ssh_config"), else ssh. Whatever it is, the user's ssh
// configuration, agent, ProxyJump and ControlMaster settings apply, and
// host keys are checked as ssh checks them.
func SSHCommand() []string {
	if f := strings.Fields(os.Getenv("BURST_SSH")); len(f) > 0 {
		return f
	}
	return []string{"ssh"}
}
