variable "key_arn" {
  description = "ARN of the key in the other account (an output of the key's node)."
  type        = string
}

variable "policy_name" {
  description = "Name of the IAM policy."
  type        = string
}

variable "policy_description" {
  description = "Description of the IAM policy."
  type        = string
}

variable "policy" {
  description = "IAM policy JSON, computed by orch."
  type        = string
}

variable "role_names" {
  description = "Roles of this account the policy is attached to."
  type        = list(string)
}
