"""The demo's currencies: EUR, GBP and JPY beside the base USD.

The rates start near the market's (USD per unit); the demo's feed walks them and sends
UpdateRate every few seconds, because a deposit or a conversion refuses a rate older than
ORDER_PROCESSOR_FX_MAX_AGE_SECONDS (300 s by default) and a longer day outlasts that. One
user in four holds each currency beside USD (their "home" currency): funded in it at the
start, depositing, withdrawing and converting in it during the day. One asset is quoted
in EUR (QUOTED): a user of another currency buys it at market paying from their own.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal

from order_processor.demo.feeds import random_walk
from order_processor.domain.commands import Convert, Deposit, UpdateRate, Withdraw
from order_processor.domain.currencies import BASE_CURRENCY, minor_unit
from order_processor.messaging.producer import CommandFactory

RATES = {"EUR": Decimal("1.0850"), "GBP": Decimal("1.2700"), "JPY": Decimal("0.0067")}
QUOTED = {"ETHEUR": "EUR"}  # the demo's assets quoted in another currency than USD
CURRENCIES = (BASE_CURRENCY, *RATES)
RATE_STEP_FRACTION = Decimal("0.002")  # a rate moves at most 0.2 % an update
RATE_EVERY_SECONDS = 3.0
FUNDING_USD = Decimal(3000)  # a user of another home currency gets this much worth of it


def quote_of(asset_id: str) -> str:
    return QUOTED.get(asset_id, BASE_CURRENCY)


def home_currencies(users: Sequence[str]) -> dict[str, str]:
    """Users in turn: USD, EUR, GBP, JPY, USD, ..."""
    return {user: CURRENCIES[n % len(CURRENCIES)] for n, user in enumerate(users)}


@dataclass
class CurrencyDesk:
    """The demo's commands in currencies, at the rates its feed last sent."""

    factory: CommandFactory
    users: Sequence[str]
    rng: random.Random
    seed: int = 0
    rates: dict[str, Decimal] = field(default_factory=lambda: dict(RATES))
    updates_sent: int = 0
    _walk: Iterator[dict[str, Decimal]] | None = None

    def __post_init__(self) -> None:
        self.home = home_currencies(self.users)

    def rate_updates(self) -> list[UpdateRate]:
        """The first call: the starting rates; then one step of the walk each."""
        if self._walk is None:
            self._walk = random_walk(self.rates, step_fraction=RATE_STEP_FRACTION, seed=self.seed)
        else:
            self.rates = next(self._walk)
        self.updates_sent += len(self.rates)
        return [self.factory.update_rate(c, r) for c, r in self.rates.items()]

    def funding(self) -> list[Deposit]:
        """Each user whose home currency is not USD: FUNDING_USD worth of it."""
        return [
            self.factory.deposit(u, self.worth(FUNDING_USD, c), currency=c)
            for u, c in self.home.items()
            if c != BASE_CURRENCY
        ]

    def deposit(self, user: str, usd: Decimal) -> Deposit:
        currency = self._usd_or_home(user)
        return self.factory.deposit(user, self.worth(usd, currency), currency=currency)

    def withdraw(self, user: str, usd: Decimal) -> Withdraw:
        currency = self._usd_or_home(user)
        return self.factory.withdraw(user, self.worth(usd, currency), currency=currency)

    def convert(self, user: str, usd: Decimal) -> Convert:
        """About `usd` worth: a USD user buys a foreign currency; another sells theirs
        for USD, buys more of it with USD, or sells it for a third (the cross rate)."""
        home = self.home[user]
        if home == BASE_CURRENCY:
            sell, buy = BASE_CURRENCY, self.rng.choice(list(RATES))
        else:
            third = self.rng.choice([c for c in RATES if c != home])
            sell, buy = self.rng.choice(
                [(home, BASE_CURRENCY), (BASE_CURRENCY, home), (home, third)]
            )
        return self.factory.convert(user, self.worth(usd, sell), sell, buy)

    def holds(self, user: str, asset_id: str) -> bool:
        """Whether the user holds the asset's quote currency from the start (USD or
        their home currency): what a resting buy of it holds."""
        return quote_of(asset_id) in (BASE_CURRENCY, self.home[user])

    def pay_in(self, user: str, asset_id: str) -> str | None:
        """A market buy of an asset quoted in a currency the user does not hold: paid
        from their home currency, converted at the rate of the moment in the same write."""
        return None if self.holds(user, asset_id) else self.home[user]

    def worth(self, usd: Decimal, currency: str) -> Decimal:
        """The amount of `currency` worth `usd` now, down to its minor unit."""
        rate = Decimal(1) if currency == BASE_CURRENCY else self.rates[currency]
        return (usd / rate).quantize(minor_unit(currency), ROUND_FLOOR)

    def _usd_or_home(self, user: str) -> str:
        return self.rng.choice([BASE_CURRENCY, self.home[user]])
