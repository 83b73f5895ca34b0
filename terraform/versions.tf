terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

provider "aws" {
  # null: the region of the AWS CLI profile or AWS_REGION, as for the aws CLI.
  region = var.region
}
