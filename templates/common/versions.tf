terraform {
  required_version = "{{ required_version }}"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "{{ aws_provider }}"
    }
  }
}
