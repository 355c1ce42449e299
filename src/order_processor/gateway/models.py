"""The API's own bodies (requests the contract has no model for, and answers); orders
and withdrawals are the contract's models (`OrderCreate`, `FundsPayload`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from order_processor.domain.orders import OrderResponse


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SessionRequest(_Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024, repr=False)


class Session(_Body):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a scheme, not a secret)
    expires_in: int  # seconds


class OrderPage(_Body):
    orders: list[OrderResponse]
    next_cursor: str | None = None


class BalanceView(_Body):
    currency: str
    available: Decimal
    held: Decimal


class Balances(_Body):
    balances: list[BalanceView]


class PriceView(_Body):
    asset_id: str
    name: str
    price: Decimal
    quote_currency: str
    price_as_of: datetime | None = None


class Prices(_Body):
    prices: list[PriceView]


class WithdrawalAccepted(_Body):
    """Sent: its outcome is `balance.withdrawn` or `command.rejected` on the stream."""

    withdrawal_id: str
    currency: str
    amount: Decimal
