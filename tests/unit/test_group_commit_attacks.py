"""Attacks on the group commit, over the in-memory ports: batches the first property test
does not draw (several assets, one never listed, a lowercase id; orders resting from
before the batch; the matcher's executions and the sweeper's expiries; a user without a
USD balance, a disabled one; a clock crossing midnight), each handled together and one by
one, must leave the same ledger, outcomes and events."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from order_processor.domain.assets import Asset
from order_processor.domain.commands import (
    AnyCommand,
    ExecuteOrder,
    ExecutePayload,
    ExpireOrder,
    OrderReference,
    PlaceOrder,
    ServiceName,
)
from order_processor.domain.events import Event, EventType
from order_processor.domain.orders import OrderCreate, OrderType
from order_processor.domain.ports import Books, LedgerWrite, items_touched
from order_processor.exceptions import ServiceUnavailableException
from order_processor.handlers.commands import CommandHandler
from order_processor.messaging.consumer import Ack, Message
from order_processor.messaging.producer import UNSIGNED, signed_by
from order_processor.store.ledger import DynamoLedger
from tests.unit.fakes import MemoryEvents
from tests.unit.test_group_commit import (
    FACTORY,
    TOKENS,
    CountingLedger,
    events_of,
    handler_over,
    ledger_of,
    messages_of,
)
from tests.unit.test_saga import NOW, USER

ASSETS = ["BTC", "ETH", "eth", "XRP"]  # XRP is never listed


def matcher_execute(order_id: str, asset_id: str | None, username: str = USER) -> ExecuteOrder:
    return signed_by(
        TOKENS,
        ServiceName.LIMIT_MATCHER,
        ExecuteOrder(
            command_id=f"execute-{order_id}",
            username=username,
            auth=UNSIGNED,
            payload=ExecutePayload(order_id=order_id, asset_id=asset_id),
        ),
    )


def sweeper_expire(order_id: str, username: str = USER) -> ExpireOrder:
    return signed_by(
        TOKENS,
        ServiceName.EXPIRY_SWEEPER,
        ExpireOrder(
            command_id=f"expire-{order_id}",
            username=username,
            auth=UNSIGNED,
            payload=OrderReference(order_id=order_id),
        ),
    )


def placed(kind: OrderType, asset: str, quantity: str, price: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"order_type": kind, "asset_id": asset, "quantity": quantity}
    if kind.is_limit:
        fields["limit_price"] = price
        fields["expires_at"] = NOW + timedelta(hours=1)
    elif kind.is_trailing:
        fields["trail_amount"] = "5"
    elif not kind.value.startswith("MARKET"):
        fields["stop_price"] = price
    return fields


kinds = st.sampled_from(
    [
        OrderType.MARKET_BUY,
        OrderType.MARKET_SELL,
        OrderType.LIMIT_BUY,
        OrderType.LIMIT_SELL,
        OrderType.STOP_SELL,
        OrderType.STOP_BUY,
        OrderType.TAKE_PROFIT_SELL,
        OrderType.TAKE_PROFIT_BUY,
        OrderType.TRAILING_STOP_SELL,
        OrderType.TRAILING_STOP_BUY,
    ]
)
steps = st.one_of(
    st.tuples(st.just("deposit"), st.sampled_from(["5", "400", "4000"])),
    st.tuples(st.just("withdraw"), st.sampled_from(["5", "400", "3000"])),
    st.tuples(
        st.just("order"),
        kinds,
        st.sampled_from(ASSETS),
        st.sampled_from(["0.5", "3"]),
        st.sampled_from(["90", "100", "120"]),
    ),
    st.tuples(st.sampled_from(["cancel", "execute", "expire"]), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("again"), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("reuse"), st.integers(0, 9), kinds),  # another order, an old id
)


def commands_of(
    plan: list[tuple[Any, ...]],
    earlier: list[str],
    username: str = USER,
    names: dict[str, str] | None = None,
) -> list[AnyCommand]:
    """The plan's commands for `username`, its assets renamed by `names` (the store's
    tests list their own)."""
    name = (names or {}).get
    sent: list[AnyCommand] = []
    orders = list(earlier)
    for step in plan:
        kind = step[0]
        if kind == "deposit":
            sent.append(FACTORY.deposit(username, step[1]))
        elif kind == "withdraw":
            sent.append(FACTORY.withdraw(username, step[1]))
        elif kind == "order":
            kind_, asset, quantity, price = step[1:]
            request = OrderCreate(**placed(kind_, name(asset, asset), quantity, price))
            command = FACTORY.place_order(username, request)
            orders.append(command.payload.order_id)
            sent.append(command)
        elif kind in {"cancel", "execute", "expire"}:
            order_id = orders[step[1] % len(orders)] if orders else "never-placed"
            if kind == "cancel":
                sent.append(FACTORY.cancel(username, order_id))
            elif kind == "execute":
                asset_id = name("BTC", "BTC") if step[2] else None
                sent.append(matcher_execute(order_id, asset_id, username))
            else:
                sent.append(sweeper_expire(order_id, username))
        elif kind == "reuse" and orders:
            request = OrderCreate(**placed(step[2], name("BTC", "BTC"), "1", "100"))
            order_id = orders[step[1] % len(orders)]
            sent.append(FACTORY.place_order(username, request, order_id=order_id))
        elif kind == "again" and sent:
            sent.append(sent[step[1] % len(sent)])
    return sent


World = tuple[CommandHandler, CountingLedger]


async def worlds(
    usd: str | None, btc: str | None, active: bool, before: list[tuple[Any, ...]]
) -> tuple[World, World, list[str]]:
    """Two identical worlds, the `before` orders placed one by one in each (resting)."""
    pair = []
    setup = commands_of(before, [])
    for together in (False, True):
        handler, ledger = handler_over("0", "0", together=together)
        ledger.assets["ETH"] = Asset(asset_id="ETH", name="Ether", price=Decimal("100"))
        ledger.cash[USER, "USD"] = (Decimal("10000.00"), Decimal("0.00"))
        ledger.holdings[(USER, "BTC")] = (Decimal(50), Decimal(0))
        ledger.holdings[(USER, "ETH")] = (Decimal(50), Decimal(0))
        await handler.handle_group(USER, messages_of(setup))
        # then the balances the batch starts from
        if usd is None and not ledger.cash[USER, "USD"][1]:
            del ledger.cash[USER, "USD"]
        elif usd is not None:
            held = ledger.cash[USER, "USD"][1]
            ledger.cash[USER, "USD"] = (Decimal(usd).quantize(Decimal("0.01")), held)
        for asset in ("BTC", "ETH"):
            held_asset = ledger.holdings[(USER, asset)][1]
            if btc is None and not held_asset:
                del ledger.holdings[(USER, asset)]
            else:
                ledger.holdings[(USER, asset)] = (Decimal(btc or 0), held_asset)
        if not active:
            user = ledger.users[USER]
            ledger.users[USER] = user.model_copy(update={"is_active": False})
        assert isinstance(handler.events, MemoryEvents)
        handler.events.published.clear()
        pair.append((handler, ledger))
    order_ids = [c.payload.order_id for c in setup if isinstance(c, PlaceOrder)]
    return pair[0], pair[1], order_ids


def assert_alike(
    batched: tuple[CommandHandler, CountingLedger, dict[str, Any]],
    one_by_one: tuple[CommandHandler, CountingLedger, dict[str, Any]],
) -> None:
    """The same outcomes, ledger and events, batched or one by one."""
    (together, together_ledger, outcomes), (alone, alone_ledger, expected) = batched, one_by_one
    assert outcomes == expected
    assert ledger_of(together_ledger) == ledger_of(alone_ledger)
    assert isinstance(together.events, MemoryEvents)
    assert isinstance(alone.events, MemoryEvents)
    assert events_of(together.events) == events_of(alone.events)


resting = st.tuples(
    st.just("order"),
    st.sampled_from(
        [
            OrderType.LIMIT_BUY,
            OrderType.LIMIT_SELL,
            OrderType.STOP_SELL,
            OrderType.TAKE_PROFIT_BUY,
            OrderType.TRAILING_STOP_SELL,
        ]
    ),
    st.sampled_from(["BTC", "ETH"]),
    st.sampled_from(["0.5", "3"]),
    st.sampled_from(["90", "95"]),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=st.lists(resting, max_size=3),
    plan=st.lists(steps, min_size=2, max_size=10),
    usd=st.sampled_from([None, "0", "300", "5000"]),
    btc=st.sampled_from([None, "0", "5"]),
    active=st.booleans(),
)
async def test_any_batch_of_every_command_type_leaves_what_one_by_one_leaves(
    before: list[tuple[Any, ...]],
    plan: list[tuple[Any, ...]],
    usd: str | None,
    btc: str | None,
    active: bool,
) -> None:
    (alone, alone_ledger), (together, together_ledger), earlier = await worlds(
        usd, btc, active, before
    )
    messages = messages_of(commands_of(plan, earlier))

    expected = await alone.handle_group(USER, messages)
    outcomes = await together.handle_group(USER, messages)

    assert all(isinstance(o, Ack) for o in outcomes.values())
    assert_alike((together, together_ledger, outcomes), (alone, alone_ledger, expected))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=st.lists(resting, max_size=3),
    plan=st.lists(steps, min_size=2, max_size=10),
    usd=st.sampled_from([None, "0", "300", "5000"]),
    btc=st.sampled_from([None, "0", "5"]),
)
async def test_a_batch_delivered_again_after_it_was_done_is_answered_as_one_by_one_answers_it(
    before: list[tuple[Any, ...]], plan: list[tuple[Any, ...]], usd: str | None, btc: str | None
) -> None:
    """Each command finds its records: nothing moves twice, each is answered again."""
    (alone, alone_ledger), (together, together_ledger), earlier = await worlds(
        usd, btc, True, before
    )
    messages = messages_of(commands_of(plan, earlier))
    again = [
        Message(m.message_id, f"{m.receipt_handle}-again", m.body, receive_count=2)
        for m in messages
    ]
    await alone.handle_group(USER, messages)
    await together.handle_group(USER, messages)

    expected = await alone.handle_group(USER, again)
    outcomes = await together.handle_group(USER, again)

    assert_alike((together, together_ledger, outcomes), (alone, alone_ledger, expected))


class AnswerLost(CountingLedger):
    """The batch's write commits, but its answer never arrives (a timeout after the
    commit): the worker cannot tell it from a write that never happened."""

    async def write_together(self, books: Books, changes: Any) -> None:
        await super().write_together(books, changes)
        raise ServiceUnavailableException("read timeout after the commit")


class PublishFailsOnce(MemoryEvents):
    """The notification service refuses the batch's one publish (not transient)."""

    failed: bool = False

    async def publish(self, events: Sequence[Event]) -> None:
        if not self.failed and len(events) > 1:
            self.failed = True
            raise PermissionError("SNS said no")
        await super().publish(events)


