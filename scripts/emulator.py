"""The local AWS emulator for orch's sandbox profile: moto's server (pinned in
scripts/setup-python) with fixes to KMS ReplicateKey, S3
GetBucketNotificationConfiguration and conditional PutObject, and S3 buckets private to
their account.

moto 5.2.5's replicate_key() shallow-copies the primary key, so primary and replica
share their multi-region configuration, grants and aliases (a DescribeKey of the
replica then turns the *primary* into a REPLICA, and every later plan fails with
"not a multi-Region primary key"), and it ignores the request's Description, Policy
and Tags (the AWS provider then waits its full 10 minutes for the tags to appear).
This gives the replica its own state, as AWS does.

moto 5.2.5 stores a bucket's EventBridgeConfiguration but leaves it out of
GetBucketNotificationConfiguration, so `aws_s3_bucket_notification { eventbridge = true }`
reads back as false and every plan shows a change. This returns it, as AWS does.

terraform's S3 backend (`use_lockfile`) takes a state lock by writing `<key>.tflock` with
`If-None-Match: *`: AWS writes the object only if none exists, atomically, and answers 412
PreconditionFailed to every other writer. moto 5.2.5 checks the header, then writes, with no
lock between the two, and its server answers requests on several threads: two runs could both
"take" the lock. This makes the check and the write one step, as AWS does.

In AWS a bucket is its account's: a request from another account gets 403 AccessDenied unless
a bucket policy lets it in. moto lets every account use every bucket unless
MOTO_S3_ALLOW_CROSSACCOUNT_ACCESS is false, which this sets. A test fakes "a bucket that exists
in another account" by creating it through a role of that account (the account of a request is
the one of the role it assumed).
KMS reads an estate adopted by `orch import` depends on, each fixed as AWS does (details at each
fix below): AWS-managed keys (behind `alias/aws/*`) report KeyManager AWS; the predefined
`alias/aws/*` aliases with no key yet have no TargetKeyId; ListKeys, ListAliases, ListGrants and
ListResourceTags page with Limit/Marker/NextMarker/Truncated; GetKeyRotationStatus returns
RotationPeriodInDays; tag keys starting with `aws:` are refused; ListGrants of an unknown key is
NotFoundException and its grants carry IssuingAccount and CreationDate; CreateKey without KeyUsage
makes an ENCRYPT_DECRYPT key; a key policy's Deny stops DescribeKey only when it covers every
caller unconditionally.

Faults a test asks for through the environment of this process (deterministic, for reproducible tests):
  ORCH_EMULATOR_THROTTLE="kms:GetKeyPolicy=3,kms:ListGrants@222222222222=2"
      every N-th call of that service:Action (Action may be *; optionally only from one account; counted per rule,
      from the first call on: calls N, 2N, 3N, ... fail) answers as AWS does when throttling:
      HTTP 400 ThrottlingException "Rate exceeded" (KMS) or Throttling (STS, IAM).
  ORCH_EMULATOR_DENY_ASSUME_ROLE="222222222222,arn:aws:iam::333333333333:role/orch-deployer"
      AssumeRole of any role of a listed account, or of a listed role, answers 403 AccessDenied.
  ORCH_EMULATOR_STRICT_ROLES=1
      AssumeRole of a role that does not exist in the emulator's IAM answers 403 AccessDenied, as
      AWS does, except the harness's own roles named in ORCH_EMULATOR_BOOTSTRAP_ROLES (default
      orch-setup,orch-inspect,orch-brownfield: how a test reaches an account to create its roles).
      Off by default because moto lets any role be assumed and the e2e tests assume roles
      (orch-setup, orch-inspect, orch-deployer) they never create.

Usage: emulator.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""
import base64
import copy
import json
import os
import re
import sys
import threading
import uuid

os.environ["MOTO_S3_ALLOW_CROSSACCOUNT_ACCESS"] = "false"

from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult, BaseResponse
from moto.core.utils import unix_time
from moto.iam.models import iam_backends
from moto.kms import models, policy_validator, responses
from moto.kms.exceptions import AccessDeniedException, NotFoundException
from moto.kms.models import kms_backends
from moto.kms.utils import RESERVED_ALIASES
from moto.s3 import responses as s3_responses


def replicate_key(self, key_id, replica_region, description="", policy=None, tags=None):
    src = self.keys[self.get_key_id(key_id)]
    rep = copy.copy(src)
    rep.region = replica_region
    rep.arn = src.arn.replace(f":{self.region_name}:", f":{replica_region}:")
    # Per-key state must not be shared with the primary.
    rep.grants, rep.aliases, rep.rotations = {}, {}, list(src.rotations)
    rep.description = description or ""          # not a shared property in AWS
    rep.policy = policy or rep.generate_default_policy()
    rep.key_state, rep.enabled, rep.deletion_date = "Enabled", True, None
    replicas = src.multi_region_configuration["ReplicaKeys"]   # shared list: AWS lists all replicas on every member
    if not any(r["Region"] == replica_region for r in replicas):
        replicas.append({"Arn": rep.arn, "Region": replica_region})
    rep.multi_region_configuration = {
        "MultiRegionKeyType": "REPLICA",
        "PrimaryKey": dict(src.multi_region_configuration["PrimaryKey"]),
        "ReplicaKeys": replicas,
    }
    dst = kms_backends[self.account_id][replica_region]
    dst.keys[rep.id] = rep
    if tags:
        dst.tagger.tag_resource(rep.id, tags)
    return rep


def replicate_key_response(self):
    key_id = self._get_param("KeyId")
    self._validate_key_id(key_id)
    refuse_aws_tags(self._get_param("Tags"))
    rep = self.kms_backend.replicate_key(
        key_id,
        self._get_param("ReplicaRegion"),
        description=self._get_param("Description") or "",
        policy=self._get_param("Policy"),
        tags=self._get_param("Tags") or [],
    )
    return json.dumps({"ReplicaKeyMetadata": rep.to_dict()["KeyMetadata"], "ReplicaPolicy": rep.policy})


def get_bucket_notification(self):
    config = self.backend.get_bucket_notification_configuration(self.bucket_name)
    if config is None or config.event_bridge is None:
        return moto_get_bucket_notification(self)

    def entries(items, arn_key):
        out = []
        for item in items:
            entry = {"Id": item.id, arn_key: item.arn, "Events": item.events}
            if item.filters:
                entry["Filter"] = {"Key": {"FilterRules": item.filters["S3Key"]["FilterRule"]}}
            out.append(entry)
        return out

    result = {
        "TopicConfigurations": entries(config.topic, "TopicArn"),
        "QueueConfigurations": entries(config.queue, "QueueArn"),
        "LambdaFunctionConfigurations": entries(config.cloud_function, "LambdaFunctionArn"),
        "EventBridgeConfiguration": {},
    }
    self.data["Action"] = "GetBucketNotificationConfiguration"
    return self.serialized(ActionResult(result))


conditional_writes = threading.Lock()


def put_object(self):
    if self.headers.get("If-None-Match") or self.headers.get("If-Match"):
        with conditional_writes:
            return moto_put_object(self)
    return moto_put_object(self)


# --- KMS: tag keys starting with "aws:" --------------------------------------------------------
# In AWS the `aws:` tag prefix is reserved: CreateKey, ReplicateKey and TagResource refuse such a
# key with TagException (400), and AWS::KMS::Key does not propagate CloudFormation's
# `aws:cloudformation:*` stack tags to the key either, so no KMS key ever carries an `aws:` tag.
# moto stores them. The AWS provider drops `aws:` tags from what it reads (no diff), but after a
# TagResource/UntagResource it waits until ListResourceTags equals the configured tags *exactly*
# (waitTagsPropagated, 10 minutes): with a stored `aws:` tag it never does, so every tag change
# on such a key hangs the apply for 10 minutes and then fails.
def refuse_aws_tags(tags):
    for tag in tags or []:
        if str(tag.get("TagKey", "")).lower().startswith("aws:"):
            raise JsonRESTError("TagException", "Tags beginning with aws: are reserved for AWS use")


# AWS: CreateKey without KeyUsage makes an ENCRYPT_DECRYPT key (the documented default). moto
# stores no usage and DescribeKey answers KeyUsage null: imported into terraform, aws_kms_key's
# key_usage (default ENCRYPT_DECRYPT, forces replacement) then plans to replace the key.
def create_key_response(self):
    refuse_aws_tags(self._get_param("Tags"))
    body = json.loads(moto_create_key(self))
    meta = body["KeyMetadata"]
    if meta.get("KeyUsage") is None:
        self.kms_backend.keys[meta["KeyId"]].key_usage = "ENCRYPT_DECRYPT"
        body = self.kms_backend.keys[meta["KeyId"]].to_dict()
    return json.dumps(body)


def tag_resource_response(self):
    refuse_aws_tags(self._get_param("Tags"))
    return moto_tag_resource(self)


# --- KMS: AWS-managed keys -----------------------------------------------------------------------
# In AWS the key behind a predefined alias `alias/aws/<service>` is created by the service the
# first time it is used (moto: the first DescribeKey/Encrypt/... naming the alias) and is an
# AWS-managed key: DescribeKey says KeyManager AWS, its description is "Default key that protects
# my ... when no other key is defined", its policy lets the account use it only through that
# service (kms:ViaService + kms:CallerAccount), and AWS rotates it every year. moto makes it a
# CUSTOMER key with moto's default policy. To have one in an estate, call DescribeKey with
# KeyId alias/aws/ebs (as the first EBS volume encrypted by default would make AWS create it).
AWS_MANAGED = {
    "acm": ("acm", "ACM private keys"), "dynamodb": ("dynamodb", "DynamoDB tables"),
    "ebs": ("ec2", "EBS volumes"), "elasticfilesystem": ("elasticfilesystem", "EFS file systems"),
    "es": ("es", "Elasticsearch domains"), "glue": ("glue", "Glue data"),
    "kinesisvideo": ("kinesisvideo", "Kinesis Video Streams"), "lambda": ("lambda", "Lambda functions"),
    "rds": ("rds", "RDS databases"), "redshift": ("redshift", "Redshift databases"),
    "s3": ("s3", "S3 objects"), "secretsmanager": ("secretsmanager", "Secrets Manager secrets"),
    "ssm": ("ssm", "SSM parameters"), "xray": ("xray", "X-Ray data"),
}


def aws_managed_policy(service, account, region):
    via, _ = AWS_MANAGED.get(service, (service, ""))
    return json.dumps({
        "Version": "2012-10-17",
        "Id": f"auto-{service}-2",
        "Statement": [
            {
                "Sid": f"Allow access through {service.upper()} for all principals in the account "
                       f"that are authorized to use {service.upper()}",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                           "kms:CreateGrant", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:CallerAccount": account,
                                               "kms:ViaService": f"{via}.{region}.amazonaws.com"}},
            },
            {
                "Sid": "Allow direct access to key metadata to the account",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": ["kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant"],
                "Resource": "*",
            },
        ],
    })


def generate_default_keys(self, alias_name):
    if alias_name not in RESERVED_ALIASES:
        return None
    service = alias_name.split("/", 2)[2]
    noun = AWS_MANAGED.get(service, (service, f"{service} data"))[1]
    key = self.create_key(
        aws_managed_policy(service, self.account_id, self.region_name),
        "ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT",
        f"Default key that protects my {noun} when no other key is defined", None)
    key.key_manager = "AWS"
    key.key_rotation_status, key.rotation_period_in_days = True, 365
    self.create_alias(key.id, alias_name)
    return key.id


# --- KMS: paging ---------------------------------------------------------------------------------
# AWS pages ListKeys (default and max Limit 100 / 1000), ListAliases, ListGrants and
# ListResourceTags (default 50, max 100 / 1000 / 50): at most Limit entries, Truncated true and an
# opaque NextMarker to pass back as Marker while more remain; a Marker it did not hand out is
# InvalidMarkerException; a Limit out of range is a ValidationException. moto 5.2.5 ignores
# Limit and Marker and returns everything at once with Truncated false.
PAGE = {"ListKeys": (100, 1000), "ListAliases": (50, 100), "ListGrants": (50, 100),
        "ListResourceTags": (50, 50)}


def paged(self, action, body, field):
    default, most = PAGE[action]
    limit = self._get_param("Limit")
    if limit is None:
        limit = default
    if not isinstance(limit, int) or not 1 <= limit <= most:
        raise JsonRESTError(
            "ValidationException",
            f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: "
            f"Member must have value {'greater than or equal to 1' if isinstance(limit, int) and limit < 1 else f'less than or equal to {most}'}")
    items = body.get(field) or []
    start = 0
    marker = self._get_param("Marker")
    if marker is not None:
        try:
            start = int(base64.b64decode(marker.encode()).decode().split(":", 1)[1])
            assert 0 <= start <= len(items)
        except Exception:
            raise JsonRESTError(
                "InvalidMarkerException",
                "The request was rejected because the marker that specifies where pagination "
                "should next begin is not valid.")
    body[field] = items[start:start + limit]
    body.pop("NextMarker", None)
    body["Truncated"] = start + limit < len(items)
    if body["Truncated"]:
        body["NextMarker"] = base64.b64encode(f"{uuid.uuid4().hex}:{start + limit}".encode()).decode()
    return json.dumps(body)


def list_keys_response(self):
    return paged(self, "ListKeys", json.loads(moto_list_keys(self)), "Keys")


# In AWS the predefined aliases (alias/aws/ebs, ...) are listed before the service has made its
# key, without TargetKeyId ("predefined aliases that AWS has created but has not yet associated
# with a KMS key"). moto lists them with fixed key ids of keys that do not exist.
def list_aliases_response(self):
    body = json.loads(moto_list_aliases(self))
    for alias in body["Aliases"]:
        if alias["AliasName"] in RESERVED_ALIASES and alias.get("TargetKeyId") not in self.kms_backend.keys:
            alias.pop("TargetKeyId", None)
    if self._get_param("KeyId") is not None:
        body["Aliases"] = [a for a in body["Aliases"] if "TargetKeyId" in a]
    return paged(self, "ListAliases", body, "Aliases")


def list_resource_tags_response(self):
    return paged(self, "ListResourceTags", json.loads(moto_list_resource_tags(self)), "Tags")


# --- KMS: grants ---------------------------------------------------------------------------------
# AWS: ListGrants/CreateGrant/RevokeGrant/RetireGrant on a key that does not exist answer
# NotFoundException (moto: a KeyError, HTTP 500); ListGrants filters by GrantId and
# GranteePrincipal, and each grant carries CreationDate and IssuingAccount (the account that
# created it, "arn:aws:iam::<account>:root"); members with no value (Name, RetiringPrincipal,
# Constraints) are left out rather than null.
moto_grant_init = models.Grant.__init__


def grant_init(self, *args, **kwargs):
    moto_grant_init(self, *args, **kwargs)
    self.creation_date = unix_time()


def grant_json(self):
    out = {
        "KeyId": self.key_id, "GrantId": self.id, "Name": self.name,
        "CreationDate": getattr(self, "creation_date", None),
        "GranteePrincipal": self.grantee_principal, "RetiringPrincipal": self.retiring_principal,
        "IssuingAccount": getattr(self, "issuing_account", None),
        "Operations": self.operations, "Constraints": self.constraints,
    }
    return {k: v for k, v in out.items() if v not in (None, "", {})}


def with_grant_key_checked(original):
    def handler(self):
        # RetireGrant may name the grant by its token alone, without KeyId.
        if self._get_param("KeyId") is not None:
            self._validate_cmk_id(self._get_param("KeyId"))
        return original(self)
    return handler


def create_grant_response(self):
    self._validate_cmk_id(self._get_param("KeyId") or "")
    key = self.kms_backend.keys[self.kms_backend.get_key_id(self._get_param("KeyId"))]
    same = existing_grant(self, key)
    if same is not None:
        return json.dumps({"GrantId": same.id, "GrantToken": same.token})
    body = json.loads(moto_create_grant(self))
    key.grants[body["GrantId"]].issuing_account = f"arn:aws:iam::{self.current_account}:root"
    return json.dumps(body)


def existing_grant(self, key):
    """The key's grant a CreateGrant repeats: one with the same Name and the same parameters.

    AWS: a CreateGrant that names its grant is idempotent, so a retried request (the provider's
    SDK retries one whose answer it lost) returns the original GrantId instead of a second grant;
    moto adds a grant on every call."""
    name = self._get_param("Name")
    if not name:
        return None
    wanted = (self._get_param("GranteePrincipal"), sorted(self._get_param("Operations") or []),
              self._get_param("Constraints") or {}, self._get_param("RetiringPrincipal"))
    for grant in key.grants.values():
        have = (grant.grantee_principal, sorted(grant.operations or []), grant.constraints or {},
                grant.retiring_principal)
        if grant.name == name and have == wanted:
            return grant
    return None


def list_grants_response(self):
    key_id = self._get_param("KeyId") or ""
    self._validate_cmk_id(key_id)
    grants = self.kms_backend.list_grants(key_id=key_id, grant_id=self._get_param("GrantId"))
    grantee = self._get_param("GranteePrincipal")
    body = {"Grants": [g.to_json() for g in grants if grantee is None or g.grantee_principal == grantee],
            "Truncated": False}
    return paged(self, "ListGrants", body, "Grants")


# --- KMS: rotation -------------------------------------------------------------------------------
# AWS: EnableKeyRotation takes RotationPeriodInDays (90-2560, default 365) and GetKeyRotationStatus
# returns it while rotation is on (the provider reads rotation_period_in_days from there); moto
# drops it, so a key rotating every 180 days reads back as null. Rotation of an asymmetric, HMAC
# or imported-material key is UnsupportedOperationException in AWS.
def enable_key_rotation_response(self):
    key_id = self._get_param("KeyId")
    self._validate_cmk_id(key_id)
    period = self._get_param("RotationPeriodInDays")
    if period is not None and not (isinstance(period, int) and 90 <= period <= 2560):
        raise JsonRESTError(
            "ValidationException",
            f"1 validation error detected: Value '{period}' at 'rotationPeriodInDays' failed to "
            "satisfy constraint: Member must have value between 90 and 2560")
    key = self.kms_backend.keys[self.kms_backend.get_key_id(key_id)]
    if key.key_spec != "SYMMETRIC_DEFAULT" or key.origin != "AWS_KMS":
        raise JsonRESTError("UnsupportedOperationException", f"{key.arn} key usage or origin "
                            "does not support automatic key rotation")
    result = moto_enable_key_rotation(self)
    key.rotation_period_in_days = period or 365
    return result


def get_key_rotation_status_response(self):
    body = json.loads(moto_get_key_rotation_status(self))
    key = self.kms_backend.keys[self.kms_backend.get_key_id(self._get_param("KeyId"))]
    body["KeyId"] = key.arn
    if body["KeyRotationEnabled"]:
        body["RotationPeriodInDays"] = getattr(key, "rotation_period_in_days", None) or 365
    return json.dumps(body)


# --- KMS: key policy checks -----------------------------------------------------------------------
# moto refuses DescribeKey whenever a Deny statement of the key policy names kms:DescribeKey (or
# kms:*, kms:Describe*) with Resource "*", whoever it names and whatever its conditions. AWS
# evaluates the Principal/NotPrincipal and Condition: a Deny that names other principals or a
# condition (aws:PrincipalOrgID, aws:SourceVpce, ...) does not stop the key's own account. This
# keeps moto's check only for a Deny that unconditionally covers every principal.
def validate_policy(key, action):
    try:
        statements = json.loads(key.policy).get("Statement", [])
    except (ValueError, AttributeError, TypeError):
        return
    for statement in [statements] if isinstance(statements, dict) else statements:
        principal = statement.get("Principal")
        everyone = principal == "*" or (isinstance(principal, dict) and principal.get("AWS") in ("*", ["*"]))
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if (str(statement.get("Effect", "")).lower() == "deny" and everyone
                and "NotPrincipal" not in statement and not statement.get("Condition")
                and policy_validator.check_statement(dict(statement, Action=actions), key.arn, action)):
            raise AccessDeniedException(message=f"Action {action} is now allowed by the given key policy")


# --- Faults a test asks for ------------------------------------------------------------------------
def parse_throttle(spec):
    rules = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        target, every = item.rsplit("=", 1)
        target, _, account = target.partition("@")
        service, action = target.split(":", 1)
        rules.append({"service": service.lower(), "action": action, "account": account or None,
                      "every": int(every), "calls": 0})
        assert rules[-1]["every"] >= 1, item
    return rules


THROTTLE = parse_throttle(os.environ.get("ORCH_EMULATOR_THROTTLE", ""))
DENY_ASSUME = [x.strip() for x in os.environ.get("ORCH_EMULATOR_DENY_ASSUME_ROLE", "").split(",") if x.strip()]
STRICT_ROLES = os.environ.get("ORCH_EMULATOR_STRICT_ROLES", "") not in ("", "0", "false")
BOOTSTRAP_ROLES = [x.strip() for x in os.environ.get(
    "ORCH_EMULATOR_BOOTSTRAP_ROLES", "orch-setup,orch-inspect,orch-brownfield").split(",") if x.strip()]
faults = threading.Lock()


def query_error(status, code, message):
    body = ('<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
            f"<Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>")
    return status, {"content-type": "text/xml"}, body


def throttled(self):
    service = (self.service_name or "").lower()
    action = self._get_action()
    for rule in THROTTLE:
        if rule["service"] != service or rule["action"] not in (action, "*"):
            continue
        if rule["account"] and rule["account"] != self.current_account:
            continue
        with faults:
            rule["calls"] += 1
            hit = rule["calls"] % rule["every"] == 0
        if hit:
            # What AWS answers a caller over its request rate: HTTP 400 with ThrottlingException
            # (JSON protocols: KMS) or Throttling (query protocols: STS, IAM), "Rate exceeded".
            if service == "kms":
                return 400, {"content-type": "application/x-amz-json-1.1"}, json.dumps(
                    {"__type": "ThrottlingException", "message": "Rate exceeded"})
            return query_error(400, "Throttling", "Rate exceeded")
    return None


def assume_role_denied(self):
    if (self.service_name or "").lower() != "sts" or self._get_action() != "AssumeRole":
        return None
    role_arn = self._get_param("RoleArn") or ""
    parts = role_arn.split(":")
    account = parts[4] if len(parts) > 5 else ""
    denied = role_arn in DENY_ASSUME or account in DENY_ASSUME
    if not denied and STRICT_ROLES and role_arn.rsplit("/", 1)[-1] not in BOOTSTRAP_ROLES:
        try:
            iam_backends[account]["aws"].get_role_by_arn(role_arn)
        except Exception:
            denied = True
    if not denied:
        return None
    # AWS answers an AssumeRole the role's trust policy does not allow, and one of a role that
    # does not exist (it does not tell them apart), with 403 AccessDenied naming the caller.
    from moto.sts.models import sts_backends
    _, caller, _ = sts_backends[self.current_account]["aws"].get_caller_identity(self.access_key, self.region)
    return query_error(403, "AccessDenied",
                       f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}")


def call_action(self):
    fault = throttled(self) or assume_role_denied(self)
    if fault is not None:
        status, headers, body = fault
        headers = dict(self.response_headers, **headers)
        return status, headers, body
    return moto_call_action(self)


moto_call_action = BaseResponse.call_action
BaseResponse.call_action = call_action
moto_create_key = responses.KmsResponse.create_key
responses.KmsResponse.create_key = create_key_response
moto_tag_resource = responses.KmsResponse.tag_resource
responses.KmsResponse.tag_resource = tag_resource_response
models.KmsBackend._generate_default_keys = generate_default_keys
moto_list_keys = responses.KmsResponse.list_keys
responses.KmsResponse.list_keys = list_keys_response
moto_list_aliases = responses.KmsResponse.list_aliases
responses.KmsResponse.list_aliases = list_aliases_response
moto_list_resource_tags = responses.KmsResponse.list_resource_tags
responses.KmsResponse.list_resource_tags = list_resource_tags_response
models.Grant.__init__ = grant_init
models.Grant.to_json = grant_json
moto_create_grant = responses.KmsResponse.create_grant
responses.KmsResponse.create_grant = create_grant_response
responses.KmsResponse.list_grants = list_grants_response
responses.KmsResponse.revoke_grant = with_grant_key_checked(responses.KmsResponse.revoke_grant)
responses.KmsResponse.retire_grant = with_grant_key_checked(responses.KmsResponse.retire_grant)
moto_enable_key_rotation = responses.KmsResponse.enable_key_rotation
responses.KmsResponse.enable_key_rotation = enable_key_rotation_response
moto_get_key_rotation_status = responses.KmsResponse.get_key_rotation_status
responses.KmsResponse.get_key_rotation_status = get_key_rotation_status_response
responses.validate_policy = validate_policy
models.KmsBackend.replicate_key = replicate_key
responses.KmsResponse.replicate_key = replicate_key_response
moto_get_bucket_notification = s3_responses.S3Response.get_bucket_notification
s3_responses.S3Response.get_bucket_notification = get_bucket_notification
moto_put_object = s3_responses.S3Response.put_object
s3_responses.S3Response.put_object = put_object

def generate_key_id(multi_region=False):
    """AWS writes a multi-Region key's id as `mrk-` and 32 hex digits
    (mrk-1234abcd12ab34cd56ef1234567890ab); moto puts `mrk-` before a dashed UUID, an id AWS
    never returns (and orch's `import:` refuses as not a key id)."""
    return "mrk-" + uuid.uuid4().hex if multi_region else str(uuid.uuid4())


def validate_cmk_id(self, key_id):
    # The same check as moto's, with AWS's multi-Region key ids also taken as raw key ids.
    if re.match(r"^mrk-[a-f0-9]{32}$", key_id):
        if self.kms_backend.get_key_id(key_id) not in self.kms_backend.keys:
            raise NotFoundException(f"Key '{self._display_arn(key_id)}' does not exist")
        return None
    return moto_validate_cmk_id(self, key_id)


models.generate_key_id = generate_key_id
moto_validate_cmk_id = responses.KmsResponse._validate_cmk_id
responses.KmsResponse._validate_cmk_id = validate_cmk_id

if __name__ == "__main__":
    from moto.server import main
    sys.exit(main())
