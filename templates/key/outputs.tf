output "key_id" {
  description = "ID of the key."
  value       = aws_kms_key.this.key_id
}

output "key_arn" {
  description = "ARN of the key."
  value       = aws_kms_key.this.arn
}

output "alias_arns" {
  description = "ARNs of the key's aliases, by alias name."
  value       = { for name, alias in aws_kms_alias.this : name => alias.arn }
}

output "enabled" {
  description = "Whether the key is enabled, as terraform last saw it (the rollout gate reads it)."
  value       = aws_kms_key.this.is_enabled
}

output "rotation_enabled" {
  description = "Whether automatic rotation is on, as terraform last saw it (the rollout gate reads it)."
  value       = aws_kms_key.this.enable_key_rotation
}
