"""Create every table, queue, topic and subscription of `Resources`, idempotently.

Each resource is compared with its specification: missing → created, different →
updated, equal → unchanged. A second run therefore reports only "unchanged".
Synchronous botocore clients and the standard library only (see resources.py for why).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from order_processor.deployment.resources import (
    Index,
    QueueSpec,
    Resources,
    TableSpec,
    queue_policy,
)

INDEX_POLL_SECONDS = 5
MISSING_QUEUE_CODES = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


class Action(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Change:
    kind: str
    name: str
    action: Action
    detail: str = ""

    def __str__(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.action.value:<9}  {self.kind:<12}  {self.name}{detail}"


@dataclass(frozen=True)
class Provisioner:
    dynamodb: Any
    sqs: Any
    sns: Any
    pause: Callable[[float], None] = field(default=time.sleep, kw_only=True)

    def apply(self, resources: Resources) -> list[Change]:
        changes = [self._ensure_table(table) for table in resources.tables]
        changes += [self._ensure_ttl(t) for t in resources.tables if t.ttl_attribute]
        queue_arns: dict[str, str] = {}
        for queue in resources.queues:
            change, queue_arns[queue.name] = self._ensure_queue(queue, queue_arns)
            changes.append(change)
        topic_arns: dict[str, str] = {}
        for topic in resources.topics:
            change, topic_arns[topic] = self._ensure_topic(topic)
            changes.append(change)
        for subscription in resources.subscriptions:
            topic_arn = topic_arns[subscription.topic]
            queue_arn = queue_arns[subscription.queue.name]
            changes.append(self._ensure_queue_policy(subscription.queue, queue_arn, topic_arn))
            changes.append(self._ensure_subscription(topic_arn, queue_arn))
        return changes

    # tables

    def _ensure_table(self, spec: TableSpec) -> Change:
        try:
            table = self.dynamodb.describe_table(TableName=spec.name)["Table"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            self._create_table(spec)
            return Change("table", spec.name, Action.CREATED)
        present = {index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])}
        missing = [index for index in spec.indexes if index.name not in present]
        for index in missing:
            # DynamoDB builds one new index of a table at a time (a second one asked for
            # meanwhile is refused): each is awaited before the next is asked for.
            self._await_indexes(spec.name)
            self.dynamodb.update_table(
                TableName=spec.name,
                AttributeDefinitions=spec.attribute_definitions(),
                GlobalSecondaryIndexUpdates=[{"Create": _index_definition(index)}],
            )
        if missing:
            detail = "added " + ", ".join(index.name for index in missing)
            return Change("table", spec.name, Action.UPDATED, detail)
        return Change("table", spec.name, Action.UNCHANGED)

    def _await_indexes(self, table: str) -> None:
        """Until every index of `table` is ACTIVE (an index over existing items is
        backfilled first: minutes on a large table)."""
        while True:
            described = self.dynamodb.describe_table(TableName=table)["Table"]
            indexes = described.get("GlobalSecondaryIndexes", [])
            if all(index.get("IndexStatus", "ACTIVE") == "ACTIVE" for index in indexes):
                return
            self.pause(INDEX_POLL_SECONDS)

    def _create_table(self, spec: TableSpec) -> None:
        arguments: dict[str, Any] = {
            "TableName": spec.name,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": spec.attribute_definitions(),
            "KeySchema": spec.key_schema(),
        }
        if spec.indexes:
            arguments["GlobalSecondaryIndexes"] = [_index_definition(i) for i in spec.indexes]
        self.dynamodb.create_table(**arguments)
        waiter = self.dynamodb.get_waiter("table_exists")
        waiter.wait(TableName=spec.name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})

    def _ensure_ttl(self, spec: TableSpec) -> Change:
        described = self.dynamodb.describe_time_to_live(TableName=spec.name)
        current = described["TimeToLiveDescription"]
        name = f"{spec.name}.{spec.ttl_attribute}"
        enabled = current.get("TimeToLiveStatus") in {"ENABLED", "ENABLING"}
        if enabled and current.get("AttributeName") == spec.ttl_attribute:
            return Change("ttl", name, Action.UNCHANGED)
        self.dynamodb.update_time_to_live(
            TableName=spec.name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
        )
        return Change("ttl", name, Action.CREATED)

    # queues

    def _ensure_queue(self, spec: QueueSpec, known_arns: dict[str, str]) -> tuple[Change, str]:
        dead_letter_arn = known_arns[spec.dead_letter.name] if spec.dead_letter else None
        wanted = spec.attributes(dead_letter_arn)
        try:
            url = self.sqs.get_queue_url(QueueName=spec.name)["QueueUrl"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in MISSING_QUEUE_CODES:
                raise
            url = self.sqs.create_queue(QueueName=spec.name, Attributes=wanted)["QueueUrl"]
            return Change("queue", spec.name, Action.CREATED), self._queue_arn(url)
        current = self._queue_attributes(url)
        different = {k: v for k, v in wanted.items() if not _same_attribute(k, current.get(k), v)}
        # FifoQueue cannot change after creation; the name's suffix already fixes it.
        different.pop("FifoQueue", None)
        if different:
            self.sqs.set_queue_attributes(QueueUrl=url, Attributes=different)
            detail = "set " + ", ".join(sorted(different))
            return Change("queue", spec.name, Action.UPDATED, detail), current["QueueArn"]
        return Change("queue", spec.name, Action.UNCHANGED), current["QueueArn"]

    def _queue_attributes(self, url: str) -> dict[str, str]:
        response = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        attributes: dict[str, str] = response["Attributes"]
        return attributes

    def _queue_arn(self, url: str) -> str:
        return self._queue_attributes(url)["QueueArn"]

    def _ensure_queue_policy(self, spec: QueueSpec, queue_arn: str, topic_arn: str) -> Change:
        url = self.sqs.get_queue_url(QueueName=spec.name)["QueueUrl"]
        wanted = queue_policy(queue_arn, topic_arn)
        current = self._queue_attributes(url).get("Policy")
        if current is not None and _same_attribute("Policy", current, wanted):
            return Change("queue policy", spec.name, Action.UNCHANGED)
        self.sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": wanted})
        action = Action.CREATED if current is None else Action.UPDATED
        return Change("queue policy", spec.name, action)

    # topics and subscriptions

    def _ensure_topic(self, name: str) -> tuple[Change, str]:
        existing = self._find_topic(name)
        if existing is not None:
            return Change("topic", name, Action.UNCHANGED), existing
        arn: str = self.sns.create_topic(Name=name)["TopicArn"]
        return Change("topic", name, Action.CREATED), arn

    def _find_topic(self, name: str) -> str | None:
        for page in self.sns.get_paginator("list_topics").paginate():
            for topic in page["Topics"]:
                arn: str = topic["TopicArn"]
                if arn.rsplit(":", 1)[-1] == name:
                    return arn
        return None

    def _ensure_subscription(self, topic_arn: str, queue_arn: str) -> Change:
        name = f"{topic_arn.rsplit(':', 1)[-1]} -> {queue_arn.rsplit(':', 1)[-1]}"
        paginator = self.sns.get_paginator("list_subscriptions_by_topic")
        for page in paginator.paginate(TopicArn=topic_arn):
            for subscription in page["Subscriptions"]:
                if subscription["Endpoint"] == queue_arn and subscription["Protocol"] == "sqs":
                    return self._ensure_raw_delivery(subscription["SubscriptionArn"], name)
        self.sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true"},
            ReturnSubscriptionArn=True,
        )
        return Change("subscription", name, Action.CREATED, "raw delivery")

    def _ensure_raw_delivery(self, subscription_arn: str, name: str) -> Change:
        attributes = self.sns.get_subscription_attributes(SubscriptionArn=subscription_arn)
        if attributes["Attributes"].get("RawMessageDelivery") == "true":
            return Change("subscription", name, Action.UNCHANGED, "raw delivery")
        self.sns.set_subscription_attributes(
            SubscriptionArn=subscription_arn,
            AttributeName="RawMessageDelivery",
            AttributeValue="true",
        )
        return Change("subscription", name, Action.UPDATED, "raw delivery on")


def _index_definition(index: Index) -> dict[str, Any]:
    return {
        "IndexName": index.name,
        "KeySchema": index.key_schema(),
        "Projection": {"ProjectionType": "ALL"},
    }


def _same_attribute(name: str, current: str | None, wanted: str) -> bool:
    if current is None:
        return False
    if name in {"RedrivePolicy", "Policy"}:
        return bool(json.loads(current) == json.loads(wanted))
    return current == wanted


def summarize(changes: list[Change]) -> str:
    counts = {action: sum(1 for c in changes if c.action is action) for action in Action}
    if counts[Action.CREATED] == 0 and counts[Action.UPDATED] == 0:
        return f"nothing to change: all {len(changes)} resources are as specified"
    return ", ".join(f"{counts[a]} {a.value}" for a in Action)


def main() -> int:
    """Entry point for hosts without the project's dependencies (the LocalStack hook):
    `python -m order_processor.deployment.provision`, configured by the same environment variables.
    Needs only botocore, which every LocalStack image carries."""
    import botocore.session

    prefix = os.environ.get("ORDER_PROCESSOR_PREFIX", "op")
    fifo = os.environ.get("ORDER_PROCESSOR_QUEUE_KIND", "fifo") != "standard"
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    session = botocore.session.get_session()
    clients = [
        session.create_client(name, region_name=region, endpoint_url=endpoint)
        for name in ("dynamodb", "sqs", "sns")
    ]
    resources = Resources(
        prefix,
        fifo_commands=fifo,
        visibility_timeout=int(os.environ.get("ORDER_PROCESSOR_VISIBILITY_TIMEOUT", "10")),
        max_receive_count=int(os.environ.get("ORDER_PROCESSOR_MAX_RECEIVE_COUNT", "50")),
    )
    changes = Provisioner(*clients).apply(resources)
    for change in changes:
        print(change)
    print(summarize(changes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
