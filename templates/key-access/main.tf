resource "aws_iam_policy" "this" {
  name        = var.policy_name
  description = var.policy_description
  policy      = var.policy
}

resource "aws_iam_role_policy_attachment" "this" {
  for_each = toset(var.role_names)

  role       = each.value
  policy_arn = aws_iam_policy.this.arn
}
