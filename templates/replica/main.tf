resource "aws_kms_replica_key" "this" {
  primary_key_arn                    = var.primary_key_arn
  description                        = var.description
  deletion_window_in_days            = var.deletion_window_in_days
  enabled                            = var.is_enabled
  policy                             = var.policy
  bypass_policy_lockout_safety_check = var.bypass_policy_lockout_safety_check
{%- if prevent_destroy %}

  lifecycle {
    prevent_destroy = true
  }
{%- endif %}
}

resource "aws_kms_alias" "this" {
  for_each = toset(var.aliases)

  name          = "alias/${each.value}"
  target_key_id = aws_kms_replica_key.this.key_id
}
