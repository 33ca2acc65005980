resource "aws_kms_grant" "this" {
  name               = var.grant_name
  key_id             = var.key_arn
  grantee_principal  = var.grantee
  operations         = var.operations
  retiring_principal = var.retiring_principal

  dynamic "constraints" {
    for_each = length(var.encryption_context_equals) > 0 ? [var.encryption_context_equals] : []
    content {
      encryption_context_equals = constraints.value
    }
  }

  dynamic "constraints" {
    for_each = length(var.encryption_context_subset) > 0 ? [var.encryption_context_subset] : []
    content {
      encryption_context_subset = constraints.value
    }
  }
}
