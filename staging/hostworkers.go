package staging

import "time"

// HostWorkers sums the live workers of one host.
type HostWorkers struct {
	Host                    string
	Workers, Slots, Running int
	LastSeen                time.Time
}

// HostsOf groups the live workers by host, in order of appearance.
func HostsOf(beats []Heartbeat, now time.Time) []HostWorkers {
	var out []HostWorkers
	at := map[string]int{}
	for _, hb := range beats {
		if !hb.Live(now) {
			continue
		}
		i, ok := at[hb.Host]
		if !ok {
			i = len(out)
			at[hb.Host] = i
			out = append(out, HostWorkers{Host: hb.Host})
		}
		h := &out[i]
		h.Workers++
		h.Slots += hb.Slots
		h.Running += len(hb.Running)
		seen := hb.Written // on the store's clock, as now
		if seen.IsZero() {
			seen = hb.LastSeen
		}
		if seen.After(h.LastSeen) {
			h.LastSeen = seen
		}
	}
	return out
}
