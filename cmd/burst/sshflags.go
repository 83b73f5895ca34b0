package main

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/slicerburst/burst/provision"
)

// sshOptions are the --ssh flags of submit, resume and worker.
type sshOptions struct {
	specs     []string
	hosts     []provision.SSHHost
	keepalive time.Duration
}

func (s *sshOptions) addFlags(f *pflag.FlagSet) {
	f.StringArrayVar(&s.specs, "ssh", nil, "also run workers on `[USER@]HOST[:PORT][/N]` over ssh, N tasks at once (default: its cores); repeatable")
	f.DurationVar(&s.keepalive, "ssh-keepalive", 5*time.Second, "how often the ends of an ssh session's store stream say they are alive; six missed ones end the session")
	_ = f.MarkHidden("ssh-keepalive")
}

// parse checks the --ssh flags; a bad one is a usage error.
func (s *sshOptions) parse() error {
	s.hosts = s.hosts[:0]
	for _, spec := range s.specs {
		h, err := provision.ParseSSHHost(spec)
		if err != nil {
			return usageErrorf("--ssh: %v", err)
		}
		s.hosts = append(s.hosts, h)
	}
	return nil
}

// slots estimates the slots of the hosts, for planning chunks: those given
// with /N, and as many as here for the others.
func (s *sshOptions) slots() int {
	n := 0
	for _, h := range s.hosts {
		if h.Slots > 0 {
			n += h.Slots
		} else {
			n += provision.Cores()
		}
	}
	return n
}
