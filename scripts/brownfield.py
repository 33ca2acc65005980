"""Builds a brownfield KMS estate in the emulator (scripts/emulator.py) through the AWS API, the
way teams make keys outside orch (console, CLI, CloudFormation), for `orch import` to adopt.
It never runs orch or terraform.

Usage:
  brownfield.py ENDPOINT [--out FILE]
      The estate: accounts 111111111111 and 222222222222 (each reached by assuming
      arn:aws:iam::<id>:role/orch-brownfield, as the e2e tests reach an account), regions
      us-east-1 and eu-west-1. Writes the JSON manifest to FILE, or stdout.
  brownfield.py ENDPOINT --scale N --account ID --region R [--threads T] [--prefix P] [--same-tags] [--out FILE]
      N plain symmetric keys, each with alias alias/P/NNNNN and two tags, on T threads (default
      4), for the import benchmark (benches/import.rs). The tags are Team=bench and Index=<i>, a
      tag set of its own per key; with --same-tags, Team=bench and Tier=standard on every key
      (in the stacks layout each tag set of a stack is a provider configuration of its own, so
      that is one for all of them). The manifest lists them.

Manifest: {"endpoint", "accounts", "regions", "keys": [...], "aws_managed": [...]} where each key is
  {"name": unique label in the manifest, "account", "region", "key_id", "arn",
   "manager": "CUSTOMER" | "AWS", "spec", "usage", "description",
   "state": "Enabled" | "Disabled" | "PendingDeletion",
   "multi_region": null | "PRIMARY" | "REPLICA", "primary_arn": arn of the primary for a replica,
   "aliases": ["alias/..."], "tags": {..}, "rotation": {"enabled": bool, "period_days": int|null},
   "policy_shape": "console-default" | "create-key-default" | "service" | "oddity" | "aws-managed",
   "policy": the policy document,
   "grants": [{"grant_id", "name" (null when none), "grantee", "retiring", "operations",
               "constraints" (null or AWS's Constraints), "made_by_service": bool}],
   "tests": what the key is there to exercise}
"aws_managed" are the AWS-managed keys (KeyManager AWS, behind alias/aws/ebs) orch must skip;
they are also in "keys" with manager "AWS".

A grant counts as made by an AWS service (made_by_service) when its grantee or retiring principal
is a service principal (`<service>[.<region>].amazonaws.com`) or its encryption-context constraint
names `aws:<service>:...` keys: that is how grants AWS services make on a customer's key look (for
EBS: grantee and retiring principal ec2.<region>.amazonaws.com, EncryptionContextSubset
{"aws:ebs:id": "vol-..."}); KMS itself does not mark them (kms:GrantIsForAWSResource is a
condition of the CreateGrant request, not a property of the grant).
"""
import argparse
import json
import sys
import threading

import boto3
from botocore.config import Config

ACCOUNTS = ["111111111111", "222222222222"]
REGIONS = ["us-east-1", "eu-west-1"]
ROLES = ["KeyAdmin", "app-reader", "app-writer", "analytics", "payments-svc"]
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
RETRIES = Config(retries={"max_attempts": 10, "mode": "standard"})


class Account:
    """Clients of one account, reached through a role of it."""

    def __init__(self, endpoint, account):
        self.endpoint, self.id = endpoint, account
        base = dict(endpoint_url=endpoint, region_name="us-east-1", config=RETRIES,
                    aws_access_key_id="orch-sandbox", aws_secret_access_key="orch-sandbox")
        creds = boto3.client("sts", **base).assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/orch-brownfield", RoleSessionName="brownfield")["Credentials"]
        self.creds = dict(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                          aws_session_token=creds["SessionToken"])

    def client(self, service, region="us-east-1"):
        return boto3.client(service, endpoint_url=self.endpoint, region_name=region, config=RETRIES, **self.creds)

    def role(self, name):
        return f"arn:aws:iam::{self.id}:role/{name}"


# The four policy shapes -------------------------------------------------------------------------

def console_policy(acct, admins, users):
    """What the console writes for a key with key administrators and key users."""
    return {
        "Version": "2012-10-17",
        "Id": "key-consolepolicy-3",
        "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
             "Principal": {"AWS": f"arn:aws:iam::{acct}:root"}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "Allow access for Key Administrators", "Effect": "Allow",
             "Principal": {"AWS": admins},
             "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*",
                        "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*",
                        "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion",
                        "kms:CancelKeyDeletion", "kms:RotateKeyOnDemand"],
             "Resource": "*"},
            {"Sid": "Allow use of the key", "Effect": "Allow", "Principal": {"AWS": users},
             "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
             "Resource": "*"},
            {"Sid": "Allow attachment of persistent resources", "Effect": "Allow", "Principal": {"AWS": users},
             "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"], "Resource": "*",
             "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},
        ],
    }


