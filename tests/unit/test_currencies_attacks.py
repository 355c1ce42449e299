"""Found by the issue-24 attacker (a hostile customer, a hostile or buggy feed, hostile
infrastructure); each test failed first, then its fix went in with it."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

import pytest

from order_processor.domain.commands import (
    Convert,
    Deposit,
    PlaceOrder,
    ServiceName,
    UpdateRate,
    Withdraw,
    command_digest,
    parse_command,
)
from order_processor.domain.events import EventType
from order_processor.domain.fx import ExchangeRate
from order_processor.domain.orders import OrderCreate, OrderStatus, OrderType
from order_processor.domain.ports import Books, LedgerWrite
from order_processor.exceptions import (
    CommandRejected,
    Reason,
    ServiceUnavailableException,
    StalePriceException,
)
from order_processor.handlers.admission import Admission
from order_processor.handlers.commands import CommandHandler
from order_processor.handlers.prices import PriceMatcher
from order_processor.messaging.consumer import Ack, Message
from order_processor.messaging.producer import CommandFactory, signed_by
from order_processor.security.audit import AuditLogger
from order_processor.security.tokens import TokenManager
from tests.unit.fakes import (
    MemoryBook,
    MemoryCommands,
    MemoryEvents,
    MemoryFailures,
    MemoryInventory,
    MemoryLedger,
)
from tests.unit.test_currencies import NOW, USER, buy, convert, funds, quoted, state, world

# Forged messages


@pytest.mark.parametrize("code", ["u\u017fd", "\u0131nr", "\u017fek"])
def test_a_currency_code_spelt_with_letters_that_uppercase_into_ascii_is_invalid(
    code: str,
) -> None:
    """u\u017fd (a long s) and \u0131nr (a dotless i) uppercase to USD and INR: the worker took
    them, though the published schema (^[A-Za-z]{3}$) refuses them, so another
    producer's validation and the worker's disagreed about the same message."""
    body = funds(Deposit, "5", "EUR").model_dump(mode="json", by_alias=True)
    body["payload"]["currency"] = code

    with pytest.raises(CommandRejected) as refused:
        parse_command(json.dumps(body))

    assert refused.value.reason is Reason.INVALID_COMMAND
    assert "ISO 4217" in refused.value.message


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


# Money: the daily limits across currencies


@pytest.mark.parametrize(
    ("kind", "used", "then"),
    [(Withdraw, "5000", "1"), (Deposit, "9999.99", "0.01")],
    ids=["withdrawals", "deposits"],
)
async def test_a_daily_limit_spent_in_dollars_is_spent_in_every_currency(
    kind: type[Deposit] | type[Withdraw], used: str, then: str
) -> None:
    """Each currency had a count of its own, each at the whole USD limit: 5,000 USD
    withdrawn, a customer (or a thief in their account) converted and withdrew 5,000 USD's
    worth of euros, pounds, yen and francs too, 25,000 USD in one day (DESIGN: withdrawals
    of at most 5,000 USD a UTC day)."""
    saga, ledger, _ = world(usd="30000")
    await saga.handle(convert("10000", "USD", "EUR", command_id="x-eur"))
    await saga.handle(funds(kind, used, "USD", command_id="f-usd"))
    before = state(ledger)

    with pytest.raises(CommandRejected) as refused:
        await saga.handle(funds(kind, then, "EUR", command_id="f-eur"))

    assert refused.value.reason is Reason.LIMIT_EXCEEDED
    assert state(ledger) == before


async def test_a_deposit_worth_more_than_any_amount_at_a_wild_rate_is_over_the_limit() -> None:
    """999,999,999,999,999 EUR at 10^14 USD each: 10^29 USD, 32 digits to the cent."""
    saga, ledger, _ = world(rates={"EUR": "99999999999999"})
    before = state(ledger)

    with pytest.raises(CommandRejected) as refused:
        await saga.handle(funds(Deposit, "999999999999999", "EUR"))

    assert refused.value.reason is Reason.LIMIT_EXCEEDED
    assert state(ledger) == before


async def test_a_deposit_in_euros_counts_its_value_in_dollars_rounded_up() -> None:
    saga, ledger, _ = world()

    await saga.handle(funds(Deposit, "250.01", "EUR"))

    # 250.01 EUR at 1.08 is 270.0108 USD: counted as 270.02, never less than its worth.
    assert ledger.daily[USER, "DEPOSIT", NOW.date().isoformat()] == Decimal("270.02")


# Rates from the future: no decision may use a rate of unknown age


def dated(ledger: MemoryLedger, ahead: timedelta) -> None:
    """The euro's rate as a matcher whose clock runs `ahead` of the workers' stored it
    (admission allows the feed's time up to the skew ahead of the matcher's own clock):
    the store takes any later update only once it is twice the skew ahead of ITS clock,
    so a correct feed's updates are refused as older meanwhile and this rate stands."""
    ledger.rates["EUR"] = ExchangeRate(currency="EUR", rate="1.08", as_of=NOW + ahead)


