"""The tables, queues, topic, subscriptions and queue policies of `Resources`, as
CloudFormation resources: the same names, keys, indexes, TTL and queue attributes that
`provision` creates, plus what only a production account needs (point-in-time recovery,
deletion protection, encryption with an optional customer-managed key, provisioned
capacity on request)."""

from __future__ import annotations

import json
from typing import Any

from order_processor.deployment.resources import (
    Index,
    QueueSpec,
    Resources,
    TableSpec,
    queue_policy,
)
from order_processor.deployment.template.names import (
    NO_VALUE,
    get_att,
    logical_id,
    ref,
    sub,
    subbed,
    template_arns,
)

# The queue attributes of resources.py that are numbers or booleans in CloudFormation.
NUMBERS = {"VisibilityTimeout", "ReceiveMessageWaitTimeSeconds", "MessageRetentionPeriod"}
BOOLEANS = {"FifoQueue", "ContentBasedDeduplication"}
# A stand-in for the dead-letter queue's ARN in QueueSpec.attributes(), replaced by GetAtt.
DEAD_LETTER = "DEAD-LETTER-ARN"


def storage_resources(resources: Resources) -> dict[str, Any]:
    built: dict[str, Any] = {}
    for table in resources.tables:
        built[logical_id(table.name, "Table")] = _table(table)
    for queue in resources.queues:
        built[logical_id(queue.name, "Queue")] = _queue(queue, resources)
    for topic in resources.topics:
        built[logical_id(topic, "Topic")] = _topic(topic)
    for subscription in resources.subscriptions:
        queue_id = logical_id(subscription.queue.name, "Queue")
        topic_id = logical_id(subscription.topic, "Topic")
        built[logical_id(subscription.queue.name, "Subscription")] = {
            "Type": "AWS::SNS::Subscription",
            "Properties": {
                "TopicArn": ref(topic_id),
                "Protocol": "sqs",
                "Endpoint": get_att(queue_id, "Arn"),
                "RawMessageDelivery": subscription.raw_delivery,
            },
        }
        policy = queue_policy(f"${{{queue_id}.Arn}}", f"${{{topic_id}}}")
        built[logical_id(subscription.queue.name, "QueuePolicy")] = {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {"Queues": [ref(queue_id)], "PolicyDocument": subbed(json.loads(policy))},
        }
    return built


def _table(spec: TableSpec) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "TableName": sub(spec.name),
        "BillingMode": ref("BillingMode"),
        "ProvisionedThroughput": _capacity(),
        "AttributeDefinitions": spec.attribute_definitions(),
        "KeySchema": spec.key_schema(),
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "DeletionProtectionEnabled": True,
        "SSESpecification": {
            "Fn::If": [
                "HasKmsKey",
                {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": ref("KmsKeyArn")},
                {"SSEEnabled": False},  # DynamoDB's default: encrypted with an AWS owned key
            ]
        },
    }
    if spec.indexes:
        properties["GlobalSecondaryIndexes"] = [_index(index) for index in spec.indexes]
    if spec.ttl_attribute:
        properties["TimeToLiveSpecification"] = {
            "AttributeName": spec.ttl_attribute,
            "Enabled": True,
        }
    # Retained when the stack is deleted or the table replaced: the ledger outlives a stack.
    return {
        "Type": "AWS::DynamoDB::Table",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": properties,
    }


def _index(index: Index) -> dict[str, Any]:
    return {
        "IndexName": index.name,
        "KeySchema": index.key_schema(),
        "Projection": {"ProjectionType": "ALL"},
        "ProvisionedThroughput": _capacity(),
    }


def _capacity() -> dict[str, Any]:
    return {
        "Fn::If": [
            "Provisioned",
            {
                "ReadCapacityUnits": ref("ReadCapacityUnits"),
                "WriteCapacityUnits": ref("WriteCapacityUnits"),
            },
            NO_VALUE,
        ]
    }


def _queue(spec: QueueSpec, resources: Resources) -> dict[str, Any]:
    properties: dict[str, Any] = {"QueueName": sub(spec.name)}
    attributes = spec.attributes(DEAD_LETTER if spec.dead_letter else None)
    for name, value in attributes.items():
        if name in NUMBERS:
            properties[name] = int(value)
        elif name in BOOLEANS:
            properties[name] = value == "true"
        elif name == "RedrivePolicy":
            assert spec.dead_letter is not None
            redrive = json.loads(value)
            redrive["deadLetterTargetArn"] = get_att(logical_id(spec.dead_letter.name, "Queue"))
            properties[name] = redrive
        else:
            properties[name] = value
    sources = [q for q in resources.queues if q.dead_letter and q.dead_letter.name == spec.name]
    if sources:  # a dead-letter queue: only its own source queue may redrive into it
        # By name: a GetAtt of the source queue would be a cycle (its RedrivePolicy names this).
        properties["RedriveAllowPolicy"] = {
            "redrivePermission": "byQueue",
            "sourceQueueArns": [sub(template_arns().of("sqs", q.name)) for q in sources],
        }
    properties["KmsMasterKeyId"] = {"Fn::If": ["HasKmsKey", ref("KmsKeyArn"), NO_VALUE]}
    properties["SqsManagedSseEnabled"] = {"Fn::If": ["HasKmsKey", NO_VALUE, True]}
    # Said out loud: a queue holds messages in transit, not records; deleting the stack
    # deletes them (the tables, which hold the records, are retained).
    return {
        "Type": "AWS::SQS::Queue",
        "DeletionPolicy": "Delete",
        "UpdateReplacePolicy": "Delete",
        "Properties": properties,
    }


def _topic(name: str) -> dict[str, Any]:
    return {
        "Type": "AWS::SNS::Topic",
        "Properties": {
            "TopicName": sub(name),
            # Without a key of its own, SNS's AWS managed key.
            "KmsMasterKeyId": {"Fn::If": ["HasKmsKey", ref("KmsKeyArn"), "alias/aws/sns"]},
        },
    }
