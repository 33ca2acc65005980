# The existing replica and aliases this node adopts (its primary's `import:`: a multi-region key
# has one key id in every region). Import blocks do nothing once the resources are in state.
import {
  to = {{ prefix }}aws_kms_replica_key.this
  id = {{ ids }}["key"]
}

import {
  for_each = {{ ids }}["aliases"]
  to       = {{ prefix }}aws_kms_alias.this[each.key]
  id       = each.value
}
