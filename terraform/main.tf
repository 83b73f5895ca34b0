# burst's one-time account setup: the run store bucket, the workers' instance
# role and profile, their security group, and the IAM policy for the people who
# run the burst CLI. Each piece lives in a file of its own: bucket.tf,
# worker.tf, network.tf, cli.tf.

data "aws_region" "current" {}

data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

locals {
  # Every resource that takes tags gets these; burst:managed marks what this
  # module made, apart from the burst:run tags on what a run launches.
  tags = merge(var.tags, { "burst:managed" = "true" })

  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.name
  account   = data.aws_caller_identity.current.account_id

  # The two prefixes of the bucket that burst reads and writes: one folder per
  # run, and the shared inputs stored once by content hash.
  store_prefixes = ["runs/", "cas/"]
}
