output "policy_arn" {
  description = "ARN of the IAM policy."
  value       = aws_iam_policy.this.arn
}
