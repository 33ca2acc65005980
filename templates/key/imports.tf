# The existing key and aliases this node adopts (`import:` in its node.yaml). Import blocks do
# nothing once the resources are in state.
import {
  to = {{ prefix }}aws_kms_key.this
  id = {{ ids }}["key"]
}

import {
  for_each = {{ ids }}["aliases"]
  to       = {{ prefix }}aws_kms_alias.this[each.key]
  id       = each.value
}
