variable "key_arn" {
  description = "ARN of the key that encrypts the bucket (an output of the key's node)."
  type        = string
}

variable "bucket" {
  description = "Name of the bucket."
  type        = string
}

variable "force_destroy" {
  description = "Delete the bucket's objects when the bucket is destroyed."
  type        = bool
}

variable "versioning" {
  description = "Keep every version of every object."
  type        = bool
}
