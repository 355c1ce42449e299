"""Found by the issue-24 attacker (a hostile customer, a hostile or buggy feed, hostile
infrastructure); each test failed first, then its fix went in with it."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from order_processor.domain.orders import OrderStatus
from order_processor.exceptions import CommandRejected, Reason
from tests.unit.test_currencies import USER, buy, convert, quoted, state, world

# Money: amounts a rate makes too large to be money


@pytest.mark.parametrize(
    ("rates", "amount", "sell", "buy_", "reason"),
    [
        ({"EUR": "0.0000000001"}, "200000", "USD", "EUR", Reason.LIMIT_EXCEEDED),
        (
            {"EUR": "99999999999999", "JPY": "0.0000000001"},
            "1",
            "EUR",
            "JPY",
            Reason.FX_RATE_MISSING,
        ),
    ],
    ids=["buys 10^15 or more", "a cross rate of 10^15 or more"],
)
async def test_a_conversion_a_wild_rate_makes_unrepresentable_is_rejected_not_dead_lettered(
    rates: dict[str, str], amount: str, sell: str, buy_: str, reason: Reason
) -> None:
    """A feed's rate at the edge of what a rate may be (10 places, below 10^15): the
    amount bought, or the cross rate, passes what money may be. It raised pydantic's
    ValidationError from the decision: an unforeseen failure, retried and sent to the
    dead letters instead of answered."""
    saga, ledger, events = world(usd="300000", rates=rates)
    ledger.cash[USER, "EUR"] = (Decimal("100.00"), Decimal("0.00"))
    before = state(ledger)

    with pytest.raises(CommandRejected) as refused:
        await saga.handle(convert(amount, sell, buy_))

    assert refused.value.reason is reason
    assert state(ledger) == before
    assert events.published == []


async def test_a_buy_paid_in_a_currency_a_wild_rate_makes_unpayable_fails_moving_nothing() -> None:
    """The order value limit (here 10^12 USD, a deployment's choice) caps the quote
    currency's side; paid in yen at 10^-9 USD, the yen side passes 10^15."""
    saga, ledger, _ = world(usd="1000", rates={"JPY": "0.000000001"})
    saga = replace(saga, limits=replace(saga.limits, max_order_value=Decimal("10") ** 12))
    ledger.cash[USER, "JPY"] = (Decimal("1"), Decimal("0"))
    quoted(ledger, "BTC", "5000", "USD")

    await saga.handle(buy("BTC", "1000", pay_currency="JPY"))

    order = ledger.orders["o-1"]
    assert (order.status, order.failure_reason) == (OrderStatus.FAILED, "ORDER_VALUE_LIMIT")
    assert ledger.cash[USER, "JPY"] == (Decimal("1"), Decimal("0"))
    assert dict(ledger.liquidity) == {}
