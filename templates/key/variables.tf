variable "description" {
  description = "Description of the key."
  type        = string
}

variable "key_usage" {
  description = "ENCRYPT_DECRYPT, SIGN_VERIFY, GENERATE_VERIFY_MAC or KEY_AGREEMENT."
  type        = string
}

variable "key_spec" {
  description = "Key spec, e.g. SYMMETRIC_DEFAULT."
  type        = string
}

variable "enable_key_rotation" {
  description = "Rotate the key material automatically."
  type        = bool
}

variable "rotation_period_in_days" {
  description = "Days between rotations (90-2560), or null for AWS's default."
  type        = number
  default     = null
}

variable "deletion_window_in_days" {
  description = "Days AWS waits before deleting the key (7-30)."
  type        = number
}

variable "is_enabled" {
  description = "Whether the key is enabled."
  type        = bool
}

variable "multi_region" {
  description = "Whether the key is a multi-region primary."
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
  description = "Alias names without the alias/ prefix."
  type        = list(string)
}
