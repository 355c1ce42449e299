"""The views' figures per quote currency, and their totals in the base currency.

An asset's fills are in its quote currency, so volume, cost and P&L are summed per
currency, never across; a conversion's spread is in the currency bought. Each currency's
figures are valued in the base currency at its rate as stored when the summary is made
(the price feed's latest, with the time it was observed), used while it is younger than
the configured age (ORDER_PROCESSOR_FX_MAX_AGE_SECONDS), as a conversion would use it. A
currency without a rate, or with an older one, stays out of the totals and is named as
unconverted (FX_RATE_MISSING, FX_RATE_STALE); the totals say the time of the oldest rate
they used. A value in the base currency is rounded to its minor unit, half to even (a
report, not a payment), and a total is the sum of the values shown.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Protocol

from order_processor.analytics.amounts import EXACT
from order_processor.analytics.views import Position, Report
from order_processor.domain.base import utc_now
from order_processor.domain.currencies import BASE_CURRENCY, minor_unit
from order_processor.domain.fx import ExchangeRate, RateUnavailable, fresh_rate, in_base

FIGURES = ("volume", "bought", "sold", "cost", "realised_pnl", "conversion_spread")


class RateSource(Protocol):
    """`store.rates.ExchangeRateStore`: every currency's rate, one Query."""

    async def rates(self) -> dict[str, ExchangeRate]: ...


@dataclass(frozen=True)
class Rates:
    """The rates a summary values other currencies at: as stored at `now`, each used
    while younger than `max_age`. None stored: only the base currency is valued."""

    stored: Mapping[str, ExchangeRate] = field(default_factory=dict)
    now: datetime = field(default_factory=utc_now)
    max_age: timedelta = timedelta(0)

    @classmethod
    async def read(cls, source: RateSource, max_age: timedelta) -> Rates:
        """The rates as stored now."""
        return cls(await source.rates(), utc_now(), max_age)

    def of(self, currency: str) -> Decimal | RateUnavailable:
        try:
            return fresh_rate(self.stored, currency, self.now, self.max_age)
        except RateUnavailable as exc:
            return exc


@dataclass
class Figures:
    """One currency's figures, in that currency."""

    fills: int = 0
    amounts: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(FIGURES, Decimal(0)))

    def add(self, name: str, amount: Decimal) -> None:
        self.amounts[name] = EXACT.add(self.amounts[name], amount)

    def add_position(self, position: Position) -> None:
        self.fills += position.fills
        for name, amount in (
            ("volume", EXACT.add(position.bought, position.sold)),
            ("bought", position.bought),
            ("sold", position.sold),
            ("cost", position.cost),
            ("realised_pnl", position.realised),
        ):
            self.add(name, amount)


def per_currency(report: Report) -> dict[str, Figures]:
    """The positions' figures summed per currency, and the spread kept on conversions
    per currency bought."""
    figures: dict[str, Figures] = defaultdict(Figures)
    for position in report.positions.values():
        figures[position.currency].add_position(position)
    for (_, buy), exchanged in report.conversions.items():
        figures[buy].add("conversion_spread", exchanged.spread)
    return dict(sorted(figures.items()))


def valued(amount: Decimal, rate: Decimal) -> Decimal:
    """An amount in the base currency at `rate`, to its minor unit."""
    return in_base(amount, rate).quantize(minor_unit(BASE_CURRENCY), ROUND_HALF_EVEN, EXACT)


@dataclass
class Totals:
    """Sums in the base currency of what could be valued; what could not, and why."""

    rates: Rates
    amounts: dict[str, Decimal] = field(default_factory=dict)
    unconverted: dict[str, str] = field(default_factory=dict)  # currency -> reason
    oldest: datetime | None = None  # the oldest rate used (None: only the base currency)

    def value(self, currency: str, amounts: Mapping[str, Decimal]) -> dict[str, Decimal] | None:
        """`amounts` of `currency` in the base currency, added to the totals; None (and
        the currency noted) when it has no rate fit to use."""
        rate = self.rates.of(currency)
        if isinstance(rate, RateUnavailable):
            self.unconverted[currency] = rate.reason.value
            return None
        if currency != BASE_CURRENCY:
            at = self.rates.stored[currency].as_of
            self.oldest = at if self.oldest is None else min(self.oldest, at)
        shown = {name: valued(amount, rate) for name, amount in amounts.items()}
        for name, amount in shown.items():
            self.amounts[name] = EXACT.add(self.amounts.get(name, Decimal(0)), amount)
        return shown


def user_figures(positions: Iterable[tuple[str, Position]]) -> dict[str, dict[str, Figures]]:
    """Per user, the figures of their positions per currency."""
    users: dict[str, dict[str, Figures]] = defaultdict(lambda: defaultdict(Figures))
    for user, position in positions:
        users[user][position.currency].add_position(position)
    return users
