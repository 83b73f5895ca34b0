# The identity of the worker instances. A worker only moves objects in the
# run store: it claims chunks with conditional writes, reads inputs, writes
# results, logs and heartbeats, and deletes its leases. It ends its own
# instance with `shutdown -h` (the launch sets shutdown behaviour to
# terminate), and it learns of spot interruptions from the instance metadata
# service, so it needs no EC2 permissions at all.

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
    sid     = "RunStoreObjects"
    effect  = "Allow"
    actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = [
      "${aws_s3_bucket.store.arn}/runs/*",
      "${aws_s3_bucket.store.arn}/cas/*",
    ]
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
