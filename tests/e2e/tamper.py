"""Changes keys behind orch's back through the AWS API, as a colleague in the console or a script
would: tamper.py ENDPOINT CHANGES_JSON, where CHANGES_JSON is a list of
{"account", "region", "op", ...}. Each account is reached through its role orch-inspect (which the
emulator exempts from strict role checks). Ops: add_principal (key, principal, actions),
disable_rotation (key), tag (key, tag, value), describe (key, description), delete_alias (alias),
schedule_deletion (key), disable (key)."""
import json
import sys

import boto3


def kms(endpoint, account, region):
    base = dict(endpoint_url=endpoint, region_name=region,
                aws_access_key_id="orch-sandbox", aws_secret_access_key="orch-sandbox")
    creds = boto3.client("sts", **base).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/orch-inspect", RoleSessionName="tamper")["Credentials"]
    return boto3.client("kms", endpoint_url=endpoint, region_name=region,
                        aws_access_key_id=creds["AccessKeyId"],
                        aws_secret_access_key=creds["SecretAccessKey"],
                        aws_session_token=creds["SessionToken"])


def main():
    endpoint, changes = sys.argv[1], json.loads(sys.argv[2])
    for c in changes:
        client, op = kms(endpoint, c["account"], c["region"]), c["op"]
        if op == "add_principal":
            policy = json.loads(client.get_key_policy(KeyId=c["key"], PolicyName="default")["Policy"])
            policy["Statement"].append({"Sid": "AddedByHand", "Effect": "Allow",
                                        "Principal": {"AWS": c["principal"]},
                                        "Action": c["actions"], "Resource": "*"})
            client.put_key_policy(KeyId=c["key"], PolicyName="default", Policy=json.dumps(policy))
        elif op == "disable_rotation":
            client.disable_key_rotation(KeyId=c["key"])
        elif op == "tag":
            client.tag_resource(KeyId=c["key"], Tags=[{"TagKey": c["tag"], "TagValue": c["value"]}])
        elif op == "describe":
            client.update_key_description(KeyId=c["key"], Description=c["description"])
        elif op == "delete_alias":
            client.delete_alias(AliasName=c["alias"])
        elif op == "schedule_deletion":
            client.schedule_key_deletion(KeyId=c["key"], PendingWindowInDays=7)
        elif op == "disable":
            client.disable_key(KeyId=c["key"])
        else:
            sys.exit(f"tamper.py: unknown op {op}")


main()