@pytest.mark.parametrize(
    "command",
    [
        convert("100", "USD", "EUR"),
        funds(Deposit, "100", "EUR"),
        buy("BTCEUR", "1"),
        buy("BTC", "1", pay_currency="EUR"),
    ],
    ids=["convert", "deposit", "euro asset", "paid in euros"],
)
async def test_a_rate_dated_beyond_the_clock_skew_ahead_is_stale_for_every_decision(
    command: Convert | Deposit | PlaceOrder,
) -> None:
    """It was fresh for as long as it was ahead plus the configured age: an hour ahead,
    an hour and five minutes of decisions on a rate nobody could date."""
    saga, ledger, events = world(usd="1000")
    ledger.cash[USER, "EUR"] = (Decimal("1000.00"), Decimal("0.00"))
    quoted(ledger, "BTCEUR", "100", "EUR")
    quoted(ledger, "BTC", "100", "USD")
    dated(ledger, timedelta(hours=1))
    before = state(ledger)

    with pytest.raises(CommandRejected) as refused:
        await saga.handle(command)

    assert refused.value.reason is Reason.FX_RATE_STALE
    assert state(ledger) == before
    assert ledger.orders == {}
    assert events.published == []


async def test_a_rate_dated_within_the_clock_skew_ahead_is_used() -> None:
    saga, ledger, _ = world(usd="1000")
    dated(ledger, 2 * saga.limits.clock_skew)

    await saga.handle(convert("100", "USD", "EUR"))

    assert ledger.cash[USER, "EUR"] == (Decimal("92.12"), Decimal("0.00"))


# The feed: rates for what the exchange does not hold


@dataclass
class MemoryRates:
    """`ExchangeRates` in memory: a rate written only when newer, as the store writes it."""

    stored: dict[str, ExchangeRate] = field(default_factory=dict)

    async def change_rate(
        self, currency: str, rate: Decimal | str, *, as_of: datetime, command_id: str
    ) -> ExchangeRate:
        old = self.stored.get(currency)
        if old is not None and not (
            old.as_of < as_of or (old.as_of == as_of and old.command_id == command_id)
        ):
            raise StalePriceException(f"a newer {currency} rate is stored", current=old)
        written = ExchangeRate(currency=currency, rate=rate, as_of=as_of, command_id=command_id)
        self.stored[currency] = written
        return written

    async def rates(self) -> dict[str, ExchangeRate]:
        return dict(self.stored)


TOKENS = TokenManager("attacker-secret-" + "a" * 32, clock=lambda: NOW)
C = TypeVar("C", Convert, Deposit, Withdraw, PlaceOrder)


def feed() -> tuple[PriceMatcher, MemoryRates, MemoryEvents]:
    rates, events = MemoryRates(), MemoryEvents()
    matcher = PriceMatcher(
        assets=MemoryInventory(clock=lambda: NOW),
        orders=MemoryBook(clock=lambda: NOW),
        commands=MemoryCommands(),
        admission=Admission(TOKENS, clock=lambda: NOW),
        publisher=events,
        audit=AuditLogger(),
        clock=lambda: NOW,
        rates=rates,
    )
    return matcher, rates, events


def rate_update(currency: str, rate: str, seconds: float = 0) -> Message:
    update = CommandFactory(TOKENS).update_rate(currency, rate)
    dated = update.model_copy(update={"issued_at": NOW + timedelta(seconds=seconds)})
    signed: UpdateRate = signed_by(TOKENS, ServiceName.PRICE_FEED, dated)
    return Message(f"m-{signed.command_id}", "receipt", signed.body(), 1)


@pytest.mark.parametrize("currency", ["SEK", "XAU", "XXX", "XTS"])
async def test_a_rate_for_a_currency_the_exchange_does_not_hold_is_rejected_and_not_stored(
    currency: str,
) -> None:
    """The feed's rate of gold, of the "no currency" code, of the testing code, of a
    currency not configured: every one was written to the rates partition (and listed
    beside the real ones) though nothing can ever use it."""
    matcher, rates, events = feed()

    await matcher.handle_group("m", [rate_update(currency, "2")])

    assert rates.stored == {}
    (event,) = events.published
    assert (event.event_type, event.data["reason"]) == (
        EventType.COMMAND_REJECTED,
        Reason.CURRENCY_NOT_ENABLED,
    )


async def test_a_rate_for_a_currency_the_exchange_holds_is_stored() -> None:
    matcher, rates, events = feed()

    await matcher.handle_group("m", [rate_update("eur", "1.0842")])

    assert (rates.stored["EUR"].rate, rates.stored["EUR"].as_of) == (Decimal("1.0842"), NOW)
    assert events.published == []


# Attacks that held, kept as tests: who may send the new commands, and a conversion's
# write committed with its answer lost.


def admitted_or_why(command: Convert | UpdateRate, auth: str) -> Reason | None:
    try:
        Admission(TOKENS, clock=lambda: NOW).admit(command.model_copy(update={"auth": auth}).body())
    except CommandRejected as rejection:
        return rejection.reason
    return None


