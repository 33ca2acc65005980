terraform {
{%- if backend.type == "local" %}
  backend "local" {
    path = {{ backend.path }}
  }
{%- else %}
  backend "s3" {
    bucket       = {{ backend.bucket }}
    key          = {{ backend.key }}
{%- if backend.workspace_key_prefix %}
    workspace_key_prefix = {{ backend.workspace_key_prefix }}
{%- endif %}
    region       = {{ backend.region }}
    encrypt      = true
    use_lockfile = true
{%- if backend.role_arn %}

    assume_role = {
      role_arn     = {{ backend.role_arn }}
      session_name = "orch"
    }
{%- endif %}
{%- if backend.endpoint %}

    # The profile sends every API call to one endpoint (a local emulator), as the provider does.
    access_key                  = "orch-sandbox"
    secret_key                  = "orch-sandbox"
    skip_credentials_validation = true
    skip_metadata_api_check     = true
    skip_requesting_account_id  = true
    skip_region_validation      = true
    use_path_style              = true
    max_retries                 = 3

    endpoints = {
      s3  = {{ backend.endpoint }}
      sts = {{ backend.endpoint }}
    }
{%- endif %}
  }
{%- endif %}
}
