#!/usr/bin/env bash
# Installs the Terraform CLI that checks the account setup in terraform/, built
# from source into .cache/bin (see go-tool.sh), and prints the binary's path.
# Only `terraform fmt` and parsing work offline; `terraform init` needs the AWS
# provider from the Terraform registry, which a user's machine reaches and this
# project's test machines do not.
set -euo pipefail
# `version` reads no CLI configuration: a TF_CLI_CONFIG_FILE naming a missing
# file would only add a warning.
unset TF_CLI_CONFIG_FILE
exec "$(dirname "$0")/go-tool.sh" terraform github.com/hashicorp/terraform v1.5.7 version
