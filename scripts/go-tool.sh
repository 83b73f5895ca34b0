#!/usr/bin/env bash
# Builds a tool from its Go module with `go install` into .cache/bin, once per
# version, and prints the binary's path:
#
#   scripts/go-tool.sh NAME MODULE VERSION [CHECK-ARGS...]
#
# The binary is built in a scratch folder and checked by running it with
# CHECK-ARGS (default --version) before it is moved into place, and the
# version stamp is written last, so an interrupted build is redone next time.
set -euo pipefail

name="$1" module="$2" version="$3"
shift 3
check=("$@")
[ ${#check[@]} -gt 0 ] || check=(--version)

root="$(cd "$(dirname "$0")/.." && pwd)"
go="${GO:-go}"
bindir="$root/.cache/bin"
bin="$bindir/$name"
stamp="$bindir/$name.version"

if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null || true)" = "$version" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$bindir"
tmp="$(mktemp -d "$bindir/.$name-build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "building $name $version (takes a few minutes, once)" >&2
start=$SECONDS
if ! GOBIN="$tmp" "$go" install "$module@$version"; then
  echo "go-tool.sh: go install $module@$version failed" >&2
  exit 1
fi
if ! "$tmp/$name" "${check[@]}" >/dev/null; then
  echo "go-tool.sh: the built $tmp/$name does not run" >&2
  exit 1
fi

rm -f "$stamp"
mv -f "$tmp/$name" "$bin"
echo "$version" >"$stamp"
echo "built $name $version in $((SECONDS - start))s" >&2
echo "$bin"
