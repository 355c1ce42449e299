"""Orders: types, statuses, the allowed status transitions (as data) and the entities."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any, Self

from pydantic import Field, model_validator

from order_processor.domain.assets import AssetId
from order_processor.domain.base import Command, Entity, OrderId, UtcDatetime, new_id, utc_now
from order_processor.domain.currencies import BASE_CURRENCY, CurrencyCode, in_minor_units
from order_processor.domain.money import (
    CashBalance,
    Percent,
    Price,
    Quantity,
    Rate,
    percent_value,
)
from order_processor.domain.steps import Step
from order_processor.domain.users import Username
from order_processor.exceptions import InvalidTransitionException


class OrderType(StrEnum):
    MARKET_BUY = "MARKET_BUY"
    MARKET_SELL = "MARKET_SELL"
    LIMIT_BUY = "LIMIT_BUY"
    LIMIT_SELL = "LIMIT_SELL"
    # Conditional orders: held while they wait, a market order once the price triggers
    # them (see `domain.triggers`).
    STOP_SELL = "STOP_SELL"  # stop-loss: the price falls to or below the stop
    STOP_BUY = "STOP_BUY"  # the price rises to or above the stop
    TAKE_PROFIT_SELL = "TAKE_PROFIT_SELL"  # the price rises to or above the target
    TAKE_PROFIT_BUY = "TAKE_PROFIT_BUY"  # the price falls to or below the target
    TRAILING_STOP_SELL = "TRAILING_STOP_SELL"  # falls by the trail from the best since
    TRAILING_STOP_BUY = "TRAILING_STOP_BUY"  # rises by the trail from the lowest since

    @property
    def is_limit(self) -> bool:
        return self in {OrderType.LIMIT_BUY, OrderType.LIMIT_SELL}

    @property
    def is_buy(self) -> bool:
        return self.value.endswith("_BUY")

    @property
    def is_trailing(self) -> bool:
        return self in {OrderType.TRAILING_STOP_SELL, OrderType.TRAILING_STOP_BUY}

    @property
    def is_conditional(self) -> bool:
        """Waits for a trigger, then executes at the market price."""
        return self.value.startswith(("STOP_", "TAKE_PROFIT_", "TRAILING_STOP_"))

    @property
    def rests(self) -> bool:
        """Waits QUEUED (holding what it may spend) until executed, cancelled or expired."""
        return self.is_limit or self.is_conditional

    @property
    def triggers_on_rise(self) -> bool:
        """A conditional order triggered when the price rises to its trigger (otherwise
        when it falls to it)."""
        return self in {
            OrderType.STOP_BUY,
            OrderType.TAKE_PROFIT_SELL,
            OrderType.TRAILING_STOP_BUY,
        }


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        return not TRANSITIONS[self]


_S = OrderStatus
# Market: PENDING -> PROCESSING -> COMPLETED | FAILED.
# Limit:  PENDING -> QUEUED -> PROCESSING -> COMPLETED | FAILED; QUEUED -> CANCELLED | EXPIRED.
# CONFIRMED (the seed's "accepted and validated") may sit between PENDING and the next state.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    _S.PENDING: frozenset({_S.CONFIRMED, _S.QUEUED, _S.PROCESSING, _S.FAILED}),
    _S.CONFIRMED: frozenset({_S.QUEUED, _S.PROCESSING, _S.FAILED}),
    _S.QUEUED: frozenset({_S.PROCESSING, _S.CANCELLED, _S.EXPIRED, _S.FAILED}),
    _S.PROCESSING: frozenset({_S.COMPLETED, _S.FAILED}),
    _S.COMPLETED: frozenset(),
    _S.CANCELLED: frozenset(),
    _S.FAILED: frozenset(),
    _S.EXPIRED: frozenset(),
}


def sources_of(target: OrderStatus) -> frozenset[OrderStatus]:
    """Every status from which `target` may be reached."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


def check_transition(current: OrderStatus, target: OrderStatus) -> None:
    if target not in TRANSITIONS[current]:
        raise InvalidTransitionException(
            f"an order cannot go from {current} to {target}", current=current, target=target
        )


class OrderCreate(Command):
    order_type: OrderType
    asset_id: AssetId
    quantity: Quantity
    limit_price: Price | None = None
    stop_price: Price | None = None  # a stop's or a take-profit's trigger price
    trail_amount: Price | None = None  # a trailing stop's distance, in USD ...
    trail_percent: Percent | None = None  # ... or in percent of the best price
    expires_at: UtcDatetime | None = None
    # A market buy paid from a balance in another currency than the asset's quote: that
    # currency converted and the asset bought in one write (domain.fx).
    pay_currency: CurrencyCode | None = None

    @model_validator(mode="after")
    def _fields_match_the_type(self) -> Self:
        kind = self.order_type
        if self.pay_currency is not None and kind is not OrderType.MARKET_BUY:
            raise ValueError("pay_currency: only a MARKET_BUY pays from another currency")
        if kind.is_limit != (self.limit_price is not None):
            raise ValueError(
                f"limit_price: {'required' if kind.is_limit else 'not allowed'} for {kind}"
            )
        fixed = kind.is_conditional and not kind.is_trailing
        if fixed != (self.stop_price is not None):
            raise ValueError(f"stop_price: {'required' if fixed else 'not allowed'} for {kind}")
        trails = (self.trail_amount is not None) + (self.trail_percent is not None)
        if kind.is_trailing and trails != 1:
            raise ValueError(f"trail_amount or trail_percent: exactly one is required for {kind}")
        if not kind.is_trailing and trails:
            raise ValueError(f"trail_amount, trail_percent: not allowed for {kind}")
        if not kind.rests and self.expires_at is not None:
            raise ValueError(f"expires_at: not allowed for {kind}")
        return self


