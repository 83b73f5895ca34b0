#!/usr/bin/env bash
# Installs the MinIO server that the tests run as their S3 endpoint, built from
# source into .cache/bin (see go-tool.sh), and prints the binary's path. The
# version is the MinIO module's final commit: the repository is archived, and
# its last release tag, RELEASE.2025-10-15T17-29-55Z, is not served by the
# module proxy that this project uses.
set -euo pipefail
exec "$(dirname "$0")/go-tool.sh" minio github.com/minio/minio v0.0.0-20260212201848-7aac2a2c5b7c --version
