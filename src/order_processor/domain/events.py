"""The event contract: every status change as JSON on the SNS topic.

`{schema, event_id, event_type, occurred_at, username, order_id, status, sequence, data}`.
`event_id` is derived from what changed (order id and sequence, or command id), so a
re-publish after a crash carries the same id and a follower drops the duplicate.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from order_processor.domain.balances import BalanceTransactionCreate, TransactionType
from order_processor.domain.base import UtcDatetime, utc_now
from order_processor.domain.money import percent_value
from order_processor.domain.orders import Order, OrderStatus
from order_processor.exceptions import Reason

EVENT_SCHEMA = "order-processor/event/v1"


class EventType(StrEnum):
    ORDER_ACCEPTED = "order.accepted"
    ORDER_QUEUED = "order.queued"
    ORDER_PROCESSING = "order.processing"
    ORDER_COMPLETED = "order.completed"
    ORDER_FAILED = "order.failed"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_EXPIRED = "order.expired"
    BALANCE_DEPOSITED = "balance.deposited"
    BALANCE_WITHDRAWN = "balance.withdrawn"
    BALANCE_CONVERTED = "balance.converted"
    COMMAND_REJECTED = "command.rejected"


STATUS_EVENTS = {
    OrderStatus.PENDING: EventType.ORDER_ACCEPTED,
    OrderStatus.QUEUED: EventType.ORDER_QUEUED,
    OrderStatus.PROCESSING: EventType.ORDER_PROCESSING,
    OrderStatus.COMPLETED: EventType.ORDER_COMPLETED,
    OrderStatus.FAILED: EventType.ORDER_FAILED,
    OrderStatus.CANCELLED: EventType.ORDER_CANCELLED,
    OrderStatus.EXPIRED: EventType.ORDER_EXPIRED,
}


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    schema_: str = Field(default=EVENT_SCHEMA, alias="schema")
    event_id: str
    event_type: EventType
    occurred_at: UtcDatetime = Field(default_factory=utc_now)
    username: str | None = None
    order_id: str | None = None
    status: str | None = None
    sequence: int = 0
    data: dict[str, Any] = Field(default_factory=dict)

    def body(self) -> str:
        return self.model_dump_json(by_alias=True)

    def attributes(self) -> dict[str, dict[str, str]]:
        """SNS message attributes for filter policies (absent values are left out)."""
        values = {
            "event_type": self.event_type.value,
            "username": self.username,
            "asset_id": self.data.get("asset_id"),
            "order_type": self.data.get("order_type"),
        }
        return {
            name: {"DataType": "String", "StringValue": str(value)}
            for name, value in values.items()
            if value
        }


def order_event(order: Order) -> Event:
    """The event of an order's current state; the same state always gives the same id."""
    return Event(
        event_id=f"{order.order_id}:{order.sequence}",
        event_type=STATUS_EVENTS[order.status],
        occurred_at=order.updated_at,
        username=order.username,
        order_id=order.order_id,
        status=order.status.value,
        sequence=order.sequence,
        data=order.response_json(),
    )


def rejection_event(
    *,
    reason: Reason,
    message: str,
    message_id: str,
    username: str | None,
    command_id: str | None,
    order_id: str | None = None,
    claimed_username: str | None = None,
    claimed_command_id: str | None = None,
    occurred_at: datetime | None = None,
) -> Event:
    """`username` and `command_id` only as a verified token vouches for them (the event's
    `username` attribute is what SNS filter policies match); an unauthenticated message's
    claims travel at most as the sanitised `claimed_*` fields, and its event id derives
    from the SQS message id, so it cannot shadow a real command's rejection.

    Copies are identical: an authenticated command's rejection is identified by its
    sender, command id and reason (two copies of a command, however many SQS messages
    carried them, give one event) and dated by the command; an unauthenticated message's,
    by the message and its SQS send time. `message` is published as given: the handler
    makes it printable first (`handlers.answers.printable`)."""
    data: dict[str, Any] = {"reason": reason, "message": message}
    if username and command_id:
        event_id = f"rejected:{username}:{command_id}:{reason}"
        data["command_id"] = command_id
    else:
        event_id = f"rejected:{message_id}"
        data |= {"command_id": None, "message_id": message_id}
    if username is None:
        data |= {"claimed_username": claimed_username, "claimed_command_id": claimed_command_id}
    return Event(
        event_id=event_id,
        event_type=EventType.COMMAND_REJECTED,
        occurred_at=occurred_at or utc_now(),
        username=username,
        order_id=order_id,
        data=data,
    )


def funds_event(record: BalanceTransactionCreate, applied_at: datetime) -> Event:
    """The same for every publish of one command: its time is the stored record's."""
    deposited = record.transaction_type is TransactionType.DEPOSIT
    return Event(
        event_id=f"funds:{record.username}:{record.transaction_id}",  # ids are per user
        event_type=EventType.BALANCE_DEPOSITED if deposited else EventType.BALANCE_WITHDRAWN,
        occurred_at=applied_at,
        username=record.username,
        sequence=1,
        data={
            "transaction_id": record.transaction_id,
            "transaction_type": record.transaction_type.value,
            "amount": format(record.amount, "f"),
            "currency": record.currency,
        },
    )


def percent_text(value: Decimal) -> str:
    """A percentage as text from its value alone, to two places at least (0.50, 0.125):
    DynamoDB keeps 0.50 as 0.5, and a redelivery's event, rebuilt from the stored
    record, must read as the first one did."""
    return format(percent_value(value), "f")


def conversion_event(
    conversion_id: str,
    sold: BalanceTransactionCreate,
    bought: BalanceTransactionCreate,
    applied_at: datetime,
) -> Event:
    """A conversion's two records as one event, the same for every publish."""
    assert sold.rate is not None
    assert sold.spread_percent is not None
    return Event(
        event_id=f"converted:{sold.username}:{conversion_id}",
        event_type=EventType.BALANCE_CONVERTED,
        occurred_at=applied_at,
        username=sold.username,
        sequence=1,
        data={
            "conversion_id": conversion_id,
            "sell": sold.currency,
            "sold": format(sold.amount, "f"),
            "buy": bought.currency,
            "bought": format(bought.amount, "f"),
            "rate": format(sold.rate, "f"),
            "spread_percent": percent_text(sold.spread_percent),
        },
    )
