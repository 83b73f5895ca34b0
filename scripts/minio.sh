#!/usr/bin/env bash
# Installs the MinIO server that the tests run as their S3 endpoint, built from
# source with `go install` into .cache/bin, and prints the binary's path.
# Safe to run again: when that exact version is already there it returns at
# once. The version is the MinIO module's final commit (the repository is
# archived; its last release tag, RELEASE.2025-10-15T17-29-55Z, is not served
# by the module proxy that this project uses).
set -euo pipefail

MINIO_MODULE="github.com/minio/minio"
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"

root="$(cd "$(dirname "$0")/.." && pwd)"
go="${GO:-go}"
bindir="$root/.cache/bin"
bin="$bindir/minio"
stamp="$bindir/minio.version"

if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null || true)" = "$MINIO_VERSION" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$bindir"
# Build into a scratch folder beside the final one, then move the binary into
# place, so an interrupted build never leaves a half-written minio behind.
tmp="$(mktemp -d "$bindir/.minio-build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "building MinIO $MINIO_VERSION (takes a few minutes, once)" >&2
start=$SECONDS
if ! GOBIN="$tmp" "$go" install "$MINIO_MODULE@$MINIO_VERSION"; then
  echo "minio.sh: go install $MINIO_MODULE@$MINIO_VERSION failed" >&2
  exit 1
fi
if ! "$tmp/minio" --version >/dev/null; then
  echo "minio.sh: the built $tmp/minio does not run" >&2
  exit 1
fi

rm -f "$stamp"
mv -f "$tmp/minio" "$bin"
echo "$MINIO_VERSION" >"$stamp"
echo "built MinIO $MINIO_VERSION in $((SECONDS - start))s" >&2
echo "$bin"
