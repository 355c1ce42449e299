"""Orders: types, statuses, the allowed status transitions (as data) and the entities."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self

from pydantic import Field, model_validator

from order_processor.domain.assets import AssetId
from order_processor.domain.base import Command, Entity, OrderId, UtcDatetime, new_id, utc_now
from order_processor.domain.money import Price, Quantity, UsdBalance
from order_processor.domain.users import Username
from order_processor.exceptions import InvalidTransitionException


class OrderType(StrEnum):
    MARKET_BUY = "MARKET_BUY"
    MARKET_SELL = "MARKET_SELL"
    LIMIT_BUY = "LIMIT_BUY"
    LIMIT_SELL = "LIMIT_SELL"

    @property
    def is_limit(self) -> bool:
        return self in {OrderType.LIMIT_BUY, OrderType.LIMIT_SELL}

    @property
    def is_buy(self) -> bool:
        return self in {OrderType.MARKET_BUY, OrderType.LIMIT_BUY}


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
    expires_at: UtcDatetime | None = None

    @model_validator(mode="after")
    def _limit_fields_match_the_type(self) -> Self:
        if self.order_type.is_limit and self.limit_price is None:
            raise ValueError(f"limit_price: required for {self.order_type}")
        if not self.order_type.is_limit and self.limit_price is not None:
            raise ValueError(f"limit_price: not allowed for {self.order_type}")
        if not self.order_type.is_limit and self.expires_at is not None:
            raise ValueError(f"expires_at: not allowed for {self.order_type}")
        return self


class OrderUpdate(Command):
    status: OrderStatus | None = None
    price: Price | None = None
    total_amount: UsdBalance | None = None
    failure_reason: str | None = Field(default=None, max_length=200)


class Order(Entity):
    order_id: OrderId = Field(default_factory=new_id)
    username: Username
    order_type: OrderType
    asset_id: AssetId
    quantity: Quantity
    limit_price: Price | None = None
    price: Price | None = None  # the execution price, once known
    total_amount: UsdBalance | None = None
    status: OrderStatus = OrderStatus.PENDING
    failure_reason: str | None = None
    step: str | None = None  # the saga's marker: the last step committed
    sequence: int = Field(default=0, ge=0)  # rises with every change (event ordering)
    expires_at: UtcDatetime | None = None
    created_at: UtcDatetime = Field(default_factory=utc_now)
    updated_at: UtcDatetime = Field(default_factory=utc_now)

    @classmethod
    def place(cls, username: str, request: OrderCreate, order_id: str | None = None) -> Order:
        fields = request.model_dump(exclude_none=True, include=set(OrderCreate.model_fields))
        return cls(username=username, order_id=order_id or new_id(), **fields)

    def evolve(self, **changes: Any) -> Order:
        """A changed copy, validated like a new order (model_copy would skip validation)."""
        return Order.model_validate({**self.model_dump(), **changes})

    def response(self) -> OrderResponse:
        return OrderResponse.model_validate(self.model_dump(exclude={"step"}))


class OrderResponse(Entity):
    order_id: str
    username: Username
    order_type: OrderType
    asset_id: AssetId
    quantity: Quantity
    limit_price: Price | None
    price: Price | None
    total_amount: UsdBalance | None
    status: OrderStatus
    failure_reason: str | None
    sequence: int
    expires_at: UtcDatetime | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
