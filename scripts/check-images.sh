#!/usr/bin/env bash
# Checks the worker image template (images/) without building it and without
# any AWS account: shell syntax and lint of the provisioning scripts, then
# `packer validate`, offline.
#
# Debian's packer (1.6) is installed when missing and this runs as root. Its
# built-in amazon-ebs builder predates the IMDSv2 settings (`metadata_options`
# and `imds_support`), so for the full validation on packer 1.6 those are left
# out of a scratch copy of the template; images/images_test.go checks them. Every other setting, the
# variables and their validation rules, and the provisioners (including that
# their scripts exist) are validated as written.
#
# Exit status: 0 when everything passes, 1 when a check fails, 2 when packer is
# missing and cannot be installed.
set -euo pipefail

cd "$(dirname "$0")/.."
images=images

now() { date +%s.%N; }
started=$(now)
lap=$started
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fs", b - a }'; }
timing() {
	local t
	t=$(now)
	printf '  (%s)\n' "$(elapsed "$lap" "$t")"
	lap=$t
}
say() { printf '%s\n' "$*"; }
fail() { printf 'check-images: FAILED: %s\n' "$*" >&2; exit 1; }

# No update check or usage report from packer, and no instance metadata
# lookups by the AWS SDK inside it.
export CHECKPOINT_DISABLE=1
export AWS_EC2_METADATA_DISABLED=true

apt_install() {
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v packer >/dev/null; then
	if [[ $(id -u) -ne 0 ]]; then
		say "check-images: packer is not installed; as root run: apt-get update && apt-get install -y packer" >&2
		exit 2
	fi
	say "installing Debian's packer"
	apt_install packer || { say "check-images: could not install packer" >&2; exit 2; }
	timing
fi
packer_version=$(packer version | head -n1)
say "using $packer_version"

say "bash -n $images/scripts/*.sh"
for f in "$images"/scripts/*.sh; do
	bash -n "$f" || fail "bash -n $f"
done
timing

if ! command -v shellcheck >/dev/null && [[ $(id -u) -eq 0 ]]; then
	apt_install shellcheck || true
fi
if command -v shellcheck >/dev/null; then
	say "shellcheck $images/scripts/*.sh"
	shellcheck "$images"/scripts/*.sh || fail "shellcheck"
	timing
else
	say "shellcheck not available; skipped"
fi

say "packer validate -syntax-only $images/"
packer validate -syntax-only "$images/" || fail "packer validate -syntax-only"
timing

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# Stand-ins for the inputs a real build needs: a well-formed checksum, and a
# file where the burst binary would be.
dummy_sha=$(printf '0%.0s' {1..64})
burst_binary=$PWD/bin/burst-linux-amd64
if [[ ! -f $burst_binary ]]; then
	burst_binary=$scratch/burst-linux-amd64
	: >"$burst_binary"
fi

template=$images
if [[ $packer_version =~ ^Packer\ v1\.[0-6]\. ]]; then
	template=$scratch/images
	mkdir -p "$template"
	cp -R "$images/scripts" "$template/"
	for f in "$images"/*.pkr.hcl; do
		# Drop `imds_support` and each `metadata_options { ... }` block.
		awk '
			skip == 0 && /^[[:space:]]*imds_support[[:space:]]*=/ { next }
			skip == 0 && /^[[:space:]]*metadata_options[[:space:]]*\{/ { skip = 1; depth = 0 }
			skip == 1 {
				depth += gsub(/\{/, "{") - gsub(/\}/, "}")
				if (depth <= 0) skip = 0
				next
			}
			{ print }
		' "$f" >"$template/$(basename "$f")"
	done
	say "packer validate (a copy without the IMDSv2 settings, which packer 1.6 does not know)"
else
	say "packer validate $images/"
fi
packer validate -var "slicer_sha256=$dummy_sha" -var "burst_binary=$burst_binary" "$template/" ||
	fail "packer validate"
timing

say "packer validate rejects a malformed slicer_sha256 and a missing one"
if packer validate -var "slicer_sha256=not-a-checksum" -var "burst_binary=$burst_binary" "$template/" >/dev/null 2>&1; then
	fail "packer validate accepted slicer_sha256=not-a-checksum"
fi
if packer validate -var "burst_binary=$burst_binary" "$template/" >/dev/null 2>&1; then
	fail "packer validate accepted a build without slicer_sha256"
fi
timing

printf 'check-images: ok (%s)\n' "$(elapsed "$started" "$(now)")"
