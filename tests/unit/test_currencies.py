"""Currencies through the saga, in memory: deposits and withdrawals in any enabled
currency, conversions at the rate of the moment less the spread, assets quoted outside
the base currency and market buys paid in another currency. Exact amounts, every
rejection with its reason and nothing stored; and the rounding's promise as a property:
no sequence of conversions creates value for a customer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from order_processor.domain.assets import Asset
from order_processor.domain.balances import BalanceTransactionCreate, TransactionType
from order_processor.domain.commands import (
    Convert,
    ConvertPayload,
    Deposit,
    FundsPayload,
    PlaceOrder,
    PlaceOrderPayload,
    Withdraw,
    parse_command,
)
from order_processor.domain.currencies import minor_units
from order_processor.domain.fx import ExchangeRate, follows_from_rate, quote
from order_processor.domain.orders import OrderStatus, OrderType
from order_processor.domain.ports import counted
from order_processor.domain.users import User
from order_processor.exceptions import CommandRejected, Reason
from order_processor.saga.decision import Limits
from order_processor.saga.engine import Saga
from tests.unit.fakes import MemoryEvents, MemoryLedger

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
USER = "alice_01"
LIMITS = Limits(Decimal("10000.00"), Decimal("10000.00"), Decimal("5000.00"))
RATES = {"EUR": "1.08", "GBP": "1.25", "JPY": "0.0067", "CHF": "1.12"}
ZERO = (Decimal(0), Decimal(0))


def world(
    usd: str = "1000", rates: dict[str, str] = RATES, age: timedelta = timedelta(0)
) -> tuple[Saga, MemoryLedger, MemoryEvents]:
    ledger, events = MemoryLedger(), MemoryEvents()
    ledger.users[USER] = User(
        username=USER, email="a@example.com", first_name="A", last_name="B", password_hash="x"
    )
    ledger.cash[USER, "USD"] = (Decimal(usd).quantize(Decimal("0.01")), Decimal("0.00"))
    for currency, rate in rates.items():
        ledger.rates[currency] = ExchangeRate(currency=currency, rate=rate, as_of=NOW - age)
    return Saga(ledger, events, LIMITS, clock=lambda: NOW), ledger, events


def convert(amount: str, sell: str, buy: str, command_id: str = "x-1") -> Convert:
    payload = ConvertPayload(sell=sell, buy=buy, amount=amount)
    return Convert(command_id=command_id, username=USER, auth="t", payload=payload)


def funds(
    kind: type[Deposit] | type[Withdraw], amount: str, currency: str, command_id: str = "f-1"
) -> Deposit | Withdraw:
    payload = FundsPayload(amount=amount, currency=currency)
    return kind(command_id=command_id, username=USER, auth="t", payload=payload)


def state(ledger: MemoryLedger) -> tuple[object, ...]:
    return (
        dict(ledger.cash),
        dict(ledger.liquidity),
        dict(ledger.cash_records),
        dict(ledger.asset_records),
        dict(ledger.fences),
    )


# Conversions


async def test_a_conversion_sells_at_the_mid_rate_less_the_spread_rounded_down() -> None:
    saga, ledger, events = world(usd="1000")

    await saga.handle(convert("500", "USD", "EUR"))

    # 500 USD at 1/1.08 EUR per USD less 0.5 %: 460.6481... EUR, rounded down to the cent.
    assert ledger.cash[USER, "USD"] == (Decimal("500.00"), Decimal("0.00"))
    assert ledger.cash[USER, "EUR"] == (Decimal("460.64"), Decimal("0.00"))
    assert ledger.liquidity[USER, "USD"] == Decimal("500.00")
    assert ledger.liquidity[USER, "EUR"] == Decimal("-460.64")
    sold = ledger.cash_records[USER, "x-1#sold"]
    bought = ledger.cash_records[USER, "x-1#bought"]
    assert (sold.transaction_type, sold.currency, sold.amount) == (
        TransactionType.CONVERSION_OUT,
        "USD",
        Decimal("500.00"),
    )
    assert (bought.transaction_type, bought.currency, bought.amount) == (
        TransactionType.CONVERSION_IN,
        "EUR",
        Decimal("460.64"),
    )
    assert sold.rate == bought.rate == Decimal("0.9212962962")
    assert sold.spread_percent == Decimal("0.50")
    assert sold.rate is not None
    assert follows_from_rate(sold.amount, bought.amount, sold.rate, "USD", "EUR")
    (event,) = events.published
    assert event.event_type == "balance.converted"
    assert event.data | {} == {
        "conversion_id": "x-1",
        "sell": "USD",
        "sold": "500.00",
        "buy": "EUR",
        "bought": "460.64",
        "rate": "0.9212962962",
        "spread_percent": "0.50",
    }


async def test_a_conversion_into_yen_rounds_to_the_whole_yen() -> None:
    saga, ledger, _ = world(usd="100")

    await saga.handle(convert("100", "USD", "JPY"))

    # 100 / 0.0067 x 0.995 = 14850.746... JPY: 14850, JPY has no minor unit.
    assert ledger.cash[USER, "JPY"] == (Decimal("14850"), Decimal("0"))


async def test_a_redelivered_conversion_is_answered_with_the_same_event_and_applied_once() -> None:
    saga, ledger, events = world()
    await saga.handle(convert("500", "USD", "EUR"))
    before = state(ledger)

    await saga.handle(convert("500", "USD", "EUR"))

    assert state(ledger) == before
    assert events.published[0] == events.published[1]


async def test_the_same_conversion_id_with_another_request_is_a_conflicting_duplicate() -> None:
    saga, ledger, _ = world()
    await saga.handle(convert("500", "USD", "EUR"))
    before = state(ledger)

    with pytest.raises(CommandRejected) as refused:
        await saga.handle(convert("400", "USD", "EUR"))

    assert refused.value.reason is Reason.CONFLICTING_DUPLICATE
    assert state(ledger) == before


@pytest.mark.parametrize(
    ("command", "rates", "age", "reason"),
    [
        (convert("10", "USD", "SEK"), RATES, timedelta(0), Reason.CURRENCY_NOT_ENABLED),
        (convert("10", "USD", "EUR"), {}, timedelta(0), Reason.FX_RATE_MISSING),
        (convert("10", "USD", "EUR"), RATES, timedelta(minutes=6), Reason.FX_RATE_STALE),
        (convert("1", "JPY", "EUR"), RATES, timedelta(0), Reason.CONVERSION_TOO_SMALL),
        (convert("1000.01", "USD", "EUR"), RATES, timedelta(0), Reason.INSUFFICIENT_BALANCE),
        (convert("1", "EUR", "USD"), RATES, timedelta(0), Reason.INSUFFICIENT_BALANCE),
    ],
    ids=["disabled", "no rate", "stale rate", "rounds to nothing", "too little", "never held"],
)
async def test_a_conversion_that_cannot_be_made_is_rejected_with_its_reason_and_stores_nothing(
    command: Convert, rates: dict[str, str], age: timedelta, reason: Reason
) -> None:
    saga, ledger, events = world(rates=rates, age=age)
    before = state(ledger)

    with pytest.raises(CommandRejected) as refused:
        await saga.handle(command)

    assert refused.value.reason is reason
    assert state(ledger) == before
    assert events.published == []


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"sell": "EUR", "buy": "EUR", "amount": "5"}, "buy"),
        ({"sell": "JPY", "buy": "USD", "amount": "1.5"}, "decimal places for JPY"),
        ({"sell": "XYZ", "buy": "USD", "amount": "1"}, "ISO 4217"),
        ({"sell": "EUR", "buy": "USD", "amount": "0"}, "greater than zero"),
        ({"sell": "EUR", "buy": "USD", "amount": "-5"}, "negative"),
    ],
)
def test_a_malformed_conversion_is_invalid_and_names_what_is_wrong(
    payload: dict[str, str], field: str
) -> None:
    body = Convert(
        command_id="x-1",
        username=USER,
        auth="t",
        payload=ConvertPayload(sell="EUR", buy="USD", amount="1"),
    ).model_dump(mode="json", by_alias=True)
    body["payload"] = payload

    with pytest.raises(CommandRejected) as refused:
        parse_command(json.dumps(body))

    assert refused.value.reason is Reason.INVALID_COMMAND
    assert field in refused.value.message


# Deposits and withdrawals in other currencies


async def test_a_deposit_in_euros_opens_a_balance_and_counts_against_the_limit_at_the_rate() -> (
    None
):
    saga, ledger, events = world()

    await saga.handle(funds(Deposit, "250.50", "EUR"))

    assert ledger.cash[USER, "EUR"] == (Decimal("250.50"), Decimal("0"))
    # Counted at its value in USD (270.54 at 1.08), against the one USD limit.
    assert ledger.daily[USER, "DEPOSIT", NOW.date().isoformat()] == Decimal("270.54")
    assert events.published[0].data["currency"] == "EUR"
    # The limit, 10,000 USD, is 9259.25 EUR at 1.08 (9,999.99 USD): 9,008.75 more passes...
    await saga.handle(funds(Deposit, "9008.75", "EUR", command_id="f-2"))
    # ... and not one cent beyond it.
    with pytest.raises(CommandRejected) as refused:
        await saga.handle(funds(Deposit, "0.01", "EUR", command_id="f-3"))
    assert refused.value.reason is Reason.LIMIT_EXCEEDED


async def test_a_withdrawal_over_the_limit_is_refused_alike_whatever_the_rate_of_the_moment() -> (
    None
):
    """A rejection is decided again at each delivery and published under one event id (the
    command's and the reason's): its message names no amount the moving rate gives, or
    the copies of one event differ (found by make chaos: 5023.97 EUR worth 5570.62 USD in
    one copy, 5594.03 USD in the next)."""
    saga, ledger, _ = world()
    withdrawal = funds(Withdraw, "5023.97", "EUR")
    refusals = []
    for rate in ("1.1088", "1.1135"):
        ledger.rates["EUR"] = ExchangeRate(currency="EUR", rate=rate, as_of=NOW)
        with pytest.raises(CommandRejected) as refused:
            await saga.handle(withdrawal)
        refusals.append((refused.value.reason, refused.value.message))

    assert refusals[0] == refusals[1]
    assert refusals[0] == (
        Reason.LIMIT_EXCEEDED,
        "5023.97 EUR is over the daily limit of 5000.00 USD at the rate of the moment",
    )


@pytest.mark.parametrize(
    ("rates", "age", "currency", "reason"),
    [
        ({}, timedelta(0), "EUR", Reason.FX_RATE_MISSING),
        (RATES, timedelta(hours=1), "EUR", Reason.FX_RATE_STALE),
        (RATES, timedelta(0), "SEK", Reason.CURRENCY_NOT_ENABLED),
    ],
)
async def test_a_deposit_in_another_currency_needs_it_enabled_and_its_rate_fresh(
    rates: dict[str, str], age: timedelta, currency: str, reason: Reason
) -> None:
    saga, ledger, _ = world(rates=rates, age=age)
    before = state(ledger)

    with pytest.raises(CommandRejected) as refused:
        await saga.handle(funds(Deposit, "10", currency))

    assert refused.value.reason is reason
    assert state(ledger) == before


async def test_a_withdrawal_of_a_currency_never_held_is_refused_for_the_balance() -> None:
    saga, ledger, _ = world()

    with pytest.raises(CommandRejected) as refused:
        await saga.handle(funds(Withdraw, "10", "GBP"))

    assert refused.value.reason is Reason.INSUFFICIENT_BALANCE
    assert (USER, "GBP") not in ledger.cash


# Assets quoted in another currency, and market buys paid in another currency


def quoted(ledger: MemoryLedger, asset_id: str, price: str, currency: str) -> None:
    ledger.assets[asset_id] = Asset(
        asset_id=asset_id, name=asset_id, price=Decimal(price), quote_currency=currency
    )


def buy(asset_id: str, quantity: str, order_id: str = "o-1", **fields: object) -> PlaceOrder:
    payload = PlaceOrderPayload(
        order_id=order_id,
        order_type=fields.pop("order_type", OrderType.MARKET_BUY),
        asset_id=asset_id,
        quantity=quantity,
        **fields,
    )
    return PlaceOrder(command_id=f"c-{order_id}", username=USER, auth="t", payload=payload)


async def test_an_asset_quoted_in_yen_is_paid_in_yen_rounded_up_to_the_yen() -> None:
    saga, ledger, events = world()
    await saga.handle(funds(Deposit, "100000", "JPY"))
    quoted(ledger, "BTCJPY", "14999999.5", "JPY")

    await saga.handle(buy("BTCJPY", "0.001"))

    order = ledger.orders["o-1"]
    assert (order.status, order.quote_currency, order.total_amount) == (
        OrderStatus.COMPLETED,
        "JPY",
        Decimal("15000"),  # 14999.9995 rounded up to the yen
    )
    assert ledger.cash[USER, "JPY"] == (Decimal("85000"), Decimal("0"))
    assert ledger.cash_records[USER, "o-1#payment"].currency == "JPY"
    assert events.published[-1].data["quote_currency"] == "JPY"


async def test_a_limit_buy_of_a_euro_asset_holds_euros() -> None:
    saga, ledger, _ = world()
    await saga.handle(funds(Deposit, "500", "EUR"))
    quoted(ledger, "BTCEUR", "100", "EUR")

    await saga.handle(buy("BTCEUR", "2", order_type=OrderType.LIMIT_BUY, limit_price="90"))

    assert ledger.orders["o-1"].status is OrderStatus.QUEUED
    assert ledger.cash[USER, "EUR"] == (Decimal("320.00"), Decimal("180.00"))
    assert ledger.cash[USER, "USD"] == (Decimal("1000.00"), Decimal("0.00"))


async def test_a_market_buy_paid_in_dollars_converts_exactly_its_cost_in_the_same_write() -> None:
    saga, ledger, _ = world(usd="1000")
    quoted(ledger, "BTCEUR", "100", "EUR")

    await saga.handle(buy("BTCEUR", "2", pay_currency="USD"))

    order = ledger.orders["o-1"]
    terms = quote(
        ledger.rates,
        "USD",
        "EUR",
        spread_percent=Decimal("0.50"),
        now=NOW,
        max_age=timedelta(minutes=5),
    )
    paid = terms.sold_for(Decimal("200.00"))
    assert (order.status, order.total_amount, order.pay_currency, order.paid_amount) == (
        OrderStatus.COMPLETED,
        Decimal("200.00"),
        "USD",
        paid,
    )
    assert paid == Decimal("217.09")  # 200 / (0.9259259... x 0.995), rounded up to the cent
    assert ledger.cash[USER, "USD"] == (Decimal("782.91"), Decimal("0.00"))
    assert ledger.cash[USER, "EUR"] == (Decimal("0.00"), Decimal("0.00"))
    assert ledger.liquidity[USER, "USD"] == paid
    assert ledger.liquidity[USER, "EUR"] == Decimal("-200.00")
    assert ledger.holding(USER, "BTCEUR") == (Decimal("2"), Decimal(0))
    assert len(ledger.writes) == 1


async def test_a_market_buy_paid_in_a_currency_too_little_held_fails_and_moves_nothing() -> None:
    saga, ledger, _ = world(usd="100")
    quoted(ledger, "BTCEUR", "100", "EUR")

    await saga.handle(buy("BTCEUR", "2", pay_currency="USD"))

    order = ledger.orders["o-1"]
    assert (order.status, order.failure_reason) == (OrderStatus.FAILED, "INSUFFICIENT_BALANCE")
    assert ledger.cash[USER, "USD"] == (Decimal("100.00"), Decimal("0.00"))
    assert (USER, "EUR") not in ledger.cash
    assert dict(ledger.liquidity) == {}


@pytest.mark.parametrize(
    ("order", "rates", "reason"),
    [
        (buy("BTCEUR", "1"), {}, Reason.FX_RATE_MISSING),
        (buy("BTCEUR", "1", pay_currency="GBP"), {"EUR": "1.08"}, Reason.FX_RATE_MISSING),
        (buy("BTCEUR", "1", pay_currency="SEK"), RATES, Reason.CURRENCY_NOT_ENABLED),
    ],
    ids=["no quote rate", "no pay rate", "pay currency disabled"],
)
async def test_an_order_without_fresh_rates_for_its_currencies_is_rejected_unstored(
    order: PlaceOrder, rates: dict[str, str], reason: Reason
) -> None:
    saga, ledger, _ = world(rates=rates)
    quoted(ledger, "BTCEUR", "100", "EUR")

    with pytest.raises(CommandRejected) as refused:
        await saga.handle(order)

    assert refused.value.reason is reason
    assert ledger.orders == {}


def test_only_a_market_buy_pays_in_another_currency() -> None:
    with pytest.raises(ValueError, match="pay_currency"):
        buy("BTCEUR", "1", order_type=OrderType.LIMIT_BUY, limit_price="90", pay_currency="USD")


# The rounding's promise


CURRENCIES = ["USD", "EUR", "GBP", "JPY"]
MID = {"USD": Decimal(1), **{c: Decimal(r) for c, r in RATES.items()}}


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(CURRENCIES),
            st.sampled_from(CURRENCIES),
            st.integers(min_value=1, max_value=100),
        ),
        min_size=1,
        max_size=12,
    )
)
async def test_no_sequence_of_conversions_creates_value_for_the_customer(
    steps: list[tuple[str, str, int]],
) -> None:
    """Whatever the customer converts, in any order, their holdings valued at mid rates
    never grow, and per currency their balance plus the exchange's liquidity is what they
    deposited: money is conserved and the exchange never loses at mid rates."""
    saga, ledger, _ = world(usd="1000")
    worth = Decimal("1000")
    for number, (sell, buy_, percent) in enumerate(steps):
        held = ledger.cash.get((USER, sell), ZERO)[0]
        amount = (held * percent / 100).quantize(Decimal(1).scaleb(-minor_units(sell)), ROUND_FLOOR)
        if sell == buy_ or amount <= 0:
            continue
        command = convert(str(amount), sell, buy_, command_id=f"x-{number}")
        reason: Reason | None
        try:
            await saga.handle(command)
        except CommandRejected as rejected:
            reason = rejected.reason
        else:
            reason = None
        assert reason in (None, Reason.CONVERSION_TOO_SMALL)
        value = sum(
            (pair[0] * MID[c] for (u, c), pair in ledger.cash.items() if u == USER), Decimal(0)
        )
        assert value <= worth
        worth = value
    for currency in CURRENCIES:
        balance = ledger.cash.get((USER, currency), ZERO)[0]
        liquidity = ledger.liquidity.get((USER, currency), Decimal(0))
        assert balance + liquidity == (Decimal(1000) if currency == "USD" else 0)
    exchange = sum((amount * MID[c] for (_, c), amount in ledger.liquidity.items()), Decimal(0))
    assert exchange >= 0


def test_a_daily_count_is_only_ever_in_the_base_currency() -> None:
    """One count per type for every currency (saga.funds values each in USD): a record in
    another currency reaching the count would open a second limit beside it."""
    euros = BalanceTransactionCreate(
        username=USER, transaction_type=TransactionType.WITHDRAW, currency="EUR", amount="1"
    )
    dollars = euros.model_copy(update={"currency": "USD"})

    assert counted(dollars) == "WITHDRAW"
    with pytest.raises(ValueError, match="in USD"):
        counted(euros)
