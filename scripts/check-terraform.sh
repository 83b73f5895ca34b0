#!/usr/bin/env bash
# Checks that the account setup in terraform/ is in canonical format: installs
# Terraform with scripts/terraform.sh (once) and runs `terraform fmt` in check
# mode over the folder, printing the diff and exiting non-zero when a file
# needs formatting. Parsing every file is part of that check.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
terraform="$("$root/scripts/terraform.sh")"

# fmt reads no CLI configuration; a TF_CLI_CONFIG_FILE that names a missing
# file would only add a warning to the output.
if [ -n "${TF_CLI_CONFIG_FILE:-}" ] && [ ! -e "$TF_CLI_CONFIG_FILE" ]; then
  unset TF_CLI_CONFIG_FILE
fi

color=()
if [ ! -t 2 ]; then
  color=(-no-color)
fi

cd "$root"
if ! "$terraform" fmt "${color[@]}" -check -recursive -diff terraform/; then
  echo "check-terraform.sh: terraform/ does not parse or is not formatted; see above, and $terraform fmt -recursive terraform/ formats it" >&2
  exit 1
fi
echo "terraform/: formatted"
