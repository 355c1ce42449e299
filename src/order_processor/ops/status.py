"""`order-processor status`: queue depths, table item counts and the topic of one
deployment."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from order_processor.deployment.provision import MISSING_QUEUE_CODES
from order_processor.deployment.resources import QueueSpec, Resources

DEPTH_ATTRIBUTES = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]


@dataclass(frozen=True)
class QueueDepth:
    name: str
    visible: int | None  # None: the queue does not exist
    in_flight: int | None
    dead_letters: int | None  # None: no dead-letter queue (or it is missing)


@dataclass(frozen=True)
class TableCount:
    name: str
    items: int | None  # None: the table does not exist


@dataclass(frozen=True)
class TopicState:
    name: str
    exists: bool


@dataclass(frozen=True)
class DeploymentStatus:
    queues: list[QueueDepth]
    tables: list[TableCount]
    topics: list[TopicState] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return (
            [q.name for q in self.queues if q.visible is None]
            + [t.name for t in self.tables if t.items is None]
            + [t.name for t in self.topics if not t.exists]
        )

    def as_dict(self) -> dict[str, Any]:
        """For `status --output json`: null counts are missing resources."""
        return {
            "queues": [asdict(q) for q in self.queues],
            "tables": [asdict(t) for t in self.tables],
            "topics": [asdict(t) for t in self.topics],
            "missing": self.missing,
        }

    def render(self) -> str:
        lines = [f"{'queue':<44} {'visible':>8} {'in flight':>10} {'DLQ':>6}"]
        for q in self.queues:
            if q.visible is None:
                lines.append(f"{q.name:<44} {'missing':>8}")
                continue
            dlq = "-" if q.dead_letters is None else str(q.dead_letters)
            lines.append(f"{q.name:<44} {q.visible:>8} {q.in_flight:>10} {dlq:>6}")
        lines.append("")
        lines.append(f"{'table':<44} {'items':>8}")
        for t in self.tables:
            items = "missing" if t.items is None else str(t.items)
            lines.append(f"{t.name:<44} {items:>8}")
        for topic in self.topics:
            if not topic.exists:
                lines.append("")
                lines.append(f"{'topic ' + topic.name:<44} {'missing':>8}")
        if self.missing:
            lines.append("")
            lines.append("missing resources: run `order-processor provision`")
        return "\n".join(lines)


def read_status(
    resources: Resources, dynamodb: Any, sqs: Any, sns: Any | None = None
) -> DeploymentStatus:
    """Queue depths and table counts; with an SNS client, also whether each topic exists."""
    dead_letter_names = {q.dead_letter.name for q in resources.queues if q.dead_letter}
    queues = [
        _queue_depth(sqs, queue)
        for queue in resources.queues
        if queue.name not in dead_letter_names
    ]
    # ItemCount: exact on the emulators; on AWS refreshed about every six hours.
    tables = [_table_count(dynamodb, table.name) for table in resources.tables]
    if sns is None:
        return DeploymentStatus(queues, tables)
    present = _topic_names(sns)
    topics = [TopicState(name, name in present) for name in resources.topics]
    return DeploymentStatus(queues, tables, topics)


def _queue_depth(sqs: Any, queue: QueueSpec) -> QueueDepth:
    depth = _depth(sqs, queue.name)
    if depth is None:
        return QueueDepth(queue.name, None, None, None)
    dead = _depth(sqs, queue.dead_letter.name) if queue.dead_letter else None
    return QueueDepth(queue.name, depth[0], depth[1], None if dead is None else dead[0])


def _depth(sqs: Any, name: str) -> tuple[int, int] | None:
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] in MISSING_QUEUE_CODES:
            return None
        raise
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=DEPTH_ATTRIBUTES)
    values = attributes["Attributes"]
    return int(values[DEPTH_ATTRIBUTES[0]]), int(values[DEPTH_ATTRIBUTES[1]])


def _table_count(dynamodb: Any, name: str) -> TableCount:
    try:
        table = dynamodb.describe_table(TableName=name)["Table"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return TableCount(name, None)
        raise
    return TableCount(name, int(table.get("ItemCount", 0)))


def _topic_names(sns: Any) -> set[str]:
    return {
        topic["TopicArn"].rsplit(":", 1)[-1]
        for page in sns.get_paginator("list_topics").paginate()
        for topic in page["Topics"]
    }
