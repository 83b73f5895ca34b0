// The packer plugin the worker image needs, for packer 1.7 and later:
//   packer init images/plugins/
// installs it; then build images/ as usual. It lives apart from the template
// because packer 1.6, which has the amazon builder built in, rejects this block.

packer {
  required_version = ">= 1.7.0"
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.2.0"
    }
  }
}
