# The identity of the worker instances. A worker reads a run (manifest,
# script, inputs, shared files) and writes only what workers write: leases,
# results, statuses, logs and heartbeats. It can never rewrite a run's
# manifest, script, inputs, fleet record or control flags, nor anything in
# cas/, so an instance cannot plant code that the laptop later runs. It
# ends its own instance with `shutdown -h` (the launch sets shutdown
# behaviour to terminate), and it learns of spot interruptions from the
# instance metadata service, so it needs no EC2 permissions at all.
#
# Scoping each instance to its own run is not possible with an instance
# profile: its role session carries no tag of the instance's.


data "aws_iam_policy_document" "worker_assume" {
  statement {
    sid     = "EC2AssumesWorkerRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "worker" {
  name               = "${var.name_prefix}-worker"
  description        = "burst workers: read and write the run store, nothing else"
  assume_role_policy = data.aws_iam_policy_document.worker_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "worker" {
  # GetObject also covers HeadObject; PutObject covers conditional writes
  # (If-None-Match, If-Match) and multipart uploads. Incomplete uploads are
  # left to the bucket's lifecycle rule rather than s3:AbortMultipartUpload.
  statement {
    sid     = "RunStoreRead"
    effect  = "Allow"
    actions = ["s3:GetObject"]
    resources = [
      "${aws_s3_bucket.store.arn}/runs/*",
      "${aws_s3_bucket.store.arn}/cas/*",
    ]
  }

  # The folders of a run that workers write, under runs/<run>/: a change
  # of the run layout changes this list (and the checks in
  # checks_test.go). In S3 ARNs * also matches "/", so runs/*/leases/*
  # matches a "leases" folder anywhere below runs/: no key that burst
  # reads as a run's code or inputs has such a folder (run and task ids,
  # and the script's name, hold no "/").
  statement {
    sid     = "RunStoreWorkerWrites"
    effect  = "Allow"
    actions = ["s3:PutObject"]
    resources = [
      "${aws_s3_bucket.store.arn}/runs/*/leases/*",
      "${aws_s3_bucket.store.arn}/runs/*/results/*",
      "${aws_s3_bucket.store.arn}/runs/*/status/*",
      "${aws_s3_bucket.store.arn}/runs/*/logs/*",
      "${aws_s3_bucket.store.arn}/runs/*/workers/*",
    ]
  }

  # A worker gives a chunk back by deleting its lease.
  statement {
    sid       = "RunStoreLeaseRelease"
    effect    = "Allow"
    actions   = ["s3:DeleteObject"]
    resources = ["${aws_s3_bucket.store.arn}/runs/*/leases/*"]
  }

  # Listing finds claimable chunks, expired leases and finished tasks, only
  # under the two prefixes.
  statement {
    sid       = "RunStoreList"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.store.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["runs/", "runs/*", "cas/", "cas/*"]
    }
  }
}

resource "aws_iam_role_policy" "worker" {
  name   = "${var.name_prefix}-run-store"
  role   = aws_iam_role.worker.id
  policy = data.aws_iam_policy_document.worker.json
}

resource "aws_iam_instance_profile" "worker" {
  name = "${var.name_prefix}-worker"
  role = aws_iam_role.worker.name
  tags = local.tags
}
