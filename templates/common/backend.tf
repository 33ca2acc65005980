terraform {
{%- if backend.type == "local" %}
  backend "local" {
    path = "{{ backend.path }}"
  }
{%- else %}
  backend "s3" {
    bucket  = "{{ backend.bucket }}"
    key     = "{{ backend.key }}"
    region  = "{{ backend.region }}"
    encrypt = true
{%- if backend.dynamodb_table %}
    dynamodb_table = "{{ backend.dynamodb_table }}"
{%- endif %}
  }
{%- endif %}
}
