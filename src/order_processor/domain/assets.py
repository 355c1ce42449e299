"""Tradable assets (the inventory), users' asset balances and asset transactions."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field, computed_field

from order_processor.domain.base import (
    Command,
    CommandId,
    Entity,
    UtcDatetime,
    new_id,
    utc_now,
)
from order_processor.domain.currencies import BASE_CURRENCY, CurrencyCode
from order_processor.domain.money import (
    DEFAULT_QUANTITY_PLACES,
    MAX_QUANTITY_PLACES,
    CashBalance,
    Price,
    Quantity,
    QuantityBalance,
    exact_total,
    signed,
)
from order_processor.domain.users import Username


def normalise_asset_id(asset_id: str) -> str:
    """Asset ids are case-insensitive: "btc" and " BTC " name BTC, everywhere it is
    written or looked up (a model's field, a key, a query, an argument)."""
    return asset_id.strip().upper()


AssetId = Annotated[
    str, AfterValidator(normalise_asset_id), Field(pattern=r"^[A-Za-z][A-Za-z0-9]{1,9}$")
]
Precision = Annotated[int, Field(ge=0, le=MAX_QUANTITY_PLACES)]


class AssetCreate(Command):
    asset_id: AssetId
    name: str = Field(min_length=1, max_length=100)
    price: Price
    precision: Precision = DEFAULT_QUANTITY_PLACES
    is_active: bool = True
    quote_currency: CurrencyCode = BASE_CURRENCY


class AssetUpdate(Command):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    precision: Precision | None = None


class Asset(Entity):
    asset_id: AssetId
    name: str
    price: Price  # in the quote currency
    precision: Precision = DEFAULT_QUANTITY_PLACES
    is_active: bool = True
    # What its price is in, what its orders hold and pay; fixed when the asset is listed
    # (an order of another quote is another asset: BTC in USD, BTCEUR in EUR).
    quote_currency: CurrencyCode = BASE_CURRENCY
    price_as_of: UtcDatetime | None = None  # when the feed observed the price
    price_command_id: CommandId | None = None  # the UpdatePrice that set it
    created_at: UtcDatetime = Field(default_factory=utc_now)
    updated_at: UtcDatetime = Field(default_factory=utc_now)


class AssetListResponse(Entity):
    assets: list[Asset]
    next_cursor: str | None = None


class AssetBalanceCreate(Command):
    username: Username
    asset_id: AssetId
    available: QuantityBalance = Decimal("0")


class AssetBalance(Entity):
    username: Username
    asset_id: AssetId
    available: QuantityBalance = Decimal("0")
    held: QuantityBalance = Decimal("0")
    updated_at: UtcDatetime = Field(default_factory=utc_now)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> Decimal:
        return exact_total([self.available, self.held])


class AssetBalanceResponse(AssetBalance):
    pass


class AssetTransactionType(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    REFUND = "REFUND"  # a sold quantity given back when the sale cannot complete
    HOLD = "HOLD"  # a limit sell's quantity set aside (available -> held)
    RELEASE = "RELEASE"  # set free again (held -> available)


# (sign on available, sign on held) of each type's positive quantity.
ASSET_EFFECTS: dict[AssetTransactionType, tuple[int, int]] = {
    AssetTransactionType.BUY: (1, 0),
    AssetTransactionType.SELL: (-1, 0),
    AssetTransactionType.REFUND: (1, 0),
    AssetTransactionType.HOLD: (-1, 1),
    AssetTransactionType.RELEASE: (1, -1),
}


class AssetTransactionStatus(StrEnum):
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class _AssetTransactionFields(Command):
    username: Username
    asset_id: AssetId
    transaction_type: AssetTransactionType
    quantity: Quantity
    price: Price
    total_amount: CashBalance  # in the asset's quote currency
    status: AssetTransactionStatus = AssetTransactionStatus.COMPLETED
    order_id: str | None = Field(default=None, max_length=128)

    @property
    def quantity_delta(self) -> Decimal:
        """The change of the holding's total (available + held)."""
        return exact_total([self.available_delta, self.held_delta])

    @property
    def available_delta(self) -> Decimal:
        return signed(self.quantity, ASSET_EFFECTS[self.transaction_type][0])

    @property
    def held_delta(self) -> Decimal:
        return signed(self.quantity, ASSET_EFFECTS[self.transaction_type][1])


class AssetTransactionCreate(_AssetTransactionFields):
    transaction_id: str = Field(default_factory=new_id, min_length=1, max_length=128)


class AssetTransaction(_AssetTransactionFields):
    model_config = Entity.model_config

    transaction_id: str
    created_at: UtcDatetime


class AssetTransactionResponse(AssetTransaction):
    pass
