package fleetsim

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// shutdownRequest is what one call of the instance's `shutdown` asks for.
type shutdownRequest struct {
	// Cancel is `shutdown -c`: drop the scheduled shutdown.
	Cancel bool
	// Minutes until the shutdown: 0 is now.
	Minutes int
	// WallOnly is `shutdown -k`: send the message, do not shut down.
	WallOnly bool
}

// maxMinutes bounds a shutdown delay (about a year), so that no delay
// overflows a time.Duration whatever a minute is scaled to.
const maxMinutes = 525600

// parseShutdown reads the arguments of systemd's shutdown(8): options, then
// an optional time ("now", "+M", or a bare number of minutes as sysvinit
// took it; none means +1, as with systemd), then a wall message, which is
// ignored. Halting and powering off are the same on EC2: the instance stops
// and, with shutdown behaviour terminate, is terminated. Reboot and
// wall-clock times (hh:mm) are refused: nothing burst launches uses them.
func parseShutdown(args []string) (shutdownRequest, error) {
	var req shutdownRequest
	var positional []string
	for i, a := range args {
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, args[i:]...)
			break
		}
		if strings.HasPrefix(a, "--") {
			switch a {
			case "--halt", "--poweroff", "--no-wall":
			case "--reboot":
				return req, errors.New("reboot is not supported")
			case "--help":
				return req, errors.New("usage: shutdown [-h|-P|-H] [-c] [-k] [now|+MINUTES] [WALL...]")
			default:
				return req, fmt.Errorf("unknown option %q", a)
			}
			continue
		}
		for _, f := range a[1:] {
			switch f {
			case 'h', 'H', 'P':
			case 'c':
				req.Cancel = true
			case 'k':
				req.WallOnly = true
			case 'r':
				return req, errors.New("reboot is not supported")
			default:
				return req, fmt.Errorf("unknown option -%c", f)
			}
		}
	}
	if req.Cancel {
		// Everything after -c is a wall message.
		return req, nil
	}
	req.Minutes = 1
	if len(positional) > 0 {
		m, err := parseShutdownTime(positional[0])
		if err != nil {
			return req, err
		}
		req.Minutes = m
	}
	return req, nil
}

func parseShutdownTime(s string) (int, error) {
	if s == "now" {
		return 0, nil
	}
	digits := strings.TrimPrefix(s, "+")
	if digits == "" || strings.ContainsFunc(digits, func(r rune) bool { return r < '0' || r > '9' }) {
		if strings.Contains(s, ":") {
			return 0, fmt.Errorf("time %q: wall-clock times are not supported, use +MINUTES", s)
		}
		return 0, fmt.Errorf("time %q: want now, +MINUTES or MINUTES", s)
	}
	m, err := strconv.Atoi(digits)
	if err != nil || m > maxMinutes {
		return 0, fmt.Errorf("time %q: more than %d minutes", s, maxMinutes)
	}
	return m, nil
}

// shutdownScript is the instance's /sbin/shutdown: it hands its arguments,
// one a line, to the harness over plain HTTP with bash's /dev/tcp (no curl
// needed), prints the answer and exits 0 if the harness accepted the
// request, 1 if not. %d is the harness's port on 127.0.0.1.
const shutdownScript = `#!/bin/bash
# shutdown(8) of a simulated EC2 instance: the request goes to the harness
# that runs this instance, which stops it as EC2 would.
export LC_ALL=C
body=""
for a in "$@"; do body+="$a"$'\n'; done
if ! exec 3<>/dev/tcp/127.0.0.1/%d; then
	echo "shutdown: cannot reach the instance's host" >&2
	exit 1
fi
printf 'POST /_fleetsim/shutdown HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: %%d\r\n\r\n%%s' "${#body}" "$body" >&3
IFS=' ' read -r _ status _ <&3
while IFS= read -r line <&3; do [ "${line%%$'\r'}" = "" ] && break; done
msg="$(cat <&3)"
exec 3<&-
if [ "$status" = 200 ]; then
	[ -z "$msg" ] || echo "$msg"
	exit 0
fi
echo "shutdown: ${msg:-HTTP $status}" >&2
exit 1
`
