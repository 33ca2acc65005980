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
Everything else is moto as is.

Usage: emulator.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""
import copy
import json
import os
import sys
import threading

os.environ["MOTO_S3_ALLOW_CROSSACCOUNT_ACCESS"] = "false"

from moto.core.responses import ActionResult
from moto.kms import models, responses
from moto.kms.models import kms_backends
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


models.KmsBackend.replicate_key = replicate_key
responses.KmsResponse.replicate_key = replicate_key_response
moto_get_bucket_notification = s3_responses.S3Response.get_bucket_notification
s3_responses.S3Response.get_bucket_notification = get_bucket_notification
moto_put_object = s3_responses.S3Response.put_object
s3_responses.S3Response.put_object = put_object

if __name__ == "__main__":
    from moto.server import main
    sys.exit(main())
