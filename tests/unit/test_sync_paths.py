"""The synchronous boto3 paths (provisioning, the sync producer, status) over moto's
in-process AWS: single-client calls, where moto is mature. The emulator tests cover the
same code against a real endpoint; these run in a second with no network."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from order_processor.deployment.provision import Action, Provisioner
from order_processor.deployment.resources import Resources
from order_processor.domain.orders import OrderCreate, OrderType
from order_processor.messaging.producer import CommandFactory, SyncProducer
from order_processor.ops.status import read_status
from order_processor.security.tokens import TokenManager

RESOURCES = Resources("unit", fifo_commands=True, visibility_timeout=60, max_receive_count=5)


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        yield {
            name: boto3.client(name, region_name="us-east-1") for name in ("dynamodb", "sqs", "sns")
        }


def test_provisioning_creates_everything_once_and_then_changes_nothing(
    aws: dict[str, Any],
) -> None:
    provisioner = Provisioner(aws["dynamodb"], aws["sqs"], aws["sns"])

    first = provisioner.apply(RESOURCES)
    second = provisioner.apply(RESOURCES)

    assert {c.action for c in first} == {Action.CREATED}
    assert {c.action for c in second} == {Action.UNCHANGED}
    tables = set(aws["dynamodb"].list_tables()["TableNames"])
    assert tables == {t.name for t in RESOURCES.tables}
    orders = aws["dynamodb"].describe_table(TableName=RESOURCES.orders_table)["Table"]
    assert {i["IndexName"] for i in orders["GlobalSecondaryIndexes"]} == {
        "UserOrdersIndex",
        "OpenLimitOrders",
        "OpenStopOrders",
        "TrailingStops",
        "FallTriggers",
        "RiseTriggers",
        "ExpiryIndex",
        "InFlightIndex",
    }


def test_a_drifted_visibility_timeout_is_put_back(aws: dict[str, Any]) -> None:
    provisioner = Provisioner(aws["dynamodb"], aws["sqs"], aws["sns"])
    provisioner.apply(RESOURCES)
    url = aws["sqs"].get_queue_url(QueueName=RESOURCES.commands_queue.name)["QueueUrl"]
    aws["sqs"].set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "5"})

    changes = provisioner.apply(RESOURCES)

    updated = [c for c in changes if c.action is Action.UPDATED]
    assert [c.name for c in updated] == [RESOURCES.commands_queue.name]
    attributes = aws["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    assert attributes["Attributes"]["VisibilityTimeout"] == "60"


def test_the_sync_producer_groups_by_user_and_leaves_deduplication_to_the_content(
    aws: dict[str, Any],
) -> None:
    Provisioner(aws["dynamodb"], aws["sqs"], aws["sns"]).apply(RESOURCES)
    url = aws["sqs"].get_queue_url(QueueName=RESOURCES.commands_queue.name)["QueueUrl"]
    factory = CommandFactory(TokenManager("k" * 40))
    request = OrderCreate(order_type=OrderType.MARKET_BUY, asset_id="BTC", quantity="1")
    command = factory.place_order("alice_01", request)

    order_id = SyncProducer(aws["sqs"], url, fifo=True).send(command)
    SyncProducer(aws["sqs"], url, fifo=True).send(command)  # the same body: dropped
    received = aws["sqs"].receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )["Messages"]

    assert order_id == command.payload.order_id
    assert len(received) == 1
    assert received[0]["Attributes"]["MessageGroupId"] == "alice_01"
    assert json.loads(received[0]["Body"])["command_id"] == command.command_id


def test_status_counts_queue_depths_and_table_items(aws: dict[str, Any]) -> None:
    Provisioner(aws["dynamodb"], aws["sqs"], aws["sns"]).apply(RESOURCES)
    url = aws["sqs"].get_queue_url(QueueName=RESOURCES.price_updates_queue.name)["QueueUrl"]
    aws["sqs"].send_message(QueueUrl=url, MessageBody="{}")

    status = read_status(RESOURCES, aws["dynamodb"], aws["sqs"])

    depths = {q.name: (q.visible, q.dead_letters) for q in status.queues}
    assert depths[RESOURCES.price_updates_queue.name] == (1, 0)
    assert status.missing == []
    assert {t.items for t in status.tables} == {0}


class BuildingIndexes:
    """DynamoDB as it adds an index to a table: CREATING for two reads, then ACTIVE."""

    def __init__(self, present: list[str]) -> None:
        self.indexes = {name: "ACTIVE" for name in present}
        self.reads_until_active = 0
        self.asked: list[tuple[str, list[str]]] = []  # (index asked for, those building)

    def describe_table(self, TableName: str) -> dict[str, Any]:
        if self.reads_until_active == 0:
            self.indexes = dict.fromkeys(self.indexes, "ACTIVE")
        self.reads_until_active = max(self.reads_until_active - 1, 0)
        indexes = [{"IndexName": n, "IndexStatus": s} for n, s in self.indexes.items()]
        return {"Table": {"TableName": TableName, "GlobalSecondaryIndexes": indexes}}

    def update_table(self, **request: Any) -> None:
        name = request["GlobalSecondaryIndexUpdates"][0]["Create"]["IndexName"]
        building = [n for n, s in self.indexes.items() if s != "ACTIVE"]
        self.asked.append((name, building))
        self.indexes[name] = "CREATING"
        self.reads_until_active = 2


def test_provisioning_adds_the_missing_indexes_of_a_table_one_after_another() -> None:
    """DynamoDB refuses a second new index while one is being built (an upgrade adds two:
    FallTriggers and RiseTriggers)."""
    orders = RESOURCES.tables[1]
    dynamodb = BuildingIndexes([i.name for i in orders.indexes][:-2])
    pauses: list[float] = []

    change = Provisioner(dynamodb, None, None, pause=pauses.append)._ensure_table(orders)

    assert [name for name, _ in dynamodb.asked] == [i.name for i in orders.indexes][-2:]
    assert [building for _, building in dynamodb.asked] == [[], []]
    assert change.detail == "added " + ", ".join(i.name for i in orders.indexes[-2:])
    assert len(pauses) >= 1
