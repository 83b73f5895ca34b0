package fleetsim

import (
	"strings"
	"testing"
)

func TestParseShutdown(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want shutdownRequest
		err  string
	}{
		{[]string{"-h", "now"}, shutdownRequest{Minutes: 0}, ""},
		{[]string{"-P", "now"}, shutdownRequest{Minutes: 0}, ""},
		{[]string{"-h", "0"}, shutdownRequest{Minutes: 0}, ""},
		{[]string{"now"}, shutdownRequest{Minutes: 0}, ""},
		{[]string{"--poweroff", "--no-wall", "+0"}, shutdownRequest{Minutes: 0}, ""},
		{[]string{"-h", "+15"}, shutdownRequest{Minutes: 15}, ""},
		{[]string{"-h", "+15", "run", "deadline"}, shutdownRequest{Minutes: 15}, ""},
		{[]string{"-h", "--", "+2"}, shutdownRequest{Minutes: 2}, ""},
		{[]string{"-hP", "7"}, shutdownRequest{Minutes: 7}, ""},
		{nil, shutdownRequest{Minutes: 1}, ""},
		{[]string{"-h"}, shutdownRequest{Minutes: 1}, ""},
		{[]string{"-c"}, shutdownRequest{Cancel: true}, ""},
		{[]string{"-c", "never mind"}, shutdownRequest{Cancel: true}, ""},
		{[]string{"-k", "+5"}, shutdownRequest{WallOnly: true, Minutes: 5}, ""},
		{[]string{"-r", "now"}, shutdownRequest{}, "reboot"},
		{[]string{"--reboot"}, shutdownRequest{}, "reboot"},
		{[]string{"-h", "12:30"}, shutdownRequest{}, "wall-clock"},
		{[]string{"-h", "soon"}, shutdownRequest{}, "want now"},
		{[]string{"-h", "+"}, shutdownRequest{}, "want now"},
		{[]string{"-h", "+-3"}, shutdownRequest{}, "want now"},
		{[]string{"-h", "+99999999999999999999"}, shutdownRequest{}, "more than"},
		{[]string{"-x"}, shutdownRequest{}, "unknown option"},
		{[]string{"--frobnicate"}, shutdownRequest{}, "unknown option"},
	} {
		got, err := parseShutdown(tc.args)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseShutdown(%q) = %+v, %v; want error with %q", tc.args, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseShutdown(%q) = %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
}

// FuzzParseShutdown: the harness parses what an instance's user data passes
// to shutdown; no input may panic it or yield a negative or huge delay.
func FuzzParseShutdown(f *testing.F) {
	for _, s := range []string{"-h\nnow", "-h\n+5", "-c", "", "-r\nnow", "-hP\n12:30", "--\n+3\nmsg", "-k\n-h\n+1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var args []string
		if s != "" {
			args = strings.Split(s, "\n")
		}
		req, err := parseShutdown(args)
		if err != nil {
			return
		}
		if req.Minutes < 0 || req.Minutes > maxMinutes {
			t.Errorf("parseShutdown(%q) minutes %d", args, req.Minutes)
		}
	})
}