def mixed_plan() -> list[AnyCommand]:
    resting = FACTORY.place_order(
        USER, OrderCreate(**placed(OrderType.LIMIT_BUY, "BTC", "1", "90"))
    )
    return [
        FACTORY.deposit(USER, "200"),
        FACTORY.place_order(USER, OrderCreate(**placed(OrderType.MARKET_BUY, "BTC", "2", None))),
        resting,
        FACTORY.cancel(USER, resting.payload.order_id),
        FACTORY.withdraw(USER, "100"),
        FACTORY.place_order(USER, OrderCreate(**placed(OrderType.MARKET_SELL, "BTC", "1", None))),
    ]


def last_words(events: MemoryEvents) -> dict[str, tuple[Any, ...]]:
    """Each order's or funds movement's last event: what a follower ends up believing."""
    last: dict[str, tuple[Any, ...]] = {}
    for e in events.published:
        key = e.order_id or str(e.data.get("transaction_id"))
        last[key] = (e.event_type, e.status, e.sequence)
    return last


async def test_a_batch_whose_write_committed_but_whose_answer_was_lost_is_answered_as_applied() -> (
    None
):
    commands = mixed_plan()
    alone, alone_ledger = handler_over("1000", "5", together=False)
    together, base = handler_over("1000", "5", together=True)
    lost = AnswerLost(**{name: getattr(base, name) for name in STATE})
    together = replace(together, saga=replace(together.saga, ledger=lost))

    expected = await alone.handle_group(USER, messages_of(commands))
    outcomes = await together.handle_group(USER, messages_of(commands))

    assert outcomes == expected
    assert ledger_of(lost) == ledger_of(alone_ledger)
    assert isinstance(together.events, MemoryEvents)
    assert isinstance(alone.events, MemoryEvents)
    assert last_words(together.events) == last_words(alone.events)
    kinds = [e.event_type for e in together.events.published]
    assert EventType.COMMAND_REJECTED not in kinds


