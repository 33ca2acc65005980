resource "aws_kms_key" "this" {
  description                        = var.description
  key_usage                          = var.key_usage
  customer_master_key_spec           = var.key_spec
  enable_key_rotation                = var.enable_key_rotation
  rotation_period_in_days            = var.rotation_period_in_days
  deletion_window_in_days            = var.deletion_window_in_days
  is_enabled                         = var.is_enabled
  multi_region                       = var.multi_region
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
  target_key_id = aws_kms_key.this.key_id
}