class OrderUpdate(Command):
    status: OrderStatus | None = None
    price: Price | None = None
    total_amount: CashBalance | None = None
    failure_reason: str | None = Field(default=None, max_length=200)


class Order(Entity):
    order_id: OrderId = Field(default_factory=new_id)
    username: Username
    order_type: OrderType
    asset_id: AssetId
    quantity: Quantity
    limit_price: Price | None = None
    stop_price: Price | None = None  # a conditional order's trigger (a trailing stop's moves)
    trail_amount: Price | None = None
    trail_percent: Percent | None = None
    best_price: Price | None = None  # a trailing stop's best price since placement
    # When the price a trailing stop started from was observed (the inventory's price_as_of
    # at placement): only prices observed after it can be peaks of it, whatever the
    # order in which their updates arrive.
    trail_since: UtcDatetime | None = None
    hold_price: Price | None = None  # a buy's hold is quantity x this, rounded up
    price: Price | None = None  # the execution price, once known
    # The asset's quote currency (set when accepted): prices, holds and the total are in it.
    quote_currency: CurrencyCode = BASE_CURRENCY
    total_amount: CashBalance | None = None
    # A market buy paid in another currency: which, and how much of it paid for the total.
    pay_currency: CurrencyCode | None = None
    paid_amount: CashBalance | None = None
    pay_rate: Rate | None = None  # quote currency per unit of the pay currency, spread off
    pay_spread_percent: Decimal | None = None
    status: OrderStatus = OrderStatus.PENDING
    failure_reason: str | None = None
    step: Step | None = None  # the saga's marker: the last step committed
    sequence: int = Field(default=0, ge=0)  # rises with every change (event ordering)
    expires_at: UtcDatetime | None = None
    # The command's time (not before the token vouching for it): end-to-end latency's start.
    issued_at: UtcDatetime | None = None
    created_at: UtcDatetime = Field(default_factory=utc_now)
    updated_at: UtcDatetime = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _amounts_in_their_currencies(self) -> Self:
        if self.total_amount is not None:
            total = in_minor_units(self.total_amount, self.quote_currency, "total_amount")
            object.__setattr__(self, "total_amount", total)
        if self.paid_amount is not None and self.pay_currency is not None:
            paid = in_minor_units(self.paid_amount, self.pay_currency, "paid_amount")
            object.__setattr__(self, "paid_amount", paid)
        if self.pay_spread_percent is not None:  # read back as 0.5: announced as 0.50
            spread = percent_value(self.pay_spread_percent)
            object.__setattr__(self, "pay_spread_percent", spread)
        return self

    @classmethod
    def place(cls, username: str, request: OrderCreate, order_id: str | None = None) -> Order:
        fields = request.model_dump(exclude_none=True, include=set(OrderCreate.model_fields))
        return cls(username=username, order_id=order_id or new_id(), **fields)

    def evolve(self, **changes: Any) -> Order:
        """A changed copy, validated like a new order (model_copy would skip validation).
        Its fields are read as they are (`__dict__`: what `model_dump()` would give for an
        order, which nests no model and serialises nothing differently in Python mode)."""
        return Order.model_validate({**self.__dict__, **changes})

    def response(self) -> OrderResponse:
        return OrderResponse.model_validate(self.model_dump(exclude={"step"}))

    def response_json(self) -> dict[str, Any]:
        """`response()` as JSON, straight from the order: an OrderResponse has the order's
        fields but the saga's marker, of the same types, in the same order, so validating
        them again (as `response()` does) would only repeat what the order's own
        validation did. Every event of an order carries it."""
        data: dict[str, Any] = self.model_dump(mode="json", exclude={"step"})
        return data


class OrderResponse(Entity):
    order_id: OrderId
    username: Username
    order_type: OrderType
    asset_id: AssetId
    quantity: Quantity
    limit_price: Price | None
    stop_price: Price | None = None
    trail_amount: Price | None = None
    trail_percent: Decimal | None = None
    best_price: Price | None = None
    trail_since: UtcDatetime | None = None
    hold_price: Price | None = None
    price: Price | None
    quote_currency: str = "USD"
    total_amount: CashBalance | None
    pay_currency: str | None = None
    paid_amount: CashBalance | None = None
    pay_rate: Decimal | None = None
    pay_spread_percent: Decimal | None = None
    status: OrderStatus
    failure_reason: str | None
    sequence: int
    expires_at: UtcDatetime | None
    issued_at: UtcDatetime | None = None
    created_at: UtcDatetime
    updated_at: UtcDatetime
