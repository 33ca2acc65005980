"""S3 as the end-to-end tests of the S3 backend see it, through the AWS API of the emulator.

Usage:
  s3.py show ENDPOINT ACCOUNT_ID BUCKET     the bucket as JSON: whether it exists, its versioning,
                                            encryption, public access block, policy, and objects
                                            (a state object's outputs read from its JSON)
  s3.py create ENDPOINT ACCOUNT_ID BUCKET   create the bucket in that account (a bucket of
                                            "another account", for bad-input tests)
  s3.py lock ENDPOINT ACCOUNT_ID BUCKET KEY WHO
                                            hold the state lock of KEY as another run would:
                                            KEY.tflock with terraform's lock info, written only
                                            if none exists (If-None-Match: *)
  s3.py unlock ENDPOINT ACCOUNT_ID BUCKET KEY
Each account is reached by assuming a role in it, as orch's backend does.
"""
import datetime
import json
import sys
import uuid

import boto3
from botocore.exceptions import ClientError


def client(endpoint, account):
    base = dict(endpoint_url=endpoint, region_name="us-east-1",
                aws_access_key_id="orch-sandbox", aws_secret_access_key="orch-sandbox")
    creds = boto3.client("sts", **base).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/orch-inspect", RoleSessionName="s3-test")["Credentials"]
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=creds["AccessKeyId"],
                        aws_secret_access_key=creds["SecretAccessKey"],
                        aws_session_token=creds["SessionToken"])


def optional(call, missing):
    try:
        return call()
    except ClientError as e:
        if e.response["Error"]["Code"] in missing:
            return None
        raise


def show(s3, bucket):
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as e:
        return {"exists": False, "error": e.response["Error"]["Code"]}
    encryption = optional(lambda: s3.get_bucket_encryption(Bucket=bucket),
                          ["ServerSideEncryptionConfigurationNotFoundError"])
    block = optional(lambda: s3.get_public_access_block(Bucket=bucket),
                     ["NoSuchPublicAccessBlockConfiguration"])
    policy = optional(lambda: s3.get_bucket_policy(Bucket=bucket), ["NoSuchBucketPolicy"])
    objects = {}
    for entry in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        key = entry["Key"]
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        item = {"size": entry["Size"]}
        if key.endswith(".tfstate"):
            state = json.loads(body)
            item["outputs"] = {k: v.get("value") for k, v in state.get("outputs", {}).items()}
            item["resources"] = [r["type"] for r in state.get("resources", []) if r.get("mode") == "managed"]
        objects[key] = item
    return {
        "exists": True,
        "versioning": s3.get_bucket_versioning(Bucket=bucket).get("Status"),
        "encryption": [r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
                       for r in (encryption or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])],
        "public_access_block": (block or {}).get("PublicAccessBlockConfiguration"),
        "policy": json.loads(policy["Policy"]) if policy else None,
        "objects": objects,
    }


def main(argv):
    command, endpoint, account, bucket = argv[1:5]
    s3 = client(endpoint, account)
    if command == "show":
        print(json.dumps(show(s3, bucket), indent=1, sort_keys=True))
    elif command == "create":
        s3.create_bucket(Bucket=bucket)
    elif command == "lock":
        key, who = argv[5:7]
        created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        info = {"ID": str(uuid.uuid4()), "Operation": "OperationTypeApply", "Info": "",
                "Who": who, "Version": "1.11.4", "Created": created, "Path": f"{bucket}/{key}"}
        s3.put_object(Bucket=bucket, Key=key + ".tflock", Body=json.dumps(info).encode(), IfNoneMatch="*")
        print(json.dumps(info))
    elif command == "unlock":
        s3.delete_object(Bucket=bucket, Key=argv[5] + ".tflock")
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv)
