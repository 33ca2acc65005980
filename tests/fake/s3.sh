# The fake terraform's S3 mode: tests/fake/terraform sources this in orch's own backend-only
# modules under .orch/remote/<kind>/<name>/. Buckets are directories under $FAKE_S3, an object
# a file at its key, read from the module's backend.tf (bucket, key, workspace_key_prefix) and
# TF_WORKSPACE:
#   $FAKE_S3/<bucket>/              the bucket; missing: init fails as S3 answers NoSuchBucket
#   $FAKE_S3/<bucket>/.denied       init fails as S3 answers 403 AccessDenied
#   $FAKE_S3/<bucket>/<key>.tflock  the state lock, held: lines `ID: ...`, `Who: ...` (what
#                                   terraform prints as Lock Info); `state push` fails on it
#   FAKE_S3_PUSH_FAIL               objects (`<bucket>/<key>` substrings) whose `state push`
#                                   fails, space separated
# `state push` checks lineage and serial as terraform does: a state that holds resources is only
# replaced by one of its lineage with a serial no lower. Calls are recorded as in per-node mode
# with `remote/<kind>/<name>` (and `:<workspace>`) as the address and `workspace-list`,
# `state-pull` or `state-push` as the command.
address=remote/${PWD#*/.orch/remote/}${TF_WORKSPACE:+:$TF_WORKSPACE}
setting() { sed -n "s/^ *$1 *= *\"\\(.*\\)\"\$/\\1/p" backend.tf; }
bucket=$(setting bucket)
key=$(setting key)
prefix=$(setting workspace_key_prefix)
root=${FAKE_S3:?FAKE_S3 names the directory of the fake buckets}
object=$root/$bucket/$key
sub=${2:-}
# A workspace's state is <workspace_key_prefix>/<workspace>/<key>; the S3 backend creates it,
# empty, when a command asks for a workspace that has none.
workspace=${TF_WORKSPACE:-default}
if [ "$workspace" != default ]; then
  object=$root/$bucket/$prefix/$workspace/$key
  if [ "$cmd" = state ] && [ ! -f "$object" ]; then
    mkdir -p "${object%/*}"
    printf '{\n  "version": 4,\n  "terraform_version": "1.11.4",\n  "serial": 1,\n  "lineage": "created-by-a-workspace",\n  "outputs": {},\n  "resources": [],\n  "check_results": null\n}\n' >"$object"
  fi
fi

case "$cmd" in
init)
  if [ ! -d "$root/$bucket" ]; then
    printf 'Error: Failed to get existing workspaces: S3 bucket "%s" does not exist.\n\noperation error S3: ListObjectsV2, https response error StatusCode: 404, RequestID: 1, api error NoSuchBucket: The specified bucket does not exist\n' "$bucket" >&2
    exit 1
  fi
  if [ -e "$root/$bucket/.denied" ]; then
    printf 'Error: Failed to get existing workspaces: operation error S3: ListObjectsV2, https response error StatusCode: 403, RequestID: 1, api error AccessDenied: Access Denied\n' >&2
    exit 1
  fi
  mkdir -p .terraform
  echo "Terraform has been successfully initialized!"
  record init
  ;;
workspace)
  [ "$sub" = list ] || { echo "fake terraform: workspace $sub" >&2; exit 1; }
  echo "* default"
  for state in "$root/$bucket/$prefix"/*/"$key"; do
    [ -f "$state" ] || continue
    state=${state%/*}
    echo "  ${state##*/}"
  done
  record workspace-list
  ;;
state)
  case "$sub" in
  pull)
    if [ -f "$object" ]; then
      cat "$object"
    else
      printf '{\n  "version": 4,\n  "terraform_version": "1.11.4",\n  "serial": 0,\n  "lineage": "",\n  "outputs": {},\n  "resources": [],\n  "check_results": null\n}\n'
    fi
    record state-pull
    ;;
  push)
    for file in "$@"; do :; done
    if [ -f "$object.tflock" ]; then
      printf 'Error: Error acquiring the state lock\n\nError message: operation error S3: PutObject, https response error StatusCode: 412\nLock Info:\n' >&2
      sed 's/^/  /' "$object.tflock" >&2
      record state-push-locked
      exit 1
    fi
    for failing in ${FAKE_S3_PUSH_FAIL:-}; do
      case "${object#"$root"/}" in
      *"$failing"*)
        printf 'Error: Failed to persist state: operation error S3: PutObject, https response error StatusCode: 0, request send failed: connection reset by peer\n' >&2
        record state-push-failed
        exit 1
        ;;
      esac
    done
    field() { sed -n "s/^ *\"$1\": \"\\{0,1\\}\\([^\",]*\\)\"\\{0,1\\},\$/\\1/p" "$2" | head -n 1; }
    if [ -f "$object" ] && grep -q '"mode": "managed"' "$object"; then
      if [ "$(field lineage "$object")" != "$(field lineage "$file")" ]; then
        printf 'Failed to write state: cannot import state with lineage "%s" over unrelated state with lineage "%s"\n' "$(field lineage "$file")" "$(field lineage "$object")" >&2
        exit 1
      fi
      if [ "$(field serial "$object")" -gt "$(field serial "$file")" ]; then
        printf 'Failed to write state: cannot import state with serial %s over newer state with serial %s\n' "$(field serial "$file")" "$(field serial "$object")" >&2
        exit 1
      fi
    fi
    mkdir -p "${object%/*}"
    cp "$file" "$object"
    record state-push
    ;;
  *)
    echo "fake terraform: state $sub" >&2
    exit 1
    ;;
  esac
  ;;
output)
  # Remote outputs are not what these tests look at: no node is applied.
  echo '{}'
  record output
  ;;
*)
  echo "fake terraform: unknown command $cmd in $address" >&2
  exit 1
  ;;
esac
exit 0
