from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from order_processor.config import QueueKind, Settings
from order_processor.deployment.provision import Action, summarize
from tests.support import Clients, destroy


@pytest.fixture
def cleanup(settings: Settings) -> Iterator[None]:
    yield
    destroy(settings)


@pytest.mark.usefixtures("cleanup")
def test_second_run_changes_nothing_and_says_so(settings: Settings, clients: Clients) -> None:
    first = clients.provisioner().apply(settings.resources())
    second = clients.provisioner().apply(settings.resources())

    assert {c.action for c in first} == {Action.CREATED}
    assert len(first) == 21
    assert [(c.kind, c.name) for c in second] == [(c.kind, c.name) for c in first]
    assert {c.action for c in second} == {Action.UNCHANGED}
    assert summarize(second) == "nothing to change: all 21 resources are as specified"


def test_commands_queue_is_fifo_with_redrive_to_its_dead_letter_queue(
    provisioned: Settings, clients: Clients
) -> None:
    resources = provisioned.resources()
    commands = clients.queue_url(resources.commands_queue.name)
    attributes = clients.sqs.get_queue_attributes(QueueUrl=commands, AttributeNames=["All"])[
        "Attributes"
    ]
    dlq_url = clients.queue_url(f"{provisioned.prefix}-order-commands-dlq.fifo")
    dlq_arn = clients.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]

    assert resources.commands_queue.name.endswith("-order-commands.fifo")
    assert attributes["FifoQueue"] == "true"
    assert attributes["ContentBasedDeduplication"] == "true"
    assert attributes["DeduplicationScope"] == "messageGroup"
    assert attributes["FifoThroughputLimit"] == "perMessageGroupId"
    assert attributes["ReceiveMessageWaitTimeSeconds"] == "20"
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": 50,
    }


def test_tables_have_their_indexes_and_ttl(provisioned: Settings, clients: Clients) -> None:
    resources = provisioned.resources()

    def indexes(table: str) -> dict[str, list[tuple[str, str]]]:
        described = clients.dynamodb.describe_table(TableName=table)["Table"]
        return {
            index["IndexName"]: [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]]
            for index in described.get("GlobalSecondaryIndexes", [])
        }

    assert indexes(resources.users_table) == {"EmailIndex": [("email", "HASH")]}
    assert indexes(resources.orders_table) == {
        "UserOrdersIndex": [("username", "HASH"), ("created_key", "RANGE")],
        "OpenLimitOrders": [("book_key", "HASH"), ("limit_price", "RANGE")],
        "OpenStopOrders": [("stop_key", "HASH"), ("stop_price", "RANGE")],
        "TrailingStops": [("trail_key", "HASH"), ("best_price", "RANGE")],
        "FallTriggers": [("fall_key", "HASH"), ("fall_price", "RANGE")],
        "RiseTriggers": [("rise_key", "HASH"), ("rise_price", "RANGE")],
        "ExpiryIndex": [("expiry_shard", "HASH"), ("expires_at", "RANGE")],
        "InFlightIndex": [("in_flight_shard", "HASH"), ("updated_at", "RANGE")],
    }
    assert indexes(resources.inventory_table) == {}
    ttl = clients.dynamodb.describe_time_to_live(TableName=resources.users_table)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "ttl"
    assert ttl["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"


def test_order_events_reach_the_status_queue_raw(provisioned: Settings, clients: Clients) -> None:
    resources = provisioned.resources()
    topic_arn = clients.sns.create_topic(Name=resources.events_topic)["TopicArn"]
    status_url = clients.queue_url(resources.order_status_queue.name)
    policy = clients.sqs.get_queue_attributes(QueueUrl=status_url, AttributeNames=["Policy"])

    clients.sns.publish(
        TopicArn=topic_arn,
        Message='{"event_type": "order.completed"}',
        MessageAttributes={"event_type": {"DataType": "String", "StringValue": "order.completed"}},
    )

    messages = _receive_one(clients, status_url, deadline_seconds=20)
    assert messages["Body"] == '{"event_type": "order.completed"}'
    assert messages["MessageAttributes"]["event_type"]["StringValue"] == "order.completed"
    statement = json.loads(policy["Attributes"]["Policy"])["Statement"][0]
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == topic_arn


@pytest.mark.usefixtures("cleanup")
def test_drifted_resources_are_put_back(settings: Settings, clients: Clients) -> None:
    resources = settings.resources()
    clients.provisioner().apply(resources)
    commands = clients.queue_url(resources.commands_queue.name)
    clients.sqs.set_queue_attributes(QueueUrl=commands, Attributes={"VisibilityTimeout": "5"})
    topic_arn = clients.sns.create_topic(Name=resources.events_topic)["TopicArn"]
    subscription = clients.sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"][0]
    clients.sns.set_subscription_attributes(
        SubscriptionArn=subscription["SubscriptionArn"],
        AttributeName="RawMessageDelivery",
        AttributeValue="false",
    )

    changes = clients.provisioner().apply(resources)

    updated = {(c.kind, c.name): c.detail for c in changes if c.action is Action.UPDATED}
    assert updated == {
        ("queue", resources.commands_queue.name): "set VisibilityTimeout",
        ("subscription", f"{resources.events_topic} -> {resources.order_status_queue.name}"): (
            "raw delivery on"
        ),
    }
    attributes = clients.sqs.get_queue_attributes(
        QueueUrl=commands, AttributeNames=["VisibilityTimeout"]
    )
    assert attributes["Attributes"]["VisibilityTimeout"] == "10"


def test_standard_queue_kind_makes_standard_queues(aws_endpoint: str, prefix: str) -> None:
    settings = Settings(endpoint_url=aws_endpoint, prefix=prefix, queue_kind=QueueKind.STANDARD)
    clients = Clients(settings)

    try:
        clients.provisioner().apply(settings.resources())
        url = clients.queue_url(f"{prefix}-order-commands")
        attributes = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    finally:
        destroy(settings)

    assert "FifoQueue" not in attributes["Attributes"]
    redrive = json.loads(attributes["Attributes"]["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(f":{prefix}-order-commands-dlq")


def _receive_one(clients: Clients, url: str, deadline_seconds: float) -> dict[str, Any]:
    """Long-poll until a message arrives or the deadline passes (SNS delivers async)."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        response = clients.sqs.receive_message(
            QueueUrl=url, WaitTimeSeconds=2, MessageAttributeNames=["All"]
        )
        if response.get("Messages"):
            message: dict[str, Any] = response["Messages"][0]
            return message
    raise AssertionError(f"no message on {url} within {deadline_seconds} s")