def console_sign_policy(acct, admins, users):
    """The console's policy for an asymmetric signing key: users get Sign/Verify/GetPublicKey."""
    policy = console_policy(acct, admins, users)
    policy["Statement"][2]["Action"] = ["kms:DescribeKey", "kms:GetPublicKey", "kms:Sign", "kms:Verify"]
    del policy["Statement"][3]
    return policy


def create_key_default_policy(acct):
    """What CreateKey writes when it is given no policy."""
    return {"Version": "2012-10-17", "Id": "key-default-1", "Statement": [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
         "Principal": {"AWS": f"arn:aws:iam::{acct}:root"}, "Action": "kms:*", "Resource": "*"}]}


def service_policy(acct, region, users):
    """A key usable only through S3 by the account's principals."""
    policy = create_key_default_policy(acct)
    policy["Id"] = "s3-only"
    policy["Statement"].append({
        "Sid": "Allow use through S3 only", "Effect": "Allow", "Principal": {"AWS": users},
        "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com", "kms:CallerAccount": acct}}})
    return policy


def oddity_policy(acct, admin):
    """Hand-written: a Deny with a NotPrincipal, a source-IP condition and an org condition."""
    policy = create_key_default_policy(acct)
    policy["Id"] = "hand-written"
    policy["Statement"] += [
        {"Sid": "Only the admin role may delete", "Effect": "Deny", "NotPrincipal": {"AWS": [admin, f"arn:aws:iam::{acct}:root"]},
         "Action": ["kms:ScheduleKeyDeletion", "kms:DisableKey"], "Resource": "*"},
        {"Sid": "Office network only", "Effect": "Allow", "Principal": {"AWS": "*"},
         "Action": ["kms:Decrypt"], "Resource": "*",
         "Condition": {"IpAddress": {"aws:SourceIp": ["203.0.113.0/24"]},
                       "StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}},
        {"Sid": "Nobody outside the org", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
         "Condition": {"StringNotEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}, "Bool": {"aws:PrincipalIsAWSService": "false"}}},
    ]
    return policy


# Building -------------------------------------------------------------------------------------

class Estate:
    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.accounts = {a: Account(endpoint, a) for a in ACCOUNTS}
        self.keys = []
        self.names = set()

    def kms(self, account, region):
        return self.accounts[account].client("kms", region)

    def roles(self):
        for acct in self.accounts.values():
            iam = acct.client("iam")
            for name in ROLES:
                iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)

    def key(self, name, account, region, tests, *, spec="SYMMETRIC_DEFAULT", usage="ENCRYPT_DECRYPT",
            description="", policy=None, shape="create-key-default", aliases=(), tags=None,
            rotation=None, multi_region=False):
        """Creates a key as a team would: CreateKey, aliases, rotation. Returns its manifest entry."""
        assert name not in self.names, name
        self.names.add(name)
        kms = self.kms(account, region)
        args = dict(KeySpec=spec, KeyUsage=usage, Description=description, MultiRegion=multi_region)
        if policy is not None:
            args["Policy"] = json.dumps(policy)
        if tags:
            args["Tags"] = [{"TagKey": k, "TagValue": v} for k, v in tags.items()]
        meta = kms.create_key(**args)["KeyMetadata"]
        for alias in aliases:
            kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
        if rotation:
            extra = {} if rotation is True else {"RotationPeriodInDays": rotation}
            kms.enable_key_rotation(KeyId=meta["KeyId"], **extra)
        entry = {
            "name": name, "account": account, "region": region, "key_id": meta["KeyId"], "arn": meta["Arn"],
            "manager": "CUSTOMER", "spec": spec, "usage": usage, "description": description, "state": "Enabled",
            "multi_region": "PRIMARY" if multi_region else None, "primary_arn": None,
            "aliases": list(aliases), "tags": dict(tags or {}),
            "rotation": {"enabled": bool(rotation), "period_days": (365 if rotation is True else rotation) or None},
            "policy_shape": shape,
            "policy": policy if policy is not None else create_key_default_policy(account),
            "grants": [], "tests": tests,
        }
        self.keys.append(entry)
        return entry

    def replica(self, name, primary, region, tests, aliases=()):
        """ReplicateKey with the primary's policy, description and tags (orch's model: a replica
        has its primary's policy and aliases)."""
        self.names.add(name)
        kms = self.kms(primary["account"], primary["region"])
        args = dict(KeyId=primary["key_id"], ReplicaRegion=region, Policy=json.dumps(primary["policy"]),
                    Description=primary["description"])
        if primary["tags"]:
            args["Tags"] = [{"TagKey": k, "TagValue": v} for k, v in primary["tags"].items()]
        meta = kms.replicate_key(**args)["ReplicaKeyMetadata"]
        there = self.kms(primary["account"], region)
        for alias in aliases:
            there.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
        entry = dict(primary, name=name, region=region, key_id=meta["KeyId"], arn=meta["Arn"],
                     multi_region="REPLICA", primary_arn=primary["arn"], aliases=list(aliases), grants=[],
                     tests=tests)
        self.keys.append(entry)
        return entry

    def grant(self, key, grantee, operations, *, name=None, retiring=None, constraints=None, service=False):
        kms = self.kms(key["account"], key["region"])
        args = dict(KeyId=key["key_id"], GranteePrincipal=grantee, Operations=operations)
        if name:
            args["Name"] = name
        if retiring:
            args["RetiringPrincipal"] = retiring
        if constraints:
            args["Constraints"] = constraints
        grant_id = kms.create_grant(**args)["GrantId"]
        key["grants"].append({"grant_id": grant_id, "name": name, "grantee": grantee, "retiring": retiring,
                              "operations": operations, "constraints": constraints, "made_by_service": service})

    def disable(self, key):
        self.kms(key["account"], key["region"]).disable_key(KeyId=key["key_id"])
        key["state"] = "Disabled"

    def schedule_deletion(self, key, days=7):
        self.kms(key["account"], key["region"]).schedule_key_deletion(KeyId=key["key_id"], PendingWindowInDays=days)
        key["state"] = "PendingDeletion"

    def aws_managed(self, account, region, alias="alias/aws/ebs"):
        """The AWS-managed key behind alias/aws/ebs, made as AWS makes it: when the service first
        uses the alias (here: a DescribeKey naming it)."""
        kms = self.kms(account, region)
        meta = kms.describe_key(KeyId=alias)["KeyMetadata"]
        policy = json.loads(kms.get_key_policy(KeyId=meta["KeyId"], PolicyName="default")["Policy"])
        entry = {
            "name": f"aws-managed-ebs-{account}-{region}", "account": account, "region": region,
            "key_id": meta["KeyId"], "arn": meta["Arn"], "manager": meta["KeyManager"], "spec": meta["KeySpec"],
            "usage": meta["KeyUsage"], "description": meta["Description"], "state": meta["KeyState"],
            "multi_region": None, "primary_arn": None, "aliases": [alias], "tags": {},
            "rotation": {"enabled": True, "period_days": 365}, "policy_shape": "aws-managed", "policy": policy,
            "grants": [], "tests": "AWS-managed key (KeyManager AWS) behind alias/aws/ebs: import must skip it",
        }
        self.keys.append(entry)
        return entry


def build(endpoint):
    e = Estate(endpoint)
    e.roles()
    a1, a2 = ACCOUNTS
    acct1, acct2 = e.accounts[a1], e.accounts[a2]
    team = {"Team": "platform", "CostCenter": "42"}
    admins1, users1 = [acct1.role("KeyAdmin")], [acct1.role("app-reader"), acct1.role("app-writer")]
    admins2, users2 = [acct2.role("KeyAdmin")], [acct2.role("analytics")]

    # Account 1, us-east-1 ---------------------------------------------------------------------
    r = "us-east-1"
    orders = e.key("orders", a1, r, "console default policy (admins, users, persistent resources); two aliases; "
                   "team tags; rotation on (365)",
                   description="Orders service data", policy=console_policy(a1, admins1, users1),
                   shape="console-default", aliases=["alias/app/orders", "alias/app/orders-legacy"], tags=team,
                   rotation=True)
    e.key("billing", a1, r, "CreateKey's default policy (root kms:* only); rotation off",
          description="Billing exports", aliases=["alias/app/billing"], tags=team)
    e.key("uploads", a1, r, "service policy: kms:ViaService s3.us-east-1 + kms:CallerAccount; alias not a valid "
          "orch node name (capitals, underscore)",
          description="S3 uploads bucket key", policy=service_policy(a1, r, users1), shape="service",
          aliases=["alias/Team/App_Key"], tags=team, rotation=True)
    e.key("legal-hold", a1, r, "hand-written policy: Deny with NotPrincipal, SourceIp and PrincipalOrgID "
          "conditions; no alias at all",
          description="", policy=oddity_policy(a1, admins1[0]), shape="oddity", tags=dict(team, Owner="legal"))
    e.key("rsa-encrypt", a1, r, "RSA_2048 ENCRYPT_DECRYPT (rotation not supported)", spec="RSA_2048",
          description="Envelope keys for partners", aliases=["alias/rsa/partner-envelope"], tags=team)
    e.key("rsa-sign", a1, r, "RSA_3072 SIGN_VERIFY with the console's signing-key policy", spec="RSA_3072",
          usage="SIGN_VERIFY", description="Release signing", policy=console_sign_policy(a1, admins1, users1),
          shape="console-default", aliases=["alias/rsa/release-signing"], tags=team)
    e.key("ecc-sign", a1, r, "ECC_NIST_P256 SIGN_VERIFY", spec="ECC_NIST_P256", usage="SIGN_VERIFY",
          description="JWT signing", aliases=["alias/ecc/jwt"], tags=team)
    e.key("hmac", a1, r, "HMAC_256 GENERATE_VERIFY_MAC", spec="HMAC_256", usage="GENERATE_VERIFY_MAC",
          description="Webhook MACs", aliases=["alias/hmac/webhooks"], tags=team)
    e.key("rotate-180", a1, r, "rotation on with a period of 180 days", description="Session tokens",
          aliases=["alias/app/sessions"], tags=team, rotation=180)
    e.disable(e.key("retired", a1, r, "disabled key (is_enabled false)", description="Old reporting key",
                    aliases=["alias/app/retired"], tags=team))
    e.schedule_deletion(e.key("doomed", a1, r, "pending deletion (7 days): import must skip or refuse it",
                              description="Scheduled for deletion", aliases=["alias/app/doomed"], tags=team))
    e.key("app_data", a1, r, "alias alias/app_data: collides with alias/app-data once made a node name",
          description="App data (underscore)", aliases=["alias/app_data"], tags=team)
    e.key("app-data", a1, r, "alias alias/app-data: collides with alias/app_data once made a node name",
          description="App data (dash)", aliases=["alias/app-data"], tags=team)
    e.key("untagged", a1, r, "no tags at all, not in the team's tag set", description="Scratch key",
          aliases=["alias/scratch"])
    granted = e.key("granted", a1, r, "user grants (named, with EncryptionContextEquals; unnamed with "
                    "EncryptionContextSubset and a retiring principal) and a grant made by a service (EBS-like)",
                    description="Volume and app grants", aliases=["alias/app/granted"], tags=team, rotation=True)
    e.grant(granted, acct1.role("app-reader"), ["Decrypt", "DescribeKey"], name="app-reader-decrypt",
            constraints={"EncryptionContextEquals": {"app": "orders", "env": "prod"}})
    e.grant(granted, acct1.role("app-writer"), ["Encrypt", "GenerateDataKey"], retiring=acct1.role("KeyAdmin"),
            constraints={"EncryptionContextSubset": {"app": "orders"}})
    e.grant(granted, acct2.role("analytics"), ["Decrypt"], name="cross-account-analytics")
    e.grant(granted, f"ec2.{r}.amazonaws.com", ["Decrypt", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom",
            "ReEncryptTo", "CreateGrant", "DescribeKey"], retiring=f"ec2.{r}.amazonaws.com",
            constraints={"EncryptionContextSubset": {"aws:ebs:id": "vol-0123456789abcdef0"}}, service=True)
    payments = e.key("payments", a1, r, "multi-region primary; replica in eu-west-1 with the same policy and "
                     "alias alias/global/payments in both regions",
                     description="Payments (multi-region)", policy=console_policy(a1, admins1, [acct1.role("payments-svc")]),
                     shape="console-default", aliases=["alias/global/payments"], tags=team, rotation=True,
                     multi_region=True)
    e.aws_managed(a1, r)

    # Account 1, eu-west-1 ---------------------------------------------------------------------
    r = "eu-west-1"
    e.replica("payments-replica", payments, r, "replica of payments (same policy, tags, alias)",
              aliases=["alias/global/payments"])
    e.key("orders-eu", a1, r, "same alias name as a different, non-replica key in us-east-1",
          description="Orders service data (EU)", policy=console_policy(a1, admins1, users1),
          shape="console-default", aliases=["alias/app/orders"], tags=team, rotation=True)
    e.key("hmac-eu", a1, r, "HMAC_512", spec="HMAC_512", usage="GENERATE_VERIFY_MAC",
          description="EU webhook MACs", aliases=["alias/hmac/webhooks-eu"], tags=team)
    e.key("ecc-eu", a1, r, "ECC_NIST_P384 SIGN_VERIFY", spec="ECC_NIST_P384", usage="SIGN_VERIFY",
          description="EU document signing", aliases=["alias/ecc/documents"], tags=team)
    e.key("uploads-eu", a1, r, "service policy for s3.eu-west-1", description="EU uploads",
          policy=service_policy(a1, r, users1), shape="service", aliases=["alias/app/uploads-eu"], tags=team)

    # Account 2 ----------------------------------------------------------------------------------
    shared = {"Team": "data", "CostCenter": "77"}
    r = "us-east-1"
    e.key("lake", a2, r, "account 2: console policy; cross-account key user from account 1",
          description="Data lake", policy=console_policy(a2, admins2, users2 + [acct1.role("app-reader")]),
          shape="console-default", aliases=["alias/data/lake"], tags=shared, rotation=True)
    e.key("lake-default", a2, r, "account 2: CreateKey default policy", description="Lake staging",
          aliases=["alias/data/staging"], tags=shared)
    lake_grants = e.key("lake-grants", a2, r, "account 2: grant to a role of account 1, named",
                        description="Lake exports", aliases=["alias/data/exports"], tags=shared)
    e.grant(lake_grants, acct1.role("app-reader"), ["Decrypt"], name="exports-to-app")
    e.key("App-Data", a2, r, "account 2: alias alias/App-Data (capitals; app_data/app-data live in account 1)",
          description="Mixed case alias", aliases=["alias/App-Data"], tags=shared)
    e.key("lake-oddity", a2, r, "account 2: hand-written policy", description="Restricted",
          policy=oddity_policy(a2, admins2[0]), shape="oddity", aliases=["alias/data/restricted"], tags=shared)
    r = "eu-west-1"
    reports = e.key("reports", a2, r, "account 2: multi-region primary in eu-west-1, replica in us-east-1",
                    description="Reports (multi-region)", aliases=["alias/data/reports"], tags=shared,
                    rotation=True, multi_region=True)
    e.replica("reports-replica", reports, "us-east-1", "account 2: replica of reports in us-east-1",
              aliases=["alias/data/reports"])
    e.key("archive", a2, r, "account 2: symmetric, rotation 730 days", description="Archive",
          aliases=["alias/data/archive"], tags=shared, rotation=730)
    e.aws_managed(a2, r)

    return {"endpoint": endpoint, "accounts": ACCOUNTS, "regions": REGIONS, "keys": e.keys,
            "aws_managed": [k["arn"] for k in e.keys if k["manager"] == "AWS"]}


def scale(endpoint, n, account, region, threads, prefix, same_tags=False):
    acct = Account(endpoint, account)
    out, lock, todo = [], threading.Lock(), iter(range(n))

    def work():
        kms = acct.client("kms", region)
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            second = {"TagKey": "Tier", "TagValue": "standard"} if same_tags else {"TagKey": "Index", "TagValue": str(i)}
            meta = kms.create_key(Description=f"{prefix} key {i}",
                                  Tags=[{"TagKey": "Team", "TagValue": "bench"}, second])["KeyMetadata"]
            alias = f"alias/{prefix}/{i:05d}"
            kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
            with lock:
                out.append({"name": f"{prefix}-{i:05d}", "account": account, "region": region,
                            "key_id": meta["KeyId"], "arn": meta["Arn"], "aliases": [alias]})

    workers = [threading.Thread(target=work) for _ in range(max(1, threads))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(out) == n, f"made {len(out)} of {n} keys"
    out.sort(key=lambda k: k["name"])
    return {"endpoint": endpoint, "accounts": [account], "regions": [region], "keys": out, "aws_managed": []}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("endpoint")
    parser.add_argument("--out")
    parser.add_argument("--scale", type=int)
    parser.add_argument("--account", default=ACCOUNTS[0])
    parser.add_argument("--region", default=REGIONS[0])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--prefix", default="bench")
    parser.add_argument("--same-tags", action="store_true")
    args = parser.parse_args()
    if args.scale is not None:
        manifest = scale(args.endpoint, args.scale, args.account, args.region, args.threads, args.prefix, args.same_tags)
    else:
        manifest = build(args.endpoint)
    text = json.dumps(manifest, indent=1, sort_keys=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
