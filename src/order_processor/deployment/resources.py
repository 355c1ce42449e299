"""The AWS resources of the design, as data: one definition for provisioning, status and
the workers.

Standard library only, on purpose: the LocalStack init hook runs provisioning with
LocalStack's own Python, which has boto3 but not this project's dependencies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

FIFO_SUFFIX = ".fifo"


@dataclass(frozen=True)
class Index:
    name: str
    hash_key: str
    range_key: str | None = None
    range_type: str = "S"

    def key_schema(self) -> list[dict[str, str]]:
        schema = [{"AttributeName": self.hash_key, "KeyType": "HASH"}]
        if self.range_key:
            schema.append({"AttributeName": self.range_key, "KeyType": "RANGE"})
        return schema


@dataclass(frozen=True)
class TableSpec:
    name: str
    indexes: tuple[Index, ...] = ()
    ttl_attribute: str | None = None

    def attribute_definitions(self) -> list[dict[str, str]]:
        types = {"PK": "S", "SK": "S"}
        for index in self.indexes:
            types[index.hash_key] = "S"
            if index.range_key:
                types[index.range_key] = index.range_type
        return [{"AttributeName": name, "AttributeType": kind} for name, kind in types.items()]

    def key_schema(self) -> list[dict[str, str]]:
        return [
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ]


@dataclass(frozen=True)
class QueueSpec:
    name: str
    fifo: bool = False
    visibility_timeout: int = 60
    wait_seconds: int = 20
    retention_seconds: int = 4 * 24 * 3600
    dead_letter: QueueSpec | None = None
    max_receive_count: int = 50

    def attributes(self, dead_letter_arn: str | None = None) -> dict[str, str]:
        """The attributes as SQS reports them back (all strings), for create and compare."""
        attributes = {
            "VisibilityTimeout": str(self.visibility_timeout),
            "ReceiveMessageWaitTimeSeconds": str(self.wait_seconds),
            "MessageRetentionPeriod": str(self.retention_seconds),
        }
        if self.fifo:
            # Content-based deduplication lets a plain send_message omit the dedup id;
            # the project's producer still sets it to the command id.
            attributes["FifoQueue"] = "true"
            attributes["ContentBasedDeduplication"] = "true"
            # High-throughput FIFO: ordering and deduplication are per message group (one
            # user), which is all the design needs, and the queue's throughput limit applies
            # to each group instead of the whole queue.
            attributes["DeduplicationScope"] = "messageGroup"
            attributes["FifoThroughputLimit"] = "perMessageGroupId"
        if dead_letter_arn is not None:
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": self.max_receive_count}
            )
        return attributes


@dataclass(frozen=True)
class Subscription:
    topic: str
    queue: QueueSpec
    raw_delivery: bool = True


@dataclass(frozen=True)
class Resources:
    """Every resource name of one deployment, derived from the prefix."""

    prefix: str
    fifo_commands: bool = True
    visibility_timeout: int = 10
    max_receive_count: int = 50
    tables: tuple[TableSpec, ...] = field(init=False)
    queues: tuple[QueueSpec, ...] = field(init=False)
    topics: tuple[str, ...] = field(init=False)
    subscriptions: tuple[Subscription, ...] = field(init=False)

    def __post_init__(self) -> None:
        p = self.prefix
        suffix = FIFO_SUFFIX if self.fifo_commands else ""
        commands_dlq = QueueSpec(
            f"{p}-order-commands-dlq{suffix}",
            fifo=self.fifo_commands,
            retention_seconds=14 * 24 * 3600,
        )
        commands = QueueSpec(
            f"{p}-order-commands{suffix}",
            fifo=self.fifo_commands,
            visibility_timeout=self.visibility_timeout,
            dead_letter=commands_dlq,
            max_receive_count=self.max_receive_count,
        )
        prices_dlq = QueueSpec(f"{p}-price-updates-dlq", retention_seconds=14 * 24 * 3600)
        prices = QueueSpec(
            f"{p}-price-updates",
            visibility_timeout=self.visibility_timeout,
            dead_letter=prices_dlq,
            max_receive_count=self.max_receive_count,
        )
        status = QueueSpec(f"{p}-order-status")
        analytics_dlq = QueueSpec(f"{p}-order-analytics-dlq", retention_seconds=14 * 24 * 3600)
        analytics = QueueSpec(
            f"{p}-order-analytics",
            visibility_timeout=self.visibility_timeout,
            dead_letter=analytics_dlq,
            max_receive_count=self.max_receive_count,
        )
        # The cache worker's: the events that keep the read model (Redis) in sync.
        cache_dlq = QueueSpec(f"{p}-order-cache-dlq", retention_seconds=14 * 24 * 3600)
        cache = QueueSpec(
            f"{p}-order-cache",
            visibility_timeout=self.visibility_timeout,
            dead_letter=cache_dlq,
            max_receive_count=self.max_receive_count,
        )
        events = f"{p}-order-events"
        queues = (
            commands_dlq,
            commands,
            prices_dlq,
            prices,
            status,
            analytics_dlq,
            analytics,
            cache_dlq,
            cache,
        )
        object.__setattr__(self, "tables", _tables(p))
        object.__setattr__(self, "queues", queues)
        object.__setattr__(self, "topics", (events,))
        object.__setattr__(
            self,
            "subscriptions",
            (
                Subscription(events, status),
                Subscription(events, analytics),
                Subscription(events, cache),
            ),
        )

    @property
    def users_table(self) -> str:
        return self.tables[0].name

    @property
    def orders_table(self) -> str:
        return self.tables[1].name

    @property
    def inventory_table(self) -> str:
        return self.tables[2].name

    @property
    def analytics_table(self) -> str:
        return self.tables[3].name

    @property
    def commands_queue(self) -> QueueSpec:
        return self.queues[1]

    @property
    def price_updates_queue(self) -> QueueSpec:
        return self.queues[3]

    @property
    def order_status_queue(self) -> QueueSpec:
        return self.queues[4]

    @property
    def analytics_queue(self) -> QueueSpec:
        return self.queues[6]

    @property
    def order_cache_queue(self) -> QueueSpec:
        return self.queues[8]

    @property
    def events_topic(self) -> str:
        return self.topics[0]


def _tables(prefix: str) -> tuple[TableSpec, ...]:
    users = TableSpec(
        f"{prefix}-users",
        indexes=(Index("EmailIndex", "email"),),
        ttl_attribute="ttl",
    )
    orders = TableSpec(
        f"{prefix}-orders",
        indexes=(
            # Newest-first listing of one user's orders: created_key = created_at#order_id.
            Index("UserOrdersIndex", "username", "created_key"),
            # Sparse: only QUEUED limit orders carry book_key (asset#side) and limit_price.
            Index("OpenLimitOrders", "book_key", "limit_price", "N"),
            # Sparse: only QUEUED conditional orders carry stop_key (asset#RISE when a
            # rise to stop_price triggers them, asset#FALL when a fall does).
            Index("OpenStopOrders", "stop_key", "stop_price", "N"),
            # Sparse: only QUEUED trailing stops carry trail_key (asset#side), by their
            # best price: the matcher's lookup before FallTriggers and RiseTriggers, kept
            # for an upgrade's old matcher (README, "Upgrading to the reach indexes").
            Index("TrailingStops", "trail_key", "best_price", "N"),
            # Sparse: only QUEUED orders a fall (a rise) triggers or moves carry fall_key
            # (rise_key), the asset, by the price at which it reaches them: the
            # matcher's one query per price update (store.keys.REACH_INDEXES).
            Index("FallTriggers", "fall_key", "fall_price", "N"),
            Index("RiseTriggers", "rise_key", "rise_price", "N"),
            # Sparse: only orders that can expire carry expiry_shard and expires_at.
            Index("ExpiryIndex", "expiry_shard", "expires_at"),
            # Sparse: only PENDING and PROCESSING orders carry in_flight_shard (one of 16,
            # so that every order's steps do not all write one index partition), by the
            # time of their last change: the recovery job's lookup.
            Index("InFlightIndex", "in_flight_shard", "updated_at"),
        ),
    )
    inventory = TableSpec(f"{prefix}-inventory")
    # The analytics worker's views (see analytics.store): counters and positions.
    analytics = TableSpec(f"{prefix}-analytics")
    return (users, orders, inventory, analytics)


def queue_policy(queue_arn: str, topic_arn: str) -> str:
    """Allow the events topic, and only it, to deliver into the queue."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AllowOrderEventsTopic",
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }
            ],
        }
    )
