package staging_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/slicerburst/burst/staging"
)

// Live workers are summed by host in the order the hosts first appear;
// exited and silent workers do not count.
func TestHostsOf(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	beat := func(host string, slots int, running []string, ago time.Duration, state string) staging.Heartbeat {
		return staging.Heartbeat{Host: host, Slots: slots, Running: running, LastSeen: now.Add(-ago), HeartbeatS: 2, State: state}
	}
	got := staging.HostsOf([]staging.Heartbeat{
		beat("lab2", 4, []string{"a"}, time.Second, "running"),
		beat("lab1", 2, nil, 3*time.Second, "running"),
		beat("lab2", 4, []string{"b", "c"}, 2*time.Second, "running"),
		beat("lab2", 8, nil, time.Second, "exited"),
		beat("lab3", 8, nil, time.Minute, "running"),
	}, now)
	want := []staging.HostWorkers{
		{Host: "lab2", Workers: 2, Slots: 8, Running: 3, LastSeen: now.Add(-time.Second)},
		{Host: "lab1", Workers: 1, Slots: 2, Running: 0, LastSeen: now.Add(-3 * time.Second)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("HostsOf = %+v\nwant %+v", got, want)
	}
	if got := staging.HostsOf(nil, now); len(got) != 0 {
		t.Errorf("HostsOf(nil) = %+v", got)
	}
}
