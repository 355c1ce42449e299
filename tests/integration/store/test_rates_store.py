"""ExchangeRateStore against the emulator: only a newer observation replaces a rate, the
same update again is accepted, an older one is refused with the rate that stands, and an
observation dated beyond the clock skew ahead counts as no time at all."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from order_processor.bootstrap import AwsClients
from order_processor.domain.base import utc_now
from order_processor.domain.fx import ExchangeRate
from order_processor.exceptions import StalePriceException
from order_processor.store.rates import ExchangeRateStore

SKEW = timedelta(seconds=30)


def store(aws: AwsClients) -> ExchangeRateStore:
    now = utc_now()
    return ExchangeRateStore(
        aws.dynamodb, aws.resources.inventory_table, clock=lambda: now, clock_skew=SKEW
    )


async def test_a_newer_rate_replaces_the_stored_one_and_an_older_one_is_refused(
    aws: AwsClients,
) -> None:
    rates = store(aws)
    at = rates.clock()

    await rates.change_rate("EUR", "1.08", as_of=at - timedelta(seconds=10), command_id="r-1")
    newer = await rates.change_rate("eur", "1.0842", as_of=at, command_id="r-2")
    again = await rates.change_rate("EUR", "1.0842", as_of=at, command_id="r-2")  # redelivery
    refusals = []
    for when, command_id in [(at - timedelta(seconds=5), "r-3"), (at, "r-4")]:
        with pytest.raises(StalePriceException) as refused:
            await rates.change_rate("EUR", "1.01", as_of=when, command_id=command_id)
        refusals.append(refused.value.details["current"])

    stored = (await rates.rates())["EUR"]
    assert stored == newer == again
    assert (stored.rate, stored.as_of, stored.command_id) == (Decimal("1.0842000000"), at, "r-2")
    assert refusals == [stored, stored]  # each refusal names the rate that stands


async def test_a_rate_dated_beyond_the_skew_ahead_is_replaced_by_any_update(
    aws: AwsClients,
) -> None:
    rates = store(aws)
    at = rates.clock()
    await rates.change_rate("GBP", "9.99", as_of=at + 3 * SKEW, command_id="g-future")
    await rates.change_rate("CHF", "1.13", as_of=at + SKEW, command_id="c-ahead")

    replaced = await rates.change_rate("GBP", "1.27", as_of=at, command_id="g-now")
    with pytest.raises(StalePriceException):  # within the skew: still a time that counts
        await rates.change_rate("CHF", "1.10", as_of=at, command_id="c-now")

    stored = await rates.rates()
    assert stored["GBP"] == replaced
    assert (stored["GBP"].rate, stored["GBP"].command_id) == (Decimal("1.2700000000"), "g-now")
    assert (stored["CHF"].rate, stored["CHF"].command_id) == (Decimal("1.1300000000"), "c-ahead")


async def test_rates_are_listed_by_currency_exactly_and_a_bad_rate_is_never_written(
    aws: AwsClients,
) -> None:
    rates = store(aws)
    at = rates.clock()
    await rates.change_rate("JPY", "0.0066568429", as_of=at, command_id="j-1")

    for bad in ("0", "-0.0067", "0.00000000001", "NaN"):
        with pytest.raises(ValueError, match="rate"):
            await rates.change_rate("JPY", bad, as_of=at + timedelta(seconds=1), command_id="j-2")
    with pytest.raises(ValueError, match="not an ISO 4217 currency code"):
        await rates.change_rate("XYZ", "1", as_of=at, command_id="x-1")

    stored = await rates.rates()
    assert stored["JPY"] == ExchangeRate(
        currency="JPY", rate="0.0066568429", as_of=at, command_id="j-1", updated_at=at
    )
    assert isinstance(stored["JPY"].rate, Decimal)
    assert "XYZ" not in stored
