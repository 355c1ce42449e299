"""What amounts in several currencies are worth together in one currency.

A valuation converts nothing: each amount is taken at its currency's mid rate against
the base currency (no spread), the sum is kept exact in the base currency and divided by
the chosen currency's rate once, then rounded half-even to that currency's minor unit
(no money moves, so neither side is favoured). Every currency with a non-zero amount
needs a fresh rate, and so does the chosen one: a missing or stale rate refuses the
whole valuation (domain.fx.RateUnavailable) rather than leave a currency out of a total.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal

from order_processor.domain.currencies import BASE_CURRENCY, minor_unit
from order_processor.domain.fx import ExchangeRate, fresh_rate

_EXACT = Context(prec=60)


@dataclass(frozen=True)
class Valuation:
    currency: str
    total: Decimal
    # The oldest rate the total used; None when it needed none (everything in USD).
    rates_as_of: datetime | None


def valued_in(
    amounts: Iterable[tuple[str, Decimal]],
    currency: str,
    rates: Mapping[str, ExchangeRate],
    *,
    now: datetime,
    max_age: timedelta,
) -> Valuation:
    """`amounts` ((currency, amount) pairs) valued together in `currency` at mid rates."""
    counted = [(code, amount) for code, amount in amounts if amount != 0]
    in_base = Decimal(0)
    for code, amount in counted:
        in_base = _EXACT.add(
            in_base, _EXACT.multiply(amount, fresh_rate(rates, code, now, max_age))
        )
    target = fresh_rate(rates, currency, now, max_age)
    total = _EXACT.divide(in_base, target).quantize(minor_unit(currency), ROUND_HALF_EVEN, _EXACT)
    used = {code for code, _ in counted} | {currency}
    moments = [rates[code].as_of for code in used if code != BASE_CURRENCY]
    return Valuation(currency, total, min(moments, default=None))
