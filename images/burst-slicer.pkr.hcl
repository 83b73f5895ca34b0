// The burst worker image: Ubuntu 22.04 with 3D Slicer, its headless runtime
// libraries and the burst binary, smoke-tested before it is registered.
//
// Build from the repository root:
//   packer build -var slicer_sha256=<sha256 of the Slicer archive> images/
//
// Building needs packer 1.7 or later and its amazon plugin, declared in
// plugins/amazon.pkr.hcl and installed once with
//   packer init images/plugins/
// It is declared there rather than here so that packer 1.6, which rejects
// required_plugins, can still parse and check this folder.

packer {
  required_version = ">= 1.6.6"
}

locals {
  build_stamp = formatdate("YYYYMMDD-hhmmss", timestamp())

  // A relative burst_binary is taken from this folder, wherever packer runs.
  burst_binary = substr(var.burst_binary, 0, 1) == "/" ? var.burst_binary : "${path.root}/${var.burst_binary}"

  // burst finds its image by burst:image and burst:protocol, newest first.
  image_tags = {
    "Name"                 = "burst-worker slicer-${var.slicer_version} protocol-${var.burst_protocol}"
    "burst:image"          = "worker"
    "burst:slicer-version" = var.slicer_version
    "burst:protocol"       = var.burst_protocol
  }
}

source "amazon-ebs" "worker" {
  region        = var.region
  instance_type = var.instance_type
  subnet_id     = var.subnet_id
  ssh_username  = "ubuntu"

  source_ami_filter {
    filters = {
      name                = "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"
      architecture        = "x86_64"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = ["099720109477"] // Canonical
    most_recent = true
  }

  // IMDSv2 only: the build instance answers metadata requests only with a
  // session token, and so does every instance launched from the image unless
  // its launch says otherwise.
  imds_support = "v2.0"
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  // Should packer die mid-build, the instance's own deadline (set by the first
  // provisioner) powers it off, and powering off terminates it.
  shutdown_behavior = "terminate"

  launch_block_device_mappings {
    device_name           = "/dev/sda1"
    volume_size           = var.volume_size
    volume_type           = "gp3"
    iops                  = 3000
    throughput            = 125
    encrypted             = true
    kms_key_id            = var.kms_key_id
    delete_on_termination = true
  }

  ami_name        = "burst-worker-slicer-${var.slicer_version}-p${var.burst_protocol}-${local.build_stamp}"
  ami_description = "burst worker: 3D Slicer ${var.slicer_version} (headless), burst protocol ${var.burst_protocol}, Ubuntu 22.04 amd64"
  tags            = local.image_tags
  snapshot_tags   = local.image_tags

  run_tags = {
    "Name"          = "burst-image-build"
    "burst:purpose" = "image-build"
  }
  run_volume_tags = {
    "Name"          = "burst-image-build"
    "burst:purpose" = "image-build"
  }

  // Registering a 30 GiB snapshot can outlast the default ten-minute wait.
  aws_polling {
    delay_seconds = 15
    max_attempts  = 120
  }
}

build {
  name    = "burst-worker"
  sources = ["source.amazon-ebs.worker"]

  provisioner "shell" {
    inline = [
      "sudo shutdown -h +${var.build_timeout_minutes} 'burst image build deadline'",
    ]
  }

  provisioner "file" {
    source      = local.burst_binary
    destination = "/tmp/burst"
  }

  provisioner "shell" {
    script = "${path.root}/scripts/install-slicer.sh"
    environment_vars = [
      "SLICER_VERSION=${var.slicer_version}",
      "SLICER_URL=${var.slicer_url}",
      "SLICER_SHA256=${var.slicer_sha256}",
      "BURST_PROTOCOL=${var.burst_protocol}",
      "BURST_UPLOAD=/tmp/burst",
    ]
    execute_command = "sudo env {{ .Vars }} bash '{{ .Path }}'"
  }

  // Last, so that an image that cannot run a job is never registered. It runs
  // as the unprivileged login user, as a check that nothing needs root.
  provisioner "shell" {
    script = "${path.root}/scripts/smoke-test.sh"
    environment_vars = [
      "SLICER_VERSION=${var.slicer_version}",
      "BURST_PROTOCOL=${var.burst_protocol}",
    ]
    execute_command = "env {{ .Vars }} bash '{{ .Path }}'"
  }
}
