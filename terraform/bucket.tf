# The run store: one bucket whose runs/ prefix holds every run (the queue,
# leases, results, logs) and whose cas/ prefix holds shared inputs by hash.

resource "aws_s3_bucket" "store" {
  bucket        = var.bucket_name
  bucket_prefix = var.bucket_name == null ? "burst-" : null
  force_destroy = var.force_destroy
  tags          = local.tags
}

resource "aws_s3_bucket_public_access_block" "store" {
  bucket = aws_s3_bucket.store.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# ACLs off: every object belongs to the account, whoever wrote it.
resource "aws_s3_bucket_ownership_controls" "store" {
  bucket = aws_s3_bucket.store.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

# SSE-S3: encrypted at rest with keys S3 manages. Unlike a KMS key it costs
# nothing per request and needs no kms: permissions on the workers or the CLI.
resource "aws_s3_bucket_server_side_encryption_configuration" "store" {
  bucket = aws_s3_bucket.store.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_versioning" "store" {
  count  = var.versioning ? 1 : 0
  bucket = aws_s3_bucket.store.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "store" {
  bucket = aws_s3_bucket.store.id

  # Runs are done with long before this; what is left is old results and logs.
  rule {
    id     = "expire-runs"
    status = "Enabled"

    filter {
      prefix = "runs/"
    }

    expiration {
      days = var.run_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_retention_days
    }
  }

  # Shared inputs are kept unless asked: later runs reuse them by hash, and the
  # CLI uploads one again when it is missing.
  dynamic "rule" {
    for_each = var.cas_retention_days == null ? [] : [var.cas_retention_days]

    content {
      id     = "expire-cas"
      status = "Enabled"

      filter {
        prefix = "cas/"
      }

      expiration {
        days = rule.value
      }

      noncurrent_version_expiration {
        noncurrent_days = var.noncurrent_retention_days
      }
    }
  }

  # Uploads that a crashed CLI or worker never finished are billed as storage
  # until they are aborted.
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.store]
}

# Plain HTTP is refused for everyone, whatever their own policy allows.
data "aws_iam_policy_document" "store" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.store.arn,
      "${aws_s3_bucket.store.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "store" {
  bucket = aws_s3_bucket.store.id
  policy = data.aws_iam_policy_document.store.json

  # S3 refuses concurrent changes to one bucket's settings; the public access
  # block also decides which policies the bucket may take.
  depends_on = [aws_s3_bucket_public_access_block.store]
}
