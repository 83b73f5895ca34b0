package provision

import (
	"os"
	"os/user"
)

// Owner names who launched a fleet, for its burst:owner tag.
func Owner() string {
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		name += "@" + h
	}
	return name
}
