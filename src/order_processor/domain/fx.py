"""Exchange rates and the arithmetic of a conversion.

A rate is quoted against the base currency: how many USD one unit of the currency is
worth (EUR 1.0842, JPY 0.0067). The mid rate from one currency to another is the ratio
of their rates; the rate applied is the mid rate less the configured spread, rounded
down to RATE_PLACES: against the customer. Amounts are rounded against the customer too,
to the minor unit of their currency: selling an exact amount, the amount bought is rounded
down; buying an exact amount (an order paid in another currency), the amount sold is
rounded up. So no sequence of conversions can give a customer more, at mid rates, than
they started with, and the exchange never loses beyond what it keeps as the spread.

No decision uses a rate older than the configured age (FX_RATE_STALE) or a currency
without one (FX_RATE_MISSING); the base currency's rate is 1, always fresh. A rate dated
further ahead of the worker's clock than the clock skew allows (a feed or a matcher whose
clock runs ahead) has no age anyone can know: stale too, as the rates' store takes it
for no time at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal

from pydantic import Field

from order_processor.domain.base import Entity, UtcDatetime, utc_now
from order_processor.domain.currencies import BASE_CURRENCY, CurrencyCode, minor_unit
from order_processor.domain.money import CEILING, RATE_PLACES, Rate, step
from order_processor.exceptions import Reason

_EXACT = Context(prec=60)
_RATE_STEP = step(RATE_PLACES)
ONE = Decimal(1)
# How far ahead of the worker's clock a rate may be dated: twice the default clock skew,
# as the rates' store and a trailing stop's start take it (callers pass their own).
AHEAD = timedelta(seconds=60)


class ExchangeRate(Entity):
    """A currency's rate against the base currency, as of the feed's observation."""

    currency: CurrencyCode
    rate: Rate  # base-currency units per unit of `currency`
    as_of: UtcDatetime
    command_id: str | None = Field(default=None, max_length=128)  # the UpdateRate that set it
    updated_at: UtcDatetime = Field(default_factory=utc_now)


class RateUnavailable(Exception):
    """No rate a decision may use: `reason` is FX_RATE_MISSING or FX_RATE_STALE."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Quote:
    """The terms of a conversion from `sold` to `bought`: `rate` units of `bought` per
    unit of `sold`, the spread already taken off `mid`."""

    sold: str
    bought: str
    mid: Decimal
    rate: Decimal
    spread_percent: Decimal

    def bought_for(self, amount: Decimal) -> Decimal:
        """Selling exactly `amount`: what it buys, rounded down to the minor unit."""
        return _EXACT.multiply(amount, self.rate).quantize(
            minor_unit(self.bought), ROUND_FLOOR, _EXACT
        )

    def sold_for(self, amount: Decimal) -> Decimal:
        """Buying exactly `amount`: what it costs, rounded up to the minor unit."""
        return _EXACT.divide(amount, self.rate).quantize(
            minor_unit(self.sold), ROUND_CEILING, _EXACT
        )


def fresh_rate(
    rates: Mapping[str, ExchangeRate],
    currency: str,
    now: datetime,
    max_age: timedelta,
    ahead: timedelta = AHEAD,
) -> Decimal:
    """`currency`'s rate against the base currency, if it is young enough and dated no
    more than `ahead` of `now`."""
    if currency == BASE_CURRENCY:
        return ONE
    found = rates.get(currency)
    if found is None:
        raise RateUnavailable(Reason.FX_RATE_MISSING, f"there is no {currency} rate")
    if found.as_of > now + ahead:
        raise RateUnavailable(
            Reason.FX_RATE_STALE,
            f"the {currency} rate is dated {found.as_of.isoformat(timespec='seconds')}, "
            "ahead of this clock: its age is unknown",
        )
    if now - found.as_of > max_age:
        raise RateUnavailable(
            Reason.FX_RATE_STALE,
            f"the {currency} rate is from {found.as_of.isoformat(timespec='seconds')}, "
            f"older than {int(max_age.total_seconds())} s",
        )
    return found.rate


def quote(
    rates: Mapping[str, ExchangeRate],
    sold: str,
    bought: str,
    *,
    spread_percent: Decimal,
    now: datetime,
    max_age: timedelta,
    ahead: timedelta = AHEAD,
) -> Quote:
    """The terms of converting `sold` into `bought` now: RateUnavailable when either
    rate is missing or stale."""
    sold_rate = fresh_rate(rates, sold, now, max_age, ahead)
    bought_rate = fresh_rate(rates, bought, now, max_age, ahead)
    mid = _EXACT.divide(sold_rate, bought_rate)
    kept = _EXACT.subtract(ONE, _EXACT.divide(spread_percent, Decimal(100)))
    rate = _EXACT.multiply(mid, kept).quantize(_RATE_STEP, ROUND_FLOOR, _EXACT)
    if rate <= 0:
        raise RateUnavailable(Reason.FX_RATE_MISSING, f"no {bought} per {sold} rate above zero")
    if rate >= CEILING:  # two rates at opposite ends of what a rate may be
        raise RateUnavailable(Reason.FX_RATE_MISSING, f"no {bought} per {sold} rate below 10^15")
    return Quote(sold, bought, mid, rate, spread_percent)


def follows_from_rate(
    sold: Decimal, bought: Decimal, rate: Decimal, sold_currency: str, bought_currency: str
) -> bool:
    """Whether a conversion's amounts follow from its recorded rate by one of the two
    roundings (what the ledger audit checks): the amount bought for an exact amount
    sold, or the amount sold for an exact amount bought."""
    terms = Quote(sold_currency, bought_currency, rate, rate, Decimal(0))
    return terms.bought_for(sold) == bought or terms.sold_for(bought) == sold


def in_base(amount: Decimal, rate: Decimal) -> Decimal:
    """`amount` of a currency valued in the base currency at `rate` (exact)."""
    return _EXACT.multiply(amount, rate)


def limit_in(limit: Decimal, rate: Decimal, currency: str) -> Decimal:
    """A limit set in the base currency, in `currency` at `rate`: rounded down to the
    minor unit (never more than the limit allows)."""
    return _EXACT.divide(limit, rate).quantize(minor_unit(currency), ROUND_FLOOR, _EXACT)
