#!/usr/bin/env bash
# Installs Debian's OpenSSH server, which the ssh tests start on 127.0.0.1
# (never as a service: each test runs its own sshd on a free port with a
# generated host key and configuration), and prints the path of sshd.
#
# Exit status: 0 when sshd is there, 2 when it is missing and cannot be
# installed (not root, or no package).
set -euo pipefail

find_sshd() {
	for p in /usr/sbin/sshd "$(command -v sshd 2>/dev/null || true)"; do
		if [ -n "$p" ] && [ -x "$p" ]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

if sshd=$(find_sshd) && command -v ssh >/dev/null && command -v ssh-keygen >/dev/null; then
	echo "$sshd"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "sshd.sh: OpenSSH's server is not installed; as root run: apt-get update && apt-get install -y openssh-server openssh-client" >&2
	exit 2
fi
echo "installing Debian's openssh-server" >&2
# The package must not start a system-wide sshd: policy-rc.d says no to
# every service start while it installs, unless one is already in place.
policy=/usr/sbin/policy-rc.d
own_policy=
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod +x "$policy"
	own_policy=1
fi
cleanup() { if [ -n "$own_policy" ]; then rm -f "$policy"; fi; }
trap cleanup EXIT
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null ||
	{ echo "sshd.sh: could not install openssh-server" >&2; exit 2; }
find_sshd || { echo "sshd.sh: openssh-server installed, but no sshd found" >&2; exit 2; }
