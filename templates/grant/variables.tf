variable "key_arn" {
  description = "ARN of the key the grant is on (an output of the key's node)."
  type        = string
}

variable "grant_name" {
  description = "Name of the grant, or null for a grant without one."
  type        = string
}

variable "grantee" {
  description = "Principal that receives the grant."
  type        = string
}

variable "operations" {
  description = "Operations the grant allows."
  type        = list(string)
}

variable "retiring_principal" {
  description = "Principal that may retire the grant, if any."
  type        = string
  default     = null
}

variable "encryption_context_equals" {
  description = "Encryption context the request must match exactly."
  type        = map(string)
  default     = {}
}

variable "encryption_context_subset" {
  description = "Encryption context the request must include."
  type        = map(string)
  default     = {}
}
