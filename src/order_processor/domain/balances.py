"""USD balances and their ledger of transactions.

A balance has `available` and `held` funds as separate attributes (a DynamoDB condition can
compare an attribute with a value but cannot do arithmetic). Every transaction type moves
money between "outside", available and held in one fixed way, below; a balance always
equals the sum of its COMPLETED transactions.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import Field, ValidationInfo, computed_field, field_validator

from order_processor.domain.base import Command, Entity, UtcDatetime, new_id, utc_now
from order_processor.domain.money import (
    USD_PLACES,
    UsdBalance,
    exact_total,
    parse_decimal,
    parse_signed,
    signed,
)
from order_processor.domain.users import Username


class TransactionType(StrEnum):
    DEPOSIT = "DEPOSIT"
    WITHDRAW = "WITHDRAW"
    ORDER_PAYMENT = "ORDER_PAYMENT"
    ORDER_SALE = "ORDER_SALE"
    ORDER_REFUND = "ORDER_REFUND"
    ORDER_HOLD = "ORDER_HOLD"
    ORDER_RELEASE = "ORDER_RELEASE"
    SYSTEM_ADJUSTMENT = "SYSTEM_ADJUSTMENT"


class TransactionStatus(StrEnum):
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


# (sign applied to available, sign applied to held) for each type's positive amount.
# SYSTEM_ADJUSTMENT alone carries a signed amount.
EFFECTS: dict[TransactionType, tuple[int, int]] = {
    TransactionType.DEPOSIT: (1, 0),
    TransactionType.WITHDRAW: (-1, 0),
    TransactionType.ORDER_PAYMENT: (-1, 0),
    TransactionType.ORDER_SALE: (1, 0),
    TransactionType.ORDER_REFUND: (1, 0),
    TransactionType.ORDER_HOLD: (-1, 1),
    TransactionType.ORDER_RELEASE: (1, -1),
    TransactionType.SYSTEM_ADJUSTMENT: (1, 0),
}

STATUS_TRANSITIONS: dict[TransactionStatus, frozenset[TransactionStatus]] = {
    TransactionStatus.PENDING: frozenset(
        {TransactionStatus.COMPLETED, TransactionStatus.FAILED, TransactionStatus.CANCELLED}
    ),
    TransactionStatus.COMPLETED: frozenset(),
    TransactionStatus.FAILED: frozenset(),
    TransactionStatus.CANCELLED: frozenset(),
}


class Balance(Entity):
    username: Username
    available: UsdBalance = Decimal("0.00")
    held: UsdBalance = Decimal("0.00")
    updated_at: UtcDatetime = Field(default_factory=utc_now)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> Decimal:
        return exact_total([self.available, self.held])


class _TransactionFields(Command):
    username: Username
    transaction_type: TransactionType
    amount: Decimal
    status: TransactionStatus = TransactionStatus.COMPLETED
    reference_id: str | None = Field(default=None, max_length=128)
    description: str | None = Field(default=None, max_length=500)

    @field_validator("amount", mode="before")
    @classmethod
    def _amount_follows_money_rules(cls, value: Any, info: ValidationInfo) -> Decimal:
        if info.data.get("transaction_type") is TransactionType.SYSTEM_ADJUSTMENT:
            return parse_signed(value, field="amount", places=USD_PLACES)
        return parse_decimal(value, field="amount", places=USD_PLACES)

    @property
    def available_delta(self) -> Decimal:
        return signed(self.amount, EFFECTS[self.transaction_type][0])

    @property
    def held_delta(self) -> Decimal:
        return signed(self.amount, EFFECTS[self.transaction_type][1])

    @property
    def total_delta(self) -> Decimal:
        return exact_total([self.available_delta, self.held_delta])


class BalanceTransactionCreate(_TransactionFields):
    transaction_id: str = Field(default_factory=new_id, min_length=1, max_length=128)


class BalanceTransaction(_TransactionFields):
    model_config = Entity.model_config

    transaction_id: str
    created_at: UtcDatetime
    updated_at: UtcDatetime
