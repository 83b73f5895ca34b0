#!/usr/bin/env bash
# Installs the Terraform CLI that checks the account setup in terraform/, built
# from source with `go install` into .cache/bin, and prints the binary's path.
# Safe to run again: when that exact version is already there it returns at
# once. Only `terraform fmt` and parsing work offline; `terraform init` needs
# the AWS provider from the Terraform registry, which a user's machine reaches
# and this project's test machines do not.
set -euo pipefail

TERRAFORM_MODULE="github.com/hashicorp/terraform"
TERRAFORM_VERSION="v1.5.7"

root="$(cd "$(dirname "$0")/.." && pwd)"
go="${GO:-go}"
bindir="$root/.cache/bin"
bin="$bindir/terraform"
stamp="$bindir/terraform.version"

if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null || true)" = "$TERRAFORM_VERSION" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$bindir"
# Build into a scratch folder beside the final one, then move the binary into
# place, so an interrupted build never leaves a half-written terraform behind.
tmp="$(mktemp -d "$bindir/.terraform-build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "building Terraform $TERRAFORM_VERSION (takes a few minutes, once)" >&2
start=$SECONDS
if ! GOBIN="$tmp" "$go" install "$TERRAFORM_MODULE@$TERRAFORM_VERSION"; then
  echo "terraform.sh: go install $TERRAFORM_MODULE@$TERRAFORM_VERSION failed" >&2
  exit 1
fi
# Without TF_CLI_CONFIG_FILE, so that one naming a missing file does not add a
# warning: `version` reads no CLI configuration.
if ! env -u TF_CLI_CONFIG_FILE "$tmp/terraform" version >/dev/null; then
  echo "terraform.sh: the built $tmp/terraform does not run" >&2
  exit 1
fi

rm -f "$stamp"
mv -f "$tmp/terraform" "$bin"
echo "$TERRAFORM_VERSION" >"$stamp"
echo "built Terraform $TERRAFORM_VERSION in $((SECONDS - start))s" >&2
echo "$bin"
