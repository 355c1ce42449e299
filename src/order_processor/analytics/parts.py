"""The events the views count, as parts: what one event adds, said purely.

An order's final event (completed, failed, cancelled, expired) gives a `Contribution`: its
status, failure reason, latency and, completed, its fill in the order's quote currency
(and the conversion that paid for it, for a market buy paid in another currency). A
`balance.converted` event gives a `Converted`. Each part names its marker: the key that
says it was counted (an order's final event, a user's conversion), whatever event id or
copy carried it. Any other event gives nothing. An event is untrusted input until its
fields check out (the analytics queue is an SQS queue like any other): one that fails is
a MalformedEvent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ValidationError

from order_processor.analytics.conversions import Conversion
from order_processor.analytics.latency import latency_bucket
from order_processor.domain.base import CommandId
from order_processor.domain.commands import describe_errors
from order_processor.domain.currencies import BASE_CURRENCY, CurrencyCode, currency_code
from order_processor.domain.events import STATUS_EVENTS, Event, EventType
from order_processor.domain.money import CashAmount
from order_processor.domain.orders import OrderResponse
from order_processor.domain.users import Username

FINAL = {
    EventType.ORDER_COMPLETED,
    EventType.ORDER_FAILED,
    EventType.ORDER_CANCELLED,
    EventType.ORDER_EXPIRED,
}
BUCKETS = {"minute": "%Y-%m-%dT%H:%M", "hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d"}
REASON = re.compile(r"[A-Z][A-Z_]{0,63}")  # failure reasons are the saga's codes


@dataclass(frozen=True, order=True)
class Fill:
    at: datetime
    order_id: str
    buy: bool
    quantity: Decimal
    amount: Decimal  # paid or received, in `currency`
    currency: str = BASE_CURRENCY

    @property
    def key(self) -> str:
        """Sorts as the fills happened: (UTC time, order id), as text. The year has its
        four digits whatever it is (strftime's %Y drops the leading zeros of a year
        before 1000, which would sort after every later year)."""
        return f"{self.at.year:04d}-{self.at.strftime('%m-%dT%H:%M:%S.%f')}#{self.order_id}"


@dataclass(frozen=True)
class Contribution:
    """What one order's final event adds to the views."""

    event_id: str
    order_id: str
    username: str
    asset_id: str
    order_type: str
    status: str  # completed, failed, cancelled, expired
    at: datetime
    failure_reason: str | None = None
    latency: tuple[str, str] | None = None  # (market|resting, histogram bucket)
    fill: Fill | None = None
    conversion: Conversion | None = None  # a market buy paid in another currency

    @property
    def marker(self) -> str:
        """The key of the item that says this order's final event is applied."""
        return f"ORDER#{self.order_id}"

    def buckets(self) -> list[tuple[str, str]]:
        return [(kind, self.at.strftime(pattern)) for kind, pattern in BUCKETS.items()]

    @property
    def minute(self) -> str:
        return self.at.strftime(BUCKETS["minute"])


@dataclass(frozen=True)
class Converted:
    """What a `balance.converted` event adds: its conversion, once per user and command."""

    event_id: str
    username: str
    conversion_id: str
    at: datetime
    conversion: Conversion

    @property
    def marker(self) -> str:
        return f"CONVERTED#{self.username}#{self.conversion_id}"


Part = Contribution | Converted


class MalformedEvent(ValueError):
    """An event the views count without the fields they need."""


class _ConvertedData(BaseModel):
    """The fields of a `balance.converted` event the views read (its data, and the user)."""

    username: Username
    conversion_id: CommandId
    sell: CurrencyCode
    sold: CashAmount
    buy: CurrencyCode
    bought: CashAmount
    rate: Decimal
    spread_percent: Decimal


def part_of(event: Event) -> Part | None:
    """What an event contributes to the views: a final order event's contribution, a
    conversion's; None for any other event."""
    return contribution(event) or converted(event)


def converted(event: Event) -> Converted | None:
    """A `balance.converted` event's conversion; None for any other event."""
    if event.event_type is not EventType.BALANCE_CONVERTED:
        return None
    try:
        data = _ConvertedData.model_validate({**event.data, "username": event.username})
        conversion = Conversion.at(
            data.sell, data.buy, data.sold, data.bought, data.rate, data.spread_percent
        )
    except ValidationError as exc:
        raise MalformedEvent(f"event {event.event_id}: {describe_errors(exc)}") from exc
    except ValueError as exc:
        raise MalformedEvent(f"event {event.event_id}: {exc}") from exc
    return Converted(
        event.event_id, data.username, data.conversion_id, event.occurred_at, conversion
    )


def contribution(event: Event) -> Contribution | None:
    """What a final order event contributes; None for any other event. Its data must be
    the order it names, in the status its type says (an event is untrusted input until
    then: the analytics queue is an SQS queue like any other)."""
    if event.event_type not in FINAL:
        return None
    try:
        order = OrderResponse.model_validate(event.data)
    except ValidationError as exc:
        raise MalformedEvent(f"event {event.event_id}: {describe_errors(exc)}") from exc
    if (
        order.order_id != event.order_id
        or order.username != event.username
        or STATUS_EVENTS.get(order.status) is not event.event_type
    ):
        raise MalformedEvent(f"event {event.event_id}: its data is another order or status")
    fill, conversion = None, None
    if event.event_type is EventType.ORDER_COMPLETED:
        fill, conversion = _filled(event, order)
    reason = None
    if event.event_type is EventType.ORDER_FAILED:
        reason = order.failure_reason if REASON.fullmatch(order.failure_reason or "") else "OTHER"
    latency = None
    if order.issued_at is not None:  # orders placed before it was recorded have none
        milliseconds = max((event.occurred_at - order.issued_at).total_seconds() * 1000, 0)
        kind = "market" if order.order_type.value.startswith("MARKET_") else "resting"
        latency = (kind, latency_bucket(milliseconds))
    return Contribution(
        event_id=event.event_id,
        order_id=order.order_id,
        username=order.username,
        asset_id=order.asset_id,
        order_type=order.order_type.value,
        status=event.event_type.value.removeprefix("order."),
        at=event.occurred_at,
        failure_reason=reason,
        latency=latency,
        fill=fill,
        conversion=conversion,
    )


def _filled(event: Event, order: OrderResponse) -> tuple[Fill, Conversion | None]:
    """A completed order's fill, in its quote currency, and the conversion that paid for
    it if it was paid in another currency."""
    if order.total_amount is None:
        raise MalformedEvent(f"event {event.event_id}: a completed order without its total")
    try:
        currency = currency_code(order.quote_currency, "quote_currency")
        conversion = None
        if order.pay_currency is not None and order.pay_currency != currency:
            if order.paid_amount is None or order.pay_rate is None:
                raise ValueError("paid in another currency without the amount and rate")
            conversion = Conversion.at(
                currency_code(order.pay_currency, "pay_currency"),
                currency,
                order.paid_amount,
                order.total_amount,
                order.pay_rate,
                order.pay_spread_percent or Decimal(0),
            )
    except ValueError as exc:
        raise MalformedEvent(f"event {event.event_id}: {exc}") from exc
    buy = order.order_type.value.endswith("_BUY")
    fill = Fill(
        event.occurred_at, order.order_id, buy, order.quantity, order.total_amount, currency
    )
    return fill, conversion
