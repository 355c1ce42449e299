"""The demo's and the benchmark's latencies: each command timed from its send to the event
that answers it; the seed never timed. And what the demo's summary says per currency."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from order_processor.demo.per_currency import Holding, currency_lines
from order_processor.demo.tally import Kind, Tally
from order_processor.domain.balances import BalanceTransactionCreate, TransactionType
from order_processor.domain.commands import AnyCommand, Convert, PlaceOrder
from order_processor.domain.events import (
    Event,
    EventType,
    conversion_event,
    funds_event,
    order_event,
    rejection_event,
)
from order_processor.domain.orders import Order, OrderCreate, OrderStatus, OrderType
from order_processor.exceptions import Reason
from order_processor.messaging.producer import CommandFactory
from order_processor.security.tokens import TokenManager

FACTORY = CommandFactory(TokenManager("tally-secret-" + "t" * 32))


def order_command(kind: OrderType, **fields: str) -> PlaceOrder:
    request = OrderCreate.model_validate(
        {"order_type": kind, "asset_id": "BTC", "quantity": "1", **fields}
    )
    return FACTORY.place_order("trader", request)


def state(command: PlaceOrder, status: OrderStatus) -> Event:
    placed = Order.place("trader", command.payload, order_id=command.payload.order_id)
    return order_event(placed.evolve(status=status, sequence=2))


def funds(command: AnyCommand, event_type: EventType) -> Event:
    return Event(
        event_id=f"funds:{command.command_id}",
        event_type=event_type,
        username="trader",
        data={"transaction_id": command.command_id, "amount": "100.00", "currency": "USD"},
    )


def test_each_kind_is_timed_to_the_event_that_answers_it() -> None:
    tally = Tally()
    market = order_command(OrderType.MARKET_BUY)
    limit = order_command(OrderType.LIMIT_BUY, limit_price="10")
    deposit = FACTORY.deposit("trader", "100")
    tally.sent([market, limit, deposit], now=0.0)

    tally.on_event(state(market, OrderStatus.PENDING), True, now=0.05)  # not an answer
    tally.on_event(state(limit, OrderStatus.QUEUED), True, now=0.08)
    tally.on_event(state(market, OrderStatus.COMPLETED), True, now=0.12)
    tally.on_event(funds(deposit, EventType.BALANCE_DEPOSITED), True, now=0.2)

    assert tally.latencies_ms(Kind.MARKET) == [120.0]
    assert tally.latencies_ms(Kind.RESTING) == [80.0]
    assert tally.latencies_ms(Kind.DEPOSIT) == [200.0]
    assert tally.report()["market order"]["answered"] == 1


def test_a_cancel_is_answered_by_its_orders_end_or_its_own_rejection() -> None:
    tally = Tally()
    resting = order_command(OrderType.LIMIT_BUY, limit_price="10")
    tally.sent([resting], now=0.0)
    tally.on_event(state(resting, OrderStatus.QUEUED), True, now=0.1)
    cancel = FACTORY.cancel("trader", resting.payload.order_id)
    late = FACTORY.cancel("trader", "another-order")
    tally.sent([cancel, late], now=1.0)

    tally.on_event(state(resting, OrderStatus.CANCELLED), True, now=1.15)
    refused = rejection_event(
        reason=Reason.ORDER_NOT_FOUND,
        message="no such order",
        message_id="m-1",
        username="trader",
        command_id=late.command_id,
    )
    tally.on_event(refused, True, now=1.3)

    assert [round(ms) for ms in tally.latencies_ms(Kind.CANCEL)] == [150, 300]
    assert tally.rejected == {"ORDER_NOT_FOUND": 1}


def test_the_seed_is_counted_but_never_timed() -> None:
    tally = Tally()
    seed = order_command(OrderType.MARKET_BUY)
    tally.sent([seed], timed=False, now=0.0)
    assert tally.open_orders == 1

    tally.on_event(state(seed, OrderStatus.COMPLETED), True, now=4.0)  # after the start-up

    assert tally.open_orders == 0
    assert tally.latencies_ms(Kind.MARKET) == []
    assert tally.commands["PlaceOrder"] == 1


def test_a_copy_of_an_event_answers_nothing_twice() -> None:
    tally = Tally()
    market = order_command(OrderType.MARKET_SELL)
    tally.sent([market], now=0.0)
    final = state(market, OrderStatus.FAILED)
    tally.on_event(final, True, now=0.1)
    tally.on_event(final, False, now=0.9)

    assert tally.latencies_ms(Kind.MARKET) == [100.0]
    assert len(tally.final_at) == 1


AT = datetime(2026, 12, 8, 9, 30, tzinfo=UTC)


def converted(command: Convert, bought: str, rate: str) -> Event:
    payload = command.payload
    terms = {"username": "trader", "rate": rate, "spread_percent": "0.5"}
    sold = BalanceTransactionCreate(
        transaction_type=TransactionType.CONVERSION_OUT,
        currency=payload.sell,
        amount=payload.amount,
        counter_currency=payload.buy,
        counter_amount=bought,
        **terms,
    )
    into = sold.model_copy(
        update={
            "transaction_type": TransactionType.CONVERSION_IN,
            "currency": payload.buy,
            "amount": Decimal(bought),
        }
    )
    return conversion_event(command.command_id, sold, into, AT)


def deposited(currency: str, amount: str) -> Event:
    record = BalanceTransactionCreate(
        username="trader",
        transaction_type=TransactionType.DEPOSIT,
        currency=currency,
        amount=amount,
    )
    return funds_event(record, AT)


def test_a_conversion_is_timed_to_its_converted_event_and_a_refusal_counted() -> None:
    tally = Tally()
    conversion = FACTORY.convert("trader", "100.00", "EUR", "USD")
    too_much = FACTORY.convert("trader", "90000", "JPY", "GBP")
    tally.sent([conversion, too_much], now=0.0)

    tally.on_event(converted(conversion, "107.95", "1.0795"), True, now=0.25)
    refused = rejection_event(
        reason=Reason.INSUFFICIENT_BALANCE,
        message="not enough JPY",
        message_id="m-2",
        username="trader",
        command_id=too_much.command_id,
    )
    tally.on_event(refused, True, now=0.3)

    assert tally.latencies_ms(Kind.CONVERT) == [250.0, 300.0]
    assert tally.refused[Kind.CONVERT] == 1
    assert tally.report()["conversion"]["answered"] == 2


def test_the_summary_says_per_currency_what_came_in_was_converted_and_is_held() -> None:
    tally = Tally()
    conversion = FACTORY.convert("trader", "100.00", "EUR", "USD")
    for event in (
        deposited("EUR", "2764.97"),
        deposited("JPY", "447761"),
        converted(conversion, "107.95", "1.0795"),
    ):
        tally.on_event(event, True)
    tally.on_event(deposited("EUR", "2764.97"), False)  # a copy: counted once
    held = {
        "USD": Holding(available=Decimal("107.95"), liquidity=Decimal("-107.95")),
        "EUR": Holding(
            available=Decimal("2564.97"), held=Decimal("100.00"), liquidity=Decimal(100)
        ),
        "JPY": Holding(available=Decimal(447761)),
    }
    rates = {"EUR": Decimal("1.08500000"), "JPY": Decimal("0.00670000")}

    text = "\n".join(currency_lines(tally.money, held, rates, updates=6))

    assert "USD per unit: EUR 1.085, JPY 0.0067 (6 updates sent)" in text
    assert (
        "  EUR: 1 deposit (2,764.97 EUR), 0 withdrawals (0.00 EUR); "
        "conversions: 1 sold 100.00 EUR, 0 bought 0.00 EUR\n"
        "       users hold 2,664.97 EUR (100.00 EUR of it held for orders); "
        "the exchange's liquidity took in 100.00 EUR net from conversions"
    ) in text
    assert "conversions: 0 sold 0.00 USD, 1 bought 107.95 USD" in text
    assert "the exchange's liquidity paid out 107.95 USD net" in text
    assert "  JPY: 1 deposit (447,761 JPY)" in text  # no minor unit
    assert text.index("  USD:") < text.index("  EUR:") < text.index("  JPY:")
    assert "Decimal(" not in text
