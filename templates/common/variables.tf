variable "region" {
  description = "AWS region of this node."
  type        = string
}

variable "account_id" {
  description = "AWS account this node deploys to."
  type        = string
}

variable "role_arn" {
  description = "Role the provider assumes in the account, if any."
  type        = string
  default     = null
}

variable "endpoint" {
  description = "URL every AWS API call goes to (the profile's emulator), if any."
  type        = string
  default     = null
}

variable "default_tags" {
  description = "Tags on every resource of this node."
  type        = map(string)
  default     = {}
}
