# The policy for the people (or CI jobs) who run the burst CLI against this
# account: attach it to their IAM user, group or role. It names every action
# the CLI calls and nothing else. Everything a run launches carries the tag
# burst:run (instances, volumes, fleets, launch templates), so what the CLI may
# end is limited to what burst made.

locals {
  ec2_arn = "arn:${local.partition}:ec2:${local.region}:${local.account}"
}

data "aws_iam_policy_document" "cli" {
  # Read-only lookups, which EC2 does not scope to resources:
  #   DescribeInstanceTypes, DescribeSpotPriceHistory: the planner's catalog of
  #     cores, memory and spot prices;
  #   DescribeImages: the Slicer AMI lookup;
  #   DescribeSubnets, DescribeSecurityGroups: checking the configured network;
  #   DescribeInstances: status, `burst down` and `burst gc` find instances by
  #     their burst:run tag;
  #   DescribeLaunchTemplates: finding a run's launch template to delete it.
  # DescribeAccountAttributes is left out: capacity and quota limits come back
  # as CreateFleet errors, which the CLI reports and falls back on.
  statement {
    sid    = "Discover"
    effect = "Allow"
    actions = [
      "ec2:DescribeImages",
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeInstances",
      "ec2:DescribeLaunchTemplates",
      "ec2:DescribeSecurityGroups",
      "ec2:DescribeSpotPriceHistory",
      "ec2:DescribeSubnets",
    ]
    resources = ["*"]
  }

  # The planner's on-demand prices: the public AWS Price List, which IAM
  # does not scope to resources.
  statement {
    sid       = "PriceList"
    effect    = "Allow"
    actions   = ["pricing:GetProducts"]
    resources = ["*"]
  }

  # One launch template per run, created with the burst:run tag.
  statement {
    sid       = "CreateRunLaunchTemplate"
    effect    = "Allow"
    actions   = ["ec2:CreateLaunchTemplate"]
    resources = ["${local.ec2_arn}:launch-template/*"]

    condition {
      test     = "Null"
      variable = "aws:RequestTag/burst:run"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DeleteRunLaunchTemplate"
    effect    = "Allow"
    actions   = ["ec2:DeleteLaunchTemplate"]
    resources = ["${local.ec2_arn}:launch-template/*"]

    condition {
      test     = "Null"
      variable = "aws:ResourceTag/burst:run"
      values   = ["false"]
    }
  }

  # Launching: an instant EC2 Fleet (spot, price-capacity-optimized, over
  # several types), or RunInstances for the on-demand fallback. The instances
  # and the fleet must be tagged with burst:run in the request itself.
  statement {
    sid     = "LaunchTaggedInstances"
    effect  = "Allow"
    actions = ["ec2:CreateFleet", "ec2:RunInstances"]
    resources = [
      "${local.ec2_arn}:instance/*",
      "${local.ec2_arn}:fleet/*",
    ]

    condition {
      test     = "Null"
      variable = "aws:RequestTag/burst:run"
      values   = ["false"]
    }
  }

  # The other resources a launch touches. The only security group a worker
  # may get is the one this module made, which lets nothing in.
  statement {
    sid     = "LaunchWithWorkerResources"
    effect  = "Allow"
    actions = ["ec2:CreateFleet", "ec2:RunInstances"]
    resources = [
      aws_security_group.worker.arn,
      "${local.ec2_arn}:subnet/*",
      "${local.ec2_arn}:network-interface/*",
      "${local.ec2_arn}:volume/*",
      "${local.ec2_arn}:launch-template/*",
      "${local.ec2_arn}:spot-instances-request/*",
      "arn:${local.partition}:ec2:${local.region}::image/*",
      "arn:${local.partition}:ec2:${local.region}::snapshot/*",
    ]
  }

  # Tags only as part of creating something, never on what exists already.
  statement {
    sid       = "TagOnCreate"
    effect    = "Allow"
    actions   = ["ec2:CreateTags"]
    resources = ["${local.ec2_arn}:*/*"]

    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["CreateFleet", "CreateLaunchTemplate", "RunInstances"]
    }
  }

  # `burst down` and `burst gc` end only instances that a run launched.
  statement {
    sid       = "TerminateRunInstances"
    effect    = "Allow"
    actions   = ["ec2:TerminateInstances"]
    resources = ["${local.ec2_arn}:instance/*"]

    condition {
      test     = "Null"
      variable = "aws:ResourceTag/burst:run"
      values   = ["false"]
    }
  }

  # Launches hand the workers their instance profile, and only that one.
  statement {
    sid       = "PassWorkerRole"
    effect    = "Allow"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.worker.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ec2.amazonaws.com"]
    }
  }

  # The first spot launch in an account creates EC2's spot service-linked
  # role; an instant fleet needs no other.
  statement {
    sid       = "SpotServiceLinkedRole"
    effect    = "Allow"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["arn:${local.partition}:iam::${local.account}:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot"]

    condition {
      test     = "StringEquals"
      variable = "iam:AWSServiceName"
      values   = ["spot.amazonaws.com"]
    }
  }

  # Staging a run (script, inputs, manifest), shared files by hash, watching
  # progress, collecting results, cancelling, and deleting old runs.
  statement {
    sid     = "RunStoreObjects"
    effect  = "Allow"
    actions = ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    resources = [
      "${aws_s3_bucket.store.arn}/runs/*",
      "${aws_s3_bucket.store.arn}/cas/*",
    ]
  }

  # Listing runs and their tasks. Not narrowed by prefix, unlike the workers':
  # the CLI also checks that the bucket exists (HeadBucket), which carries no
  # prefix.
  statement {
    sid       = "RunStoreList"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.store.arn]
  }
}

resource "aws_iam_policy" "cli" {
  name        = "${var.name_prefix}-cli"
  description = "What the burst CLI needs: plan, launch, watch and end runs on EC2 with the run store in S3"
  policy      = data.aws_iam_policy_document.cli.json
  tags        = local.tags
}
