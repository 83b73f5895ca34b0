package executor

import (
	"testing"
	"time"
)

func TestParseInstanceAction(t *testing.T) {
	cases := []struct {
		body, action string
		at           time.Time
		bad          bool
	}{
		{`{"action": "terminate", "time": "2017-09-18T08:22:00Z"}`, "terminate", time.Date(2017, 9, 18, 8, 22, 0, 0, time.UTC), false},
		{`{"action":"stop","time":"2026-11-26T09:30:00+01:00"}`, "stop", time.Date(2026, 11, 26, 8, 30, 0, 0, time.UTC), false},
		{`{"action":"hibernate","time":"2026-11-26T09:30:00Z"}`, "hibernate", time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC), false},
		{`{"action":"explode","time":"2026-11-26T09:30:00Z"}`, "", time.Time{}, true},
		{`{"action":"terminate","time":"soon"}`, "terminate", time.Time{}, true},
		{`not json`, "", time.Time{}, true},
		{``, "", time.Time{}, true},
	}
	for _, c := range cases {
		n, err := parseInstanceAction([]byte(c.body))
		if (err != nil) != c.bad {
			t.Errorf("%q: error %v, want error: %v", c.body, err, c.bad)
		}
		// Whatever the body, a notice at this path is an interruption.
		if n.Kind != SpotInterruption || n.Action != c.action || !n.Time.Equal(c.at) {
			t.Errorf("%q: %+v, want a spot interruption %q at %s", c.body, n, c.action, c.at)
		}
	}
}

func TestParseRebalance(t *testing.T) {
	n, err := parseRebalance([]byte(`{"noticeTime": "2020-11-05T08:22:00Z"}`))
	if err != nil || n.Kind != Rebalance || !n.Time.Equal(time.Date(2020, 11, 5, 8, 22, 0, 0, time.UTC)) {
		t.Errorf("rebalance: %+v, %v", n, err)
	}
	for _, body := range []string{`{}`, `{"noticeTime": 5}`, `[`} {
		if n, err := parseRebalance([]byte(body)); err == nil || n.Kind != Rebalance {
			t.Errorf("%q: %+v, %v; want a rebalance notice and an error", body, n, err)
		}
	}
}

// FuzzNotices: the notice bodies come from outside; any body gives a
// notice of the path's kind, and an error or a well-formed one.
func FuzzNotices(f *testing.F) {
	for _, s := range []string{
		`{"action": "terminate", "time": "2017-09-18T08:22:00Z"}`,
		`{"action":"STOP","time":"2026-11-26T09:30:00.5+01:00"}`,
		`{"noticeTime": "2020-11-05T08:22:00Z"}`,
		`{"action": null, "time": []}`,
		"\x00\xff", ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := parseInstanceAction(body)
		if n.Kind != SpotInterruption {
			t.Fatalf("kind %v", n.Kind)
		}
		if err == nil && (n.Action == "" || n.Time.IsZero() || n.Time.Location() != time.UTC) {
			t.Fatalf("no error, but %+v", n)
		}
		r, err := parseRebalance(body)
		if r.Kind != Rebalance || r.Action != "" {
			t.Fatalf("rebalance %+v", r)
		}
		if err == nil && r.Time.IsZero() {
			t.Fatalf("no error, but %+v", r)
		}
	})
}
