"""The demo's and the benchmark's latencies: each command timed from its send to the event
that answers it; the seed never timed."""

from __future__ import annotations

from order_processor.demo.tally import Kind, Tally
from order_processor.domain.commands import AnyCommand, PlaceOrder
from order_processor.domain.events import Event, EventType, order_event, rejection_event
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
        data={"transaction_id": command.command_id},
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
