# The existing grant this node adopts (`import:` in its node.yaml), by `<key ARN>:<grant id>`.
# Import blocks do nothing once the resource is in state.
import {
  to = {{ prefix }}aws_kms_grant.this
  id = {{ ids }}["grant"]
}