def test_only_the_customer_converts_and_only_the_feed_or_an_admin_sets_a_rate() -> None:
    factory = CommandFactory(TOKENS)
    conversion = factory.convert(USER, "5", "USD", "EUR", token="t")
    conversion = conversion.model_copy(update={"issued_at": NOW})
    rate = factory.update_rate("EUR", "1.08").model_copy(update={"issued_at": NOW})
    customer, other = TOKENS.create_access_token(USER), TOKENS.create_access_token("bob_0001")
    admin = TOKENS.create_access_token("root", role="admin")

    assert admitted_or_why(conversion, customer) is None
    assert admitted_or_why(conversion, other) is Reason.FORBIDDEN
    assert admitted_or_why(conversion, admin) is Reason.FORBIDDEN  # a customer's own command
    for service in ServiceName:  # a token each service signs this very message with
        signed = TOKENS.create_access_token(
            service, role="service", command=command_digest(conversion)
        )
        assert admitted_or_why(conversion, signed) is Reason.FORBIDDEN
    assert admitted_or_why(rate, signed_by(TOKENS, ServiceName.PRICE_FEED, rate).auth) is None
    assert admitted_or_why(rate, admin) is None
    assert admitted_or_why(rate, customer) is Reason.FORBIDDEN
    assert admitted_or_why(rate, signed_by(TOKENS, ServiceName.PAYMENTS, rate).auth) is (
        Reason.FORBIDDEN
    )


class AnswersLost(MemoryLedger):
    """Its first write (alone or together) commits, then its answer is lost: a read
    timeout after DynamoDB applied it, botocore's own retries spent."""

    lost = 0

    async def write(self, change: LedgerWrite) -> None:
        await super().write(change)
        self._lose()

    async def write_together(self, books: Books, changes: Sequence[LedgerWrite]) -> None:
        await super().write_together(books, changes)
        self._lose()

    def _lose(self) -> None:
        if not self.lost:
            self.lost += 1
            raise ServiceUnavailableException("DynamoDB is unreachable: Read timeout")


def customer(command: C) -> C:
    dated = command.model_copy(update={"issued_at": NOW})
    if isinstance(dated, Deposit):
        return signed_by(TOKENS, ServiceName.PAYMENTS, dated)
    return dated.model_copy(update={"auth": TOKENS.create_access_token(USER)})


@pytest.mark.parametrize("together", [False, True], ids=["alone", "in a batch"])
async def test_currency_writes_whose_answers_were_lost_are_answered_as_applied_once(
    together: bool,
) -> None:
    factory = CommandFactory(TOKENS)
    commands = [
        customer(factory.convert(USER, "100", "USD", "EUR", token="t")),
        customer(factory.deposit(USER, "1000", currency="JPY")),
        customer(factory.withdraw(USER, "50", currency="EUR", token="t")),
        customer(
            factory.place_order(
                USER,
                OrderCreate(
                    order_type=OrderType.MARKET_BUY,
                    asset_id="BTCEUR",
                    quantity="1",
                    pay_currency="USD",
                ),
                order_id="o-1",
                token="t",
            )
        ),
    ]
    saga, seeded, _ = world(usd="1000")
    ledger = AnswersLost()
    ledger.users, ledger.cash, ledger.rates = seeded.users, seeded.cash, seeded.rates
    quoted(ledger, "BTCEUR", "50", "EUR")
    events = MemoryEvents()
    handler = CommandHandler(
        saga=replace(saga, ledger=ledger, events=events),
        events=events,
        admission=Admission(TOKENS, clock=lambda: NOW),
        audit=AuditLogger(io.StringIO()),
        failures=MemoryFailures(),
        group_commit=together,
    )
    messages = [Message(f"m-{i}", f"r-{i}", c.body(), 1) for i, c in enumerate(commands)]

    outcomes = await handler.handle_group(USER, messages)

    assert set(outcomes.values()) == {Ack()}
    assert ledger.lost == 1
    # 100 USD to 92.12 EUR, less 50 EUR withdrawn; 50 EUR bought for 54.28 USD: each once.
    assert ledger.cash[USER, "USD"] == (Decimal("845.72"), Decimal("0.00"))
    assert ledger.cash[USER, "EUR"] == (Decimal("42.12"), Decimal("0.00"))
    assert ledger.cash[USER, "JPY"] == (Decimal("1000"), Decimal("0"))
    assert dict(ledger.liquidity) == {
        (USER, "USD"): Decimal("154.28"),
        (USER, "EUR"): Decimal("-142.12"),
    }
    kinds = [event.event_type for event in events.published]
    assert kinds.count(EventType.BALANCE_CONVERTED) == 1
    assert kinds.count(EventType.BALANCE_DEPOSITED) == 1
    assert kinds.count(EventType.BALANCE_WITHDRAWN) == 1
    assert kinds[-1] == EventType.ORDER_COMPLETED
