"""Creates one key in the emulator through the AWS API, as a team would outside orch, and prints
its key id: make_key.py ENDPOINT ACCOUNT REGION ALIAS POLICY_FILE. The account is reached through
its role orch-brownfield (scripts/brownfield.py creates it)."""
import sys

import boto3

endpoint, account, region, alias, policy_file = sys.argv[1:6]
base = dict(endpoint_url=endpoint, region_name=region,
            aws_access_key_id="orch-sandbox", aws_secret_access_key="orch-sandbox")
creds = boto3.client("sts", **base).assume_role(
    RoleArn=f"arn:aws:iam::{account}:role/orch-brownfield", RoleSessionName="make-key")["Credentials"]
kms = boto3.client("kms", endpoint_url=endpoint, region_name=region,
                   aws_access_key_id=creds["AccessKeyId"],
                   aws_secret_access_key=creds["SecretAccessKey"],
                   aws_session_token=creds["SessionToken"])
key = kms.create_key(Description="Written as orch would write it", Policy=open(policy_file).read(),
                     Tags=[{"TagKey": "Team", "TagValue": "platform"}])["KeyMetadata"]
kms.enable_key_rotation(KeyId=key["KeyId"])
kms.create_alias(AliasName=f"alias/{alias}", TargetKeyId=key["KeyId"])
print(key["KeyId"])
