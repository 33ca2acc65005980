"""Creates the IAM roles a fleet's consumers name, as their owners would have before orch runs.

Usage: setup_roles.py ENDPOINT ROLE_ARN [ROLE_ARN...]
"""
import json
import sys

import boto3

TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


def main():
    endpoint = sys.argv[1]
    for arn in sys.argv[2:]:
        account, name = arn.split(":")[4], arn.rsplit("/", 1)[1]
        base = dict(endpoint_url=endpoint, region_name="us-east-1",
                    aws_access_key_id="orch-sandbox", aws_secret_access_key="orch-sandbox")
        creds = boto3.client("sts", **base).assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/orch-setup", RoleSessionName="setup")["Credentials"]
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id=creds["AccessKeyId"],
                           aws_secret_access_key=creds["SecretAccessKey"],
                           aws_session_token=creds["SessionToken"])
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)


if __name__ == "__main__":
    main()
