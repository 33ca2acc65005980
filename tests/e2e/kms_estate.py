"""Creates the KMS keys tests/aws_read.rs reads back, in one account (through a role of it, as
orch reads them), and prints what it made as JSON.

Usage: kms_estate.py ENDPOINT ACCOUNT REGION REPLICA_REGION
"""
import json
import sys

import boto3


def main():
    endpoint, account, region, replica_region = sys.argv[1:5]
    base = dict(endpoint_url=endpoint, region_name=region,
                aws_access_key_id="orch-sandbox", aws_secret_access_key="orch-sandbox")
    creds = boto3.client("sts", **base).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/orch-setup", RoleSessionName="setup")["Credentials"]
    kms = boto3.client("kms", endpoint_url=endpoint, region_name=region,
                       aws_access_key_id=creds["AccessKeyId"],
                       aws_secret_access_key=creds["SecretAccessKey"],
                       aws_session_token=creds["SessionToken"])

    def key(**kwargs):
        return kms.create_key(**kwargs)["KeyMetadata"]["KeyId"]

    # KeyUsage given, as the AWS provider gives it: moto 5.2.5 leaves it out of DescribeKey
    # when CreateKey had none (AWS: ENCRYPT_DECRYPT).
    tags = [{"TagKey": "Team", "TagValue": "payments"}, {"TagKey": "Tier", "TagValue": "gold"}]
    tagged = key(Description="orders", KeyUsage="ENCRYPT_DECRYPT", Tags=tags)
    kms.enable_key_rotation(KeyId=tagged)
    kms.create_alias(AliasName="alias/orders", TargetKeyId=tagged)
    kms.create_alias(AliasName="alias/orders-legacy", TargetKeyId=tagged)
    granted = key(Description="ledger")
    grant = kms.create_grant(KeyId=granted, Name="app",
                             GranteePrincipal=f"arn:aws:iam::{account}:role/app",
                             Operations=["Encrypt", "Decrypt"],
                             Constraints={"EncryptionContextEquals": {"app": "ledger"}})["GrantId"]
    plain = key(Description="plain")
    rsa = key(Description="signing", KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")
    primary = key(Description="family", MultiRegion=True)
    replica = kms.replicate_key(KeyId=primary, ReplicaRegion=replica_region)["ReplicaKeyMetadata"]
    # An AWS-managed key, as a service makes it on first use of its alias.
    ebs = kms.describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]["KeyId"]
    print(json.dumps({"tagged": tagged, "granted": granted, "grant": grant, "plain": plain,
                      "rsa": rsa, "primary": primary, "replica_arn": replica["Arn"], "ebs": ebs}))


if __name__ == "__main__":
    main()
