variable "region" {
  description = "AWS region for the bucket and the workers. null: the region of the current AWS profile or AWS_REGION."
  type        = string
  default     = null
}

variable "name_prefix" {
  description = "Prefix of the IAM role, instance profile, policy and security group names."
  type        = string
  default     = "burst"
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,32}$", var.name_prefix))
    error_message = "name_prefix must be 1-32 characters valid in IAM names (letters, digits, +=,.@_-)."
  }
}

variable "bucket_name" {
  description = "Exact name of the run store bucket. null: a unique name starting with \"burst-\"."
  type        = string
  default     = null
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the bucket while it still holds runs and shared inputs."
  type        = bool
  default     = false
  nullable    = false
}

variable "versioning" {
  description = "Keep old versions of overwritten and deleted objects. Off by default: burst writes results once and old leases are worthless."
  type        = bool
  default     = false
  nullable    = false
}

variable "run_retention_days" {
  description = "Days after which objects under runs/ (manifests, inputs, results, logs) expire."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = var.run_retention_days >= 1 && floor(var.run_retention_days) == var.run_retention_days
    error_message = "run_retention_days must be a whole number of days, at least 1."
  }
}

variable "cas_retention_days" {
  description = "Days after which shared inputs under cas/ expire. null (the default): they are kept."
  type        = number
  default     = null

  validation {
    condition     = var.cas_retention_days == null ? true : var.cas_retention_days >= 1 && floor(var.cas_retention_days) == var.cas_retention_days
    error_message = "cas_retention_days must be null or a whole number of days, at least 1."
  }
}

variable "noncurrent_retention_days" {
  description = "With versioning on: days after which old versions under runs/ and cas/ are deleted."
  type        = number
  default     = 7
  nullable    = false
}

variable "vpc_id" {
  description = "VPC of the workers' security group. null or empty: the region's default VPC."
  type        = string
  default     = null
}

variable "subnet_ids" {
  description = "Subnets that workers launch into. Empty: every subnet of the VPC. They need a route to S3 (public IPs, a NAT gateway or an S3 gateway endpoint)."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "tags" {
  description = "Tags added to every resource that takes tags, beside burst:managed = true."
  type        = map(string)
  default     = {}
  nullable    = false
}
