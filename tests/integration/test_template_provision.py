"""The resources `provision` creates, read back from the emulator, against the CloudFormation
template (deploy/aws/order-processor.json) resolved for the same prefix and account: the
same tables, indexes, TTL, queues, attributes, redrive, subscriptions and queue policies;
what only the template adds (recovery, protection, encryption) on top."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from order_processor.config import Settings
from order_processor.deployment.resources import Resources
from tests.cloudformation import CACHE_NETWORK, Stack
from tests.support import Clients, destroy

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "aws" / "order-processor.json"
OIDC = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"


@dataclass(frozen=True)
class Deployed:
    resources: Resources
    account: str
    tables: dict[str, Any]
    queues: dict[str, Any]
    topics: list[str]
    subscriptions: list[dict[str, Any]]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(TEMPLATE.read_text())
    return loaded


@pytest.fixture(scope="module")
def deployed(aws_endpoint: str) -> Iterator[Deployed]:
    """What `provision` made of a fresh prefix, as the AWS APIs describe it."""
    settings = Settings(endpoint_url=aws_endpoint, prefix=f"cf{uuid.uuid4().hex[:10]}")
    resources = settings.resources()
    clients = Clients(settings)
    clients.provisioner().apply(resources)
    try:
        dynamodb, sqs, sns = clients.dynamodb, clients.sqs, clients.sns
        tables = {}
        for spec in resources.tables:
            table = dynamodb.describe_table(TableName=spec.name)["Table"]
            ttl = dynamodb.describe_time_to_live(TableName=spec.name)["TimeToLiveDescription"]
            tables[spec.name] = {**table, "ttl": ttl.get("AttributeName")}
        queues = {
            spec.name: sqs.get_queue_attributes(
                QueueUrl=clients.queue_url(spec.name), AttributeNames=["All"]
            )["Attributes"]
            for spec in resources.queues
        }
        topics = [
            t["TopicArn"]
            for t in sns.list_topics()["Topics"]
            if t["TopicArn"].rsplit(":", 1)[-1] in resources.topics
        ]
        subscriptions = [
            {
                **subscription,
                **sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])[
                    "Attributes"
                ],
            }
            for topic in topics
            for subscription in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
        ]
        account = topics[0].split(":")[4]
        yield Deployed(resources, account, tables, queues, topics, subscriptions)
    finally:
        destroy(settings)


def stack(template: dict[str, Any], deployed: Deployed) -> Stack:
    parameters = {"OidcProvider": OIDC, "Prefix": deployed.resources.prefix, **CACHE_NETWORK}
    return Stack(template, parameters, account=deployed.account)


def test_every_table_has_the_keys_indexes_ttl_and_capacity_provision_gives_it(
    template: dict[str, Any], deployed: Deployed
) -> None:
    declared = {
        p["TableName"]: p
        for p in stack(template, deployed).resources("AWS::DynamoDB::Table").values()
    }

    assert sorted(declared) == sorted(deployed.tables)
    for name, table in deployed.tables.items():
        mine = declared[name]
        assert mine["KeySchema"] == table["KeySchema"], name
        assert sorted(mine["AttributeDefinitions"], key=str) == sorted(
            table["AttributeDefinitions"], key=str
        ), name
        assert _indexes(mine.get("GlobalSecondaryIndexes", [])) == _indexes(
            table.get("GlobalSecondaryIndexes", [])
        ), name
        assert mine.get("TimeToLiveSpecification", {}).get("AttributeName") == table["ttl"], name
        assert mine["BillingMode"] == table["BillingModeSummary"]["BillingMode"], name
        assert "ProvisionedThroughput" not in mine
        # What only the template adds: recovery, protection, encryption.
        assert mine["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert mine["DeletionProtectionEnabled"] is True


def _indexes(indexes: list[dict[str, Any]]) -> dict[str, Any]:
    return {i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in indexes}


def test_every_queue_has_the_attributes_and_redrive_provision_gives_it(
    template: dict[str, Any], deployed: Deployed
) -> None:
    declared = {
        p["QueueName"]: p for p in stack(template, deployed).resources("AWS::SQS::Queue").values()
    }
    specs = {spec.name: spec for spec in deployed.resources.queues}

    assert sorted(declared) == sorted(deployed.queues)
    for name, attributes in deployed.queues.items():
        # The attributes provision sets (and compares on every run), as SQS reports them.
        spec = specs[name]
        for key in spec.attributes("any" if spec.dead_letter else None):
            assert _as_attribute(declared[name].get(key)) == _parsed(attributes[key]), (name, key)
        assert ("FifoQueue" in declared[name]) is name.endswith(".fifo")


def _as_attribute(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return value


def _parsed(value: str) -> Any:
    return json.loads(value) if value.startswith("{") else value


def test_the_topic_subscriptions_and_queue_policies_are_those_of_provision(
    template: dict[str, Any], deployed: Deployed
) -> None:
    resolved = stack(template, deployed)
    topics = resolved.resources("AWS::SNS::Topic").values()
    subscriptions = resolved.resources("AWS::SNS::Subscription").values()
    policies = {
        p["Queues"][0].rsplit("/", 1)[-1]: p["PolicyDocument"]
        for p in resolved.resources("AWS::SQS::QueuePolicy").values()
    }

    assert [t["TopicName"] for t in topics] == [a.rsplit(":", 1)[-1] for a in deployed.topics]
    assert sorted(
        (s["TopicArn"], s["Endpoint"], s["Protocol"], str(s["RawMessageDelivery"]).lower())
        for s in subscriptions
    ) == sorted(
        (s["TopicArn"], s["Endpoint"], s["Protocol"], s["RawMessageDelivery"])
        for s in deployed.subscriptions
    )
    assert not any("FilterPolicy" in s for s in [*subscriptions, *deployed.subscriptions])
    with_policy = {n: q["Policy"] for n, q in deployed.queues.items() if "Policy" in q}
    assert policies == {name: json.loads(policy) for name, policy in with_policy.items()}