async def test_a_batch_whose_publish_failed_after_its_write_is_announced_once_more() -> None:
    commands = mixed_plan()
    alone, alone_ledger = handler_over("1000", "5", together=False)
    together, ledger = handler_over("1000", "5", together=True)
    events = PublishFailsOnce()
    together = replace(together, events=events, saga=replace(together.saga, events=events))

    expected = await alone.handle_group(USER, messages_of(commands))
    outcomes = await together.handle_group(USER, messages_of(commands))

    assert outcomes == expected
    assert ledger_of(ledger) == ledger_of(alone_ledger)
    assert isinstance(alone.events, MemoryEvents)
    assert last_words(events) == last_words(alone.events)


STATE = ("fences", "orders", "users", "assets", "cash", "holdings", "cash_records", "asset_records")


class Kept(CountingLedger):
    """Keeps what each write together was asked to write."""

    batches: list[tuple[Books, list[LedgerWrite]]]

    async def write_together(self, books: Books, changes: Any) -> None:
        self.batches.append((books, list(changes)))
        await super().write_together(books, changes)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=st.lists(resting, max_size=3), plan=st.lists(steps, min_size=2, max_size=10))
async def test_the_items_a_batch_is_counted_to_touch_are_the_parts_the_store_is_sent(
    before: list[tuple[Any, ...]], plan: list[tuple[Any, ...]]
) -> None:
    """The item limit is checked with `items_touched`: it must count what the store's
    TransactWriteItems will carry, one part per item."""
    (_, _), (together, ledger), earlier = await worlds("5000", "5", True, before)
    kept = Kept(**{name: getattr(ledger, name) for name in STATE})
    kept.batches = []
    handler = replace(together, saga=replace(together.saga, ledger=kept))
    store = DynamoLedger(cast(Any, None), "users", "orders", "inventory")

    await handler.handle_group(USER, messages_of(commands_of(plan, earlier)))

    for books, changes in kept.batches:
        parts = store._together(books, changes)
        items = [item_of(part) for part in parts]
        assert len(set(items)) == len(items)  # DynamoDB allows one operation per item
        assert items_touched(changes) == len(parts)


def item_of(part: dict[str, Any]) -> tuple[str, str, str]:
    (operation,) = part.values()
    key = operation.get("Key") or operation["Item"]
    return operation["TableName"], json.dumps(key["PK"]), json.dumps(key["SK"])


async def test_a_withdrawal_refused_then_sent_again_after_a_deposit_is_applied_once() -> None:
    withdrawal = FACTORY.withdraw(USER, "100")
    commands = [withdrawal, FACTORY.deposit(USER, "100"), withdrawal]
    alone, alone_ledger = handler_over("50", "0", together=False)
    together, ledger = handler_over("50", "0", together=True)

    expected = await alone.handle_group(USER, messages_of(commands))
    outcomes = await together.handle_group(USER, messages_of(commands))

    assert outcomes == expected
    assert ledger.available(USER) == alone_ledger.available(USER) == (Decimal("50.00"), Decimal(0))
    assert isinstance(together.events, MemoryEvents)
    assert [e.event_type for e in together.events.published] == [
        EventType.COMMAND_REJECTED,
        EventType.BALANCE_DEPOSITED,
        EventType.BALANCE_WITHDRAWN,
    ]
