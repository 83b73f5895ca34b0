// Inputs of the burst worker image. Only slicer_sha256 has no default:
// the Slicer archive is never installed unverified.
//
// The validation rules use regex_replace rather than regex, which packer 1.6
// does not have.

variable "region" {
  type        = string
  default     = "us-east-1"
  description = "AWS region the image is built and registered in."
}

variable "instance_type" {
  type        = string
  default     = "c6i.large"
  description = "Instance type of the temporary build instance."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet for the build instance; empty uses the default VPC."
}

variable "volume_size" {
  type        = number
  default     = 30
  description = "Root volume size in GiB: the system and Slicer take a few; the rest is scratch space for jobs."
}

variable "kms_key_id" {
  type        = string
  default     = ""
  description = "KMS key for the encrypted root volume; empty uses the account's aws/ebs key."
}

variable "build_timeout_minutes" {
  type        = number
  default     = 90
  description = "The build instance powers itself off (and so terminates) after this long, even if packer is gone."

  validation {
    condition     = var.build_timeout_minutes >= 30
    error_message = "The build_timeout_minutes value must be at least 30: installing Slicer takes 20 minutes or more."
  }
}

variable "slicer_version" {
  type        = string
  default     = "5.8.1"
  description = "3D Slicer release installed in the image; must match the archive behind slicer_url."

  validation {
    condition     = var.slicer_version != "" && regex_replace(var.slicer_version, "^[0-9]+\\.[0-9]+\\.[0-9]+$", "") == ""
    error_message = "The slicer_version value must be a release number such as 5.8.1."
  }
}

variable "slicer_url" {
  type = string
  // The Linux (amd64) archive of Slicer 5.8.1 on Slicer's download server,
  // which serves each package by its id: see https://download.slicer.org.
  default     = "https://download.slicer.org/bitstream/67c51fc129825655577cfee9"
  description = "Download URL of the Slicer Linux amd64 .tar.gz for slicer_version."
}

variable "slicer_sha256" {
  type        = string
  description = "SHA-256 of the archive at slicer_url (from Slicer's download page, or sha256sum of a download you trust). Required."

  validation {
    condition     = var.slicer_sha256 != "" && regex_replace(var.slicer_sha256, "^[0-9a-fA-F]{64}$", "") == ""
    error_message = "The slicer_sha256 value must be the 64 hex digit SHA-256 of the Slicer archive."
  }
}

variable "burst_binary" {
  type        = string
  default     = "../bin/burst-linux-amd64"
  description = "The linux/amd64 burst binary to install; a relative path is taken from this folder."
}

variable "burst_protocol" {
  type        = string
  default     = "2"
  description = "Run-layout protocol of the burst binary (staging.Protocol); burst only launches images whose tag matches."

  validation {
    condition     = var.burst_protocol != "" && regex_replace(var.burst_protocol, "^[1-9][0-9]*$", "") == ""
    error_message = "The burst_protocol value must be a positive whole number."
  }
}
