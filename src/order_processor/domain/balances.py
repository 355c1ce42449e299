"""Cash balances, one per currency, and their ledger of transactions.

A user holds one balance per currency (`BALANCE#USD`, `BALANCE#EUR`, ...); every record
names its currency (USD when absent: items written before currencies existed). A balance
has `available` and `held` funds as separate attributes (a DynamoDB condition can compare
an attribute with a value but cannot do arithmetic). Every transaction type moves
money between "outside", available and held in one fixed way, below; a balance always
equals the sum of its COMPLETED transactions.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import Field, ValidationInfo, computed_field, field_validator, model_validator

from order_processor.domain.base import Command, Entity, UtcDatetime, new_id, utc_now
from order_processor.domain.currencies import (
    BASE_CURRENCY,
    MAX_MINOR_UNITS,
    CurrencyCode,
    in_minor_units,
)
from order_processor.domain.money import (
    Rate,
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
    # A conversion: the currency sold leaves the user's balance for the exchange's
    # liquidity account in it, the currency bought comes from the exchange's (domain.fx).
    CONVERSION_OUT = "CONVERSION_OUT"
    CONVERSION_IN = "CONVERSION_IN"

    @property
    def is_conversion(self) -> bool:
        return self in (TransactionType.CONVERSION_OUT, TransactionType.CONVERSION_IN)


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
    TransactionType.CONVERSION_OUT: (-1, 0),
    TransactionType.CONVERSION_IN: (1, 0),
}

STATUS_TRANSITIONS: dict[TransactionStatus, frozenset[TransactionStatus]] = {
    TransactionStatus.PENDING: frozenset(
        {TransactionStatus.COMPLETED, TransactionStatus.FAILED, TransactionStatus.CANCELLED}
    ),
    TransactionStatus.COMPLETED: frozenset(),
    TransactionStatus.FAILED: frozenset(),
    TransactionStatus.CANCELLED: frozenset(),
}


def _cash(value: Any, info: ValidationInfo) -> Decimal:
    """An amount in the model's currency (checked again, to its minor unit, once the
    currency is known: `_in_currency`)."""
    name = info.field_name or "amount"
    return parse_decimal(value, field=name, places=MAX_MINOR_UNITS, allow_zero=True, pad=False)


class Balance(Entity):
    username: Username
    currency: CurrencyCode = BASE_CURRENCY
    available: Decimal = Decimal("0.00")
    held: Decimal = Decimal("0.00")
    updated_at: UtcDatetime = Field(default_factory=utc_now)

    @field_validator("available", "held", mode="before")
    @classmethod
    def _amounts_follow_money_rules(cls, value: Any, info: ValidationInfo) -> Decimal:
        return _cash(value, info)

    @model_validator(mode="after")
    def _amounts_in_currency(self) -> Balance:
        for name in ("available", "held"):
            object.__setattr__(self, name, in_minor_units(getattr(self, name), self.currency, name))
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> Decimal:
        return exact_total([self.available, self.held])


class _TransactionFields(Command):
    username: Username
    transaction_type: TransactionType
    currency: CurrencyCode = BASE_CURRENCY
    amount: Decimal
    status: TransactionStatus = TransactionStatus.COMPLETED
    reference_id: str | None = Field(default=None, max_length=128)
    description: str | None = Field(default=None, max_length=500)
    # A conversion's terms, on both of its records: the currency and amount on the other
    # side, and the rate applied (units bought per unit sold, the spread taken off the
    # mid rate) with that spread, in percent (domain.fx).
    counter_currency: CurrencyCode | None = None
    counter_amount: Decimal | None = None
    rate: Rate | None = None
    spread_percent: Decimal | None = Field(default=None, ge=0, lt=100)

    @field_validator("counter_amount", mode="before")
    @classmethod
    def _counter_follows_money_rules(cls, value: Any, info: ValidationInfo) -> Decimal | None:
        return None if value is None else _cash(value, info)

    @field_validator("amount", mode="before")
    @classmethod
    def _amount_follows_money_rules(cls, value: Any, info: ValidationInfo) -> Decimal:
        if info.data.get("transaction_type") is TransactionType.SYSTEM_ADJUSTMENT:
            return parse_signed(value, field="amount", places=MAX_MINOR_UNITS, pad=False)
        return parse_decimal(value, field="amount", places=MAX_MINOR_UNITS, pad=False)

    @model_validator(mode="after")
    def _amount_in_currency(self) -> _TransactionFields:
        object.__setattr__(self, "amount", in_minor_units(self.amount, self.currency, "amount"))
        if self.counter_amount is not None and self.counter_currency is not None:
            counter = in_minor_units(self.counter_amount, self.counter_currency, "counter_amount")
            object.__setattr__(self, "counter_amount", counter)
        if self.transaction_type.is_conversion and None in (
            self.counter_currency,
            self.counter_amount,
            self.rate,
            self.spread_percent,
        ):
            raise ValueError("a conversion record carries its counter amount, rate and spread")
        return self

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
