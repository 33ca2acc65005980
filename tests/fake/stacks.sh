# The fake terraform's stacks mode: tests/fake/terraform sources this in a stack's root module,
# .orch/work/_stacks/<account>/<region>/<tier>/. Each module block (one per node) stands for one
# resource, `module.<name>.aws_kms_key.this`, printed the way terraform prints it, so orch must
# read plan, apply and errors per module. The calls are recorded as in per-node mode, with the
# stack as the address and the modules the call covers as a fifth field:
#   "<start_ns> <end_ns> _stacks/<account>/<region>/<tier> <command> <module,module,...>"
# FAKE_TF_FAIL, FAKE_TF_APPLY_FAIL, FAKE_TF_SLEEP and FAKE_TF_NO_CHANGES name node addresses and
# work as in per-node mode; a failing node's error names its module. An apply stops at the first
# failing module: the modules before it are applied, the ones after it are not.
place=$(echo "${address#_stacks/}" | cut -d/ -f1,2)
modules=$(sed -n 's/^module "\(.*\)" {$/\1/p' main.tf 2>/dev/null)
# A module is named after its node, with `_` first when the name starts with a digit.
node_of() { echo "$place/${1#_}"; }
listed() { for x in $2; do [ "$x" = "$1" ] && return 0; done; return 1; }
targets=
for arg in "$@"; do
  case "$arg" in -target=module.*) targets="$targets ${arg#-target=module.}" ;; esac
done
[ -n "$targets" ] || targets=$modules
covered=$(echo $targets | tr ' ' ,)
record_stack() { record "$1 $covered"; }
trap 'record_stack "$cmd-interrupted"; exit 1' INT

case "$cmd" in
init)
  mkdir -p .terraform
  echo "Terraform has been successfully initialized!"
  ;;
plan)
  failed=
  for m in $targets; do
    if listed "$(node_of "$m")" "${FAKE_TF_FAIL:-}"; then
      failed=1
      printf '\nError: boom in %s\n\n  with module.%s.aws_kms_key.this,\n  on %s/main.tf line 1, in resource "aws_kms_key" "this":\n\n' \
        "$(node_of "$m")" "$m" "${m#_}" >&2
    fi
  done
  if [ -n "$failed" ]; then
    record_stack plan-failed
    exit 1
  fi
  if [ "${FAKE_TF_SLEEP:-0}" != 0 ]; then
    sleep "$FAKE_TF_SLEEP" &
    wait $!
  fi
  destroy=
  for arg in "$@"; do [ "$arg" = -destroy ] && destroy=1; done
  if [ -n "${FAKE_TF_NO_CHANGES:-}" ] && [ -z "$destroy" ]; then
    echo "No changes. Your infrastructure matches the configuration."
    record_stack plan
    exit 0
  fi
  echo "${destroy:+destroy}" >tfplan
  verb=created sign=+
  [ -n "$destroy" ] && verb=destroyed sign=-
  n=0
  echo "Terraform will perform the following actions:"
  for m in $targets; do
    # FAKE_TF_REMEMBER set: a module applied with the same files and tfvars shows no changes.
    config=
    [ -n "${FAKE_TF_REMEMBER:-}" ] && config=$(cat "${m#_}"/*.tf terraform.tfvars.json | cksum | tr ' ' _)
    if [ -z "$destroy" ] && [ -n "$config" ] && [ "$(cat ".fake-applied-$m" 2>/dev/null)" = "$config" ]; then
      continue
    fi
    n=$((n + 1))
    echo "$m $config" >>tfplan
    printf '\n  # module.%s.aws_kms_key.this will be %s\n  %s resource "aws_kms_key" "this" {\n    }\n' \
      "$m" "$verb" "$sign"
  done
  # A module applied before that main.tf no longer has: terraform plans to destroy it.
  gone=0
  if [ -z "$destroy" ] && [ "$covered" = "$(echo $modules | tr ' ' ,)" ]; then
    for applied in .fake-applied-*; do
      [ -e "$applied" ] || continue
      m=${applied#.fake-applied-}
      listed "$m" "$modules" && continue
      n=$((n + 1)) gone=$((gone + 1))
      printf '\n  # module.%s.aws_kms_key.this will be destroyed\n  # (because module.%s is not in configuration)\n  - resource "aws_kms_key" "this" {\n    }\n' "$m" "$m"
    done
  fi
  if [ "$n" = 0 ]; then
    echo "No changes. Your infrastructure matches the configuration."
    record_stack plan
    exit 0
  fi
  echo
  if [ -n "$destroy" ]; then
    echo "Plan: 0 to add, 0 to change, $n to destroy."
  else
    echo "Plan: $((n - gone)) to add, 0 to change, $gone to destroy."
  fi
  record_stack plan
  exit 2
  ;;
apply)
  mode=$(head -n 1 tfplan)
  # A saved plan carries its targets: the modules it covers are the ones it lists.
  covered=$(tail -n +2 tfplan | cut -d' ' -f1 | paste -sd, -)
  tail -n +2 tfplan | while read -r m config; do
    if listed "$(node_of "$m")" "${FAKE_TF_APPLY_FAIL:-}"; then
      printf '\nError: apply boom in %s\n\n  with module.%s.aws_kms_key.this,\n  on %s/main.tf line 1, in resource "aws_kms_key" "this":\n\n' \
        "$(node_of "$m")" "$m" "${m#_}" >&2
      record_stack apply-failed
      exit 1
    fi
    if [ "$mode" = destroy ]; then
      rm -f ".fake-applied-$m"
      echo "module.$m.aws_kms_key.this: Destruction complete after 0s"
    else
      echo "$config" >".fake-applied-$m"
      echo "module.$m.aws_kms_key.this: Creation complete after 0s [id=fake-${m#_}]"
    fi
  done || exit 1
  echo "Apply complete!"
  ;;
output)
  region=${place#*/}
  sep='{'
  for m in $modules; do
    printf '%s"%s":{"sensitive":true,"type":"object","value":{"key_arn":"arn:aws:kms:%s:111111111111:key/fake-%s","key_id":"fake-%s","enabled":true,"rotation_enabled":true}}' \
      "$sep" "$m" "$region" "${m#_}" "${m#_}"
    sep=,
  done
  [ "$sep" = '{' ] && printf '{'
  echo '}'
  ;;
*)
  echo "fake terraform (stacks): unknown command $cmd" >&2
  exit 1
  ;;
esac
record_stack "$cmd"
