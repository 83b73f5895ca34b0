# Where workers run. Nothing ever connects to a worker: it pulls its work from
# the bucket. The security group therefore has no inbound rule at all, and lets
# out only HTTPS, which is all that S3 needs. DNS through the VPC resolver, the
# instance metadata service and the Amazon time service are reached without a
# security group rule.

data "aws_vpc" "default" {
  count   = local.use_default_vpc ? 1 : 0
  default = true
}

locals {
  use_default_vpc = var.vpc_id == null || var.vpc_id == ""
  vpc_id          = local.use_default_vpc ? one(data.aws_vpc.default[*].id) : var.vpc_id
}

data "aws_subnets" "vpc" {
  count = length(var.subnet_ids) == 0 ? 1 : 0

  filter {
    name   = "vpc-id"
    values = [local.vpc_id]
  }
}

locals {
  subnet_ids = length(var.subnet_ids) > 0 ? var.subnet_ids : sort(one(data.aws_subnets.vpc[*].ids))
}

resource "aws_security_group" "worker" {
  name        = "${var.name_prefix}-worker"
  description = "burst workers: no inbound, HTTPS out"
  vpc_id      = local.vpc_id
  tags        = local.tags

  # The rules are resources of their own below. With no egress block here the
  # provider removes the allow-all egress rule that AWS adds to a new group.
}

resource "aws_vpc_security_group_egress_rule" "worker_https_ipv4" {
  security_group_id = aws_security_group.worker.id
  description       = "HTTPS to S3 over IPv4"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "worker_https_ipv6" {
  security_group_id = aws_security_group.worker.id
  description       = "HTTPS to S3 over IPv6"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv6         = "::/0"
  tags              = local.tags
}
