"""Reads back what a fleet created in the emulator, through the AWS API, as JSON on stdout.

Usage: inspect.py ENDPOINT ACCOUNT_ID REGION [REGION...]
For the account (reached by assuming a role in it, as orch's provider does) and each region:
KMS keys with metadata, policy, tags, aliases and grants; S3 buckets with their encryption and
public access block; IAM policies with the roles they are attached to.
"""
import json
import sys

import boto3
from botocore.exceptions import ClientError


def clients(endpoint, account, region):
    base = dict(endpoint_url=endpoint, region_name=region,
                aws_access_key_id="orch-sandbox", aws_secret_access_key="orch-sandbox")
    creds = boto3.client("sts", **base).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/orch-inspect", RoleSessionName="inspect")["Credentials"]
    session = dict(endpoint_url=endpoint, region_name=region,
                   aws_access_key_id=creds["AccessKeyId"],
                   aws_secret_access_key=creds["SecretAccessKey"],
                   aws_session_token=creds["SessionToken"])
    return lambda service: boto3.client(service, **session)


def kms_region(client):
    kms = client("kms")
    keys = {}
    for entry in kms.list_keys()["Keys"]:
        key_id = entry["KeyId"]
        meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        keys[key_id] = {
            "arn": meta["Arn"],
            "description": meta.get("Description", ""),
            "state": meta["KeyState"],
            "spec": meta.get("KeySpec"),
            "usage": meta.get("KeyUsage"),
            "multi_region": meta.get("MultiRegion", False),
            "multi_region_type": (meta.get("MultiRegionConfiguration") or {}).get("MultiRegionKeyType"),
            "policy": json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]),
            "tags": {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]},
            "grants": [
                {"name": g.get("Name"), "grantee": g["GranteePrincipal"], "operations": sorted(g["Operations"])}
                for g in kms.list_grants(KeyId=key_id)["Grants"]
            ] if meta["KeyState"] == "Enabled" else [],
        }
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]
               if not a["AliasName"].startswith("alias/aws/")}
    return {"keys": keys, "aliases": aliases}


def s3_buckets(client):
    s3 = client("s3")
    out = {}
    for bucket in s3.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        try:
            rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
        except ClientError:
            # A bucket made without default encryption (a test's own state bucket).
            rules = None
        try:
            block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        except ClientError:
            block = None
        out[name] = {"encryption": rules, "public_access_block": block}
    return out


def iam_policies(client):
    iam = client("iam")
    out = {}
    for policy in iam.list_policies(Scope="Local")["Policies"]:
        version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
        roles = iam.list_entities_for_policy(PolicyArn=policy["Arn"])["PolicyRoles"]
        out[policy["PolicyName"]] = {
            "document": version["PolicyVersion"]["Document"],
            "roles": sorted(r["RoleName"] for r in roles),
        }
    return out


def main():
    endpoint, account, regions = sys.argv[1], sys.argv[2], sys.argv[3:]
    report = {"kms": {}, "s3": None, "iam": None}
    for region in regions:
        client = clients(endpoint, account, region)
        report["kms"][region] = kms_region(client)
        if report["s3"] is None:
            report["s3"] = s3_buckets(client)
            report["iam"] = iam_policies(client)
    json.dump(report, sys.stdout, indent=1, sort_keys=True, default=str)


if __name__ == "__main__":
    main()
