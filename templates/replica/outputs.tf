output "key_id" {
  description = "ID of the replica key (the same as the primary's)."
  value       = aws_kms_replica_key.this.key_id
}

output "key_arn" {
  description = "ARN of the replica key."
  value       = aws_kms_replica_key.this.arn
}

output "alias_arns" {
  description = "ARNs of the replica's aliases, by alias name."
  value       = { for name, alias in aws_kms_alias.this : name => alias.arn }
}

output "enabled" {
  description = "Whether the replica is enabled, as terraform last saw it (the rollout gate reads it)."
  value       = aws_kms_replica_key.this.enabled
}
