variable "primary_key_arn" {
  description = "ARN of the multi-region primary key (an output of the primary's node)."
  type        = string
}

variable "description" {
  description = "Description of the replica."
  type        = string
}

variable "deletion_window_in_days" {
  description = "Days AWS waits before deleting the replica (7-30)."
  type        = number
}

variable "is_enabled" {
  description = "Whether the replica is enabled."
  type        = bool
}

variable "policy" {
  description = "Key policy JSON, computed by orch."
  type        = string
}

variable "bypass_policy_lockout_safety_check" {
  description = "Skip AWS's lockout check on the policy (explicit opt-in only)."
  type        = bool
}

variable "aliases" {
  description = "Alias names without the alias/ prefix, the same as the primary's."
  type        = list(string)
}
