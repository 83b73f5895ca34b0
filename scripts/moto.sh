#!/usr/bin/env bash
# Installs moto's server, the EC2 API emulator that the fleet tests run
# against, into its own virtualenv (.cache/moto), once per version, and prints
# the path of its moto_server executable.
#
# The version stamp is written last, after the installed package has shown
# its version and its server and EC2 modules import, so an interrupted install
# is redone next time.
set -euo pipefail

version="5.2.5"
# "server" brings the HTTP server (flask); "ec2" the EC2 backend's own needs.
spec="moto[server,ec2]==$version"

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.cache/moto"
bin="$venv/bin/moto_server"
stamp="$venv/.moto.version"
py="${PYTHON:-python3}"

if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null || true)" = "$spec" ]; then
  echo "$bin"
  exit 0
fi

rm -f "$stamp"
if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv" >&2
  mkdir -p "$root/.cache"
  "$py" -m venv "$venv"
fi
echo "installing $spec into $venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$spec" >&2
check="import importlib.metadata as m, moto.server, moto.ec2
assert m.version('moto') == '$version', m.version('moto')"
if [ ! -x "$bin" ] || ! "$venv/bin/python" -c "$check" >&2; then
  echo "moto.sh: the installed moto in $venv is not moto $version with its server" >&2
  exit 1
fi
echo "$spec" >"$stamp"
echo "$bin"
