"""A user's portfolio: USD, asset holdings at current prices, total value.

Each holding is valued in its asset's quote currency. The totals (`holdings_value`,
`total_value`) are in USD and count only the holdings quoted in USD: amounts in different
currencies are never added as if they were one; `holdings_value_by_currency` gives every
quote currency's, and `portfolio --in` values everything together at the rates
(domain.valuation)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from pydantic import computed_field

from order_processor.domain.assets import Asset, AssetBalance
from order_processor.domain.balances import Balance
from order_processor.domain.base import Entity
from order_processor.domain.currencies import BASE_CURRENCY, minor_unit
from order_processor.domain.money import exact_total, market_value


class Holding(Entity):
    asset_id: str
    name: str
    available: Decimal
    held: Decimal
    price: Decimal
    market_value: Decimal  # (available + held) x price, half-even to its minor unit
    quote_currency: str = BASE_CURRENCY  # what the price and the market value are in

    @computed_field  # type: ignore[prop-decorator]
    @property
    def quantity(self) -> Decimal:
        return exact_total([self.available, self.held])


class Portfolio(Entity):
    username: str
    usd_available: Decimal
    usd_held: Decimal
    holdings: list[Holding]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def usd_total(self) -> Decimal:
        return exact_total([self.usd_available, self.usd_held])

    @computed_field  # type: ignore[prop-decorator]
    @property
    def holdings_value(self) -> Decimal:
        """The holdings quoted in USD, valued in USD."""
        return self.holdings_value_by_currency.get(BASE_CURRENCY, Decimal("0.00"))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def holdings_value_by_currency(self) -> dict[str, Decimal]:
        values: dict[str, Decimal] = {}
        for holding in self.holdings:
            currency = holding.quote_currency
            values[currency] = exact_total(
                [values.get(currency, Decimal("0.00")), holding.market_value]
            )
        return dict(sorted(values.items()))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_value(self) -> Decimal:
        return exact_total([self.usd_total, self.holdings_value])


def build_portfolio(
    balance: Balance, asset_balances: Iterable[AssetBalance], assets: Mapping[str, Asset]
) -> Portfolio:
    """Holdings of zero quantity are left out; an asset missing from `assets` is valued at 0."""
    holdings = []
    for held in sorted(asset_balances, key=lambda b: b.asset_id):
        if held.total == 0:
            continue
        asset = assets.get(held.asset_id)
        price = asset.price if asset else Decimal("0")
        currency = asset.quote_currency if asset else BASE_CURRENCY
        holdings.append(
            Holding(
                asset_id=held.asset_id,
                name=asset.name if asset else held.asset_id,
                available=held.available,
                held=held.held,
                price=price,
                market_value=market_value(held.total, price, minor_unit(currency)),
                quote_currency=currency,
            )
        )
    return Portfolio(
        username=balance.username,
        usd_available=balance.available,
        usd_held=balance.held,
        holdings=holdings,
    )
