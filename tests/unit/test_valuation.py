"""A total in a chosen currency (`balance --in`, `portfolio --in`): mid rates, rounded
once, half-even, to the chosen currency's minor unit; a needed rate missing or stale
refuses the total with its reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from order_processor.domain.fx import ExchangeRate, RateUnavailable
from order_processor.domain.valuation import valued_in
from order_processor.exceptions import Reason

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
MAX_AGE = timedelta(minutes=5)


def rates(**by_currency: tuple[str, timedelta]) -> dict[str, ExchangeRate]:
    return {
        code: ExchangeRate(currency=code, rate=rate, as_of=NOW - age)
        for code, (rate, age) in by_currency.items()
    }


RATES = rates(EUR=("1.08", timedelta(seconds=30)), JPY=("0.0067", timedelta(seconds=90)))


def test_every_currency_is_valued_at_its_mid_rate_and_rounded_once() -> None:
    held = [("USD", Decimal("100.00")), ("EUR", Decimal("50.00")), ("JPY", Decimal("15000"))]

    in_euros = valued_in(held, "EUR", RATES, now=NOW, max_age=MAX_AGE)
    in_yen = valued_in(held, "JPY", RATES, now=NOW, max_age=MAX_AGE)
    in_dollars = valued_in(held, "USD", RATES, now=NOW, max_age=MAX_AGE)

    # 100 + 54 + 100.5 = 254.5 USD; / 1.08 = 235.6481... EUR; / 0.0067 = 37985.07... JPY
    assert (in_euros.currency, in_euros.total) == ("EUR", Decimal("235.65"))
    assert in_yen.total == Decimal("37985")
    assert in_dollars.total == Decimal("254.50")
    assert in_euros.rates_as_of == NOW - timedelta(seconds=90)  # the oldest rate used


def test_a_currency_of_zero_needs_no_rate_and_dollars_need_none() -> None:
    held = [("USD", Decimal("12.34")), ("GBP", Decimal("0.00"))]

    valuation = valued_in(held, "USD", {}, now=NOW, max_age=MAX_AGE)

    assert (valuation.total, valuation.rates_as_of) == (Decimal("12.34"), None)


@pytest.mark.parametrize(
    ("held", "currency", "reason"),
    [
        ([("GBP", Decimal("1.00"))], "USD", Reason.FX_RATE_MISSING),
        ([("USD", Decimal("1.00"))], "CHF", Reason.FX_RATE_MISSING),
        ([("EUR", Decimal("1.00"))], "USD", Reason.FX_RATE_STALE),
    ],
)
def test_a_missing_or_stale_rate_refuses_the_total(
    held: list[tuple[str, Decimal]], currency: str, reason: Reason
) -> None:
    stale = rates(EUR=("1.08", timedelta(minutes=6)))

    with pytest.raises(RateUnavailable) as refused:
        valued_in(held, currency, stale, now=NOW, max_age=MAX_AGE)

    assert refused.value.reason is reason
