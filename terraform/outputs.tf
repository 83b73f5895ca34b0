# These names are read by `burst init --terraform DIR` (through
# `terraform output -json`); keep them stable. The ones marked "config:" become
# keys of the burst config file.

output "region" {
  description = "config: region. Region of the bucket and the workers."
  value       = local.region
}

output "bucket" {
  description = "config: store (as s3://BUCKET). Name of the run store bucket."
  value       = aws_s3_bucket.store.id
}

output "instance_profile" {
  description = "config: instance_profile. Name of the workers' instance profile."
  value       = aws_iam_instance_profile.worker.name
}

output "instance_profile_arn" {
  description = "ARN of the workers' instance profile."
  value       = aws_iam_instance_profile.worker.arn
}

output "worker_role_arn" {
  description = "ARN of the workers' IAM role, the only role the CLI policy may pass."
  value       = aws_iam_role.worker.arn
}

output "security_group_id" {
  description = "config: security_groups (a list of one). The workers' security group: no inbound, HTTPS out."
  value       = aws_security_group.worker.id
}

output "subnet_ids" {
  description = "config: subnets. Subnets that workers launch into."
  value       = local.subnet_ids
}

output "cli_policy_arn" {
  description = "ARN of the IAM policy to attach to the users or roles that run the burst CLI."
  value       = aws_iam_policy.cli.arn
}
