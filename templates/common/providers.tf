provider "aws" {
{%- if alias is defined %}
  alias  = "{{ alias }}"
{%- endif %}
  region = var.region
{%- if has_role %}

  assume_role {
    role_arn     = var.role_arn
    session_name = "orch"
  }
{%- endif %}
{%- if endpoint %}

  # The profile sends every API call to one endpoint (a local emulator): no real credentials,
  # no metadata service, no account lookup.
  access_key                  = "orch-sandbox"
  secret_key                  = "orch-sandbox"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true
  s3_use_path_style           = true
  # An emulator on this machine answers at once or is down: the provider's default of 25
  # attempts per call (about 7 minutes of backoff for a refused connection) only delays the error.
  max_retries = 3

  endpoints {
    iam = var.endpoint
    kms = var.endpoint
    s3  = var.endpoint
    sts = var.endpoint
  }
{%- else %}

  allowed_account_ids = [var.account_id]
{%- endif %}

  default_tags {
    tags = {% if tags is defined %}{{ tags }}{% else %}var.default_tags{% endif %}
  }
}
