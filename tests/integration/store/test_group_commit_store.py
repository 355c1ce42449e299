"""Attacks on the group commit against the real store: batches of one user's commands of
every type, handled together over DynamoLedger, must be written in one transaction that
DynamoDB accepts (no ValidationException: two parts on one item, an unused value) and
leave what the same commands leave one by one over the in-memory ledger."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from order_processor.bootstrap import (
    AwsClients,
    get_asset_balance_dao,
    get_asset_dao,
    get_balance_dao,
    get_user_dao,
)
from order_processor.domain.assets import Asset, AssetCreate
from order_processor.domain.commands import AnyCommand, PlaceOrder
from order_processor.domain.events import EventType
from order_processor.domain.orders import OrderCreate, OrderType
from order_processor.domain.ports import Books
from order_processor.domain.users import User, UserCreate, UserUpdate
from order_processor.exceptions import BalanceNotFoundException
from order_processor.handlers.admission import Admission
from order_processor.handlers.commands import CommandHandler
from order_processor.messaging.consumer import Ack
from order_processor.saga.engine import Saga
from order_processor.security.audit import AuditLogger
from order_processor.store import keys
from order_processor.store.ledger import DynamoLedger
from tests.unit.fakes import MemoryEvents, MemoryFailures, MemoryLedger
from tests.unit.test_group_commit import FACTORY, TOKENS, messages_of
from tests.unit.test_group_commit_attacks import (
    commands_of,
    matcher_execute,
    resting,
    steps,
    sweeper_expire,
)
from tests.unit.test_saga import LIMITS


@dataclass(frozen=True)
class WatchedLedger(DynamoLedger):
    """DynamoLedger, keeping what each write together came to."""

    refusals: list[BaseException] = field(default_factory=list)
    committed: list[int] = field(default_factory=list)

    async def write_together(self, books: Books, changes: Any) -> None:
        changes = list(changes)
        try:
            await super().write_together(books, changes)
        except BaseException as exc:
            self.refusals.append(exc)
            raise
        self.committed.append(len(changes))


@dataclass
class Counted:
    """The handler's counts: how each batch went."""

    batches: list[str] = field(default_factory=list)

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        if name == "group_commits_total":
            self.batches.append(labels["outcome"])

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        pass


def handler(ledger: Any, *, together: bool) -> CommandHandler:
    events = MemoryEvents()
    return CommandHandler(
        metrics=Counted(),
        saga=Saga(ledger, events, LIMITS),
        events=events,
        admission=Admission(TOKENS),
        audit=AuditLogger(io.StringIO()),
        failures=MemoryFailures(),
        group_commit=together,
    )


@pytest.fixture
def coins() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:6].upper()
    return f"B{tag}", f"E{tag}"


async def seeded_store(aws: AwsClients, username: str, coins: tuple[str, str]) -> WatchedLedger:
    await get_user_dao(aws).create_user(
        UserCreate(
            username=username, email=f"{username}@example.com", first_name="A", last_name="B"
        ),
        password_hash="x",
    )
    for coin in coins:
        await get_asset_dao(aws).create_asset(AssetCreate(asset_id=coin, name="Coin", price="100"))
        await get_asset_balance_dao(aws).upsert_asset_balance(username, coin, "50")
    r = aws.resources
    ledger = WatchedLedger(aws.dynamodb, r.users_table, r.orders_table, r.inventory_table)
    await handler(ledger, together=False).handle_group(
        username, messages_of([FACTORY.deposit(username, "9000")])
    )
    return ledger


async def seeded_memory(username: str, coins: tuple[str, str]) -> MemoryLedger:
    ledger = MemoryLedger()
    ledger.users[username] = User(
        username=username, email="a@example.com", first_name="A", last_name="B", password_hash="x"
    )
    ledger.cash[username, "USD"] = (Decimal("0.00"), Decimal("0.00"))
    for coin in coins:
        ledger.assets[coin] = Asset(asset_id=coin, name="Coin", price=Decimal("100"))
        ledger.holdings[(username, coin)] = (Decimal(50), Decimal(0))
    await handler(ledger, together=False).handle_group(
        username, messages_of([FACTORY.deposit(username, "9000")])
    )
    return ledger


def order(username: str, kind: OrderType, coin: str, quantity: str, **more: Any) -> Any:
    return FACTORY.place_order(
        username, OrderCreate(order_type=kind, asset_id=coin, quantity=quantity, **more)
    )


def mixed_batch(username: str, coins: tuple[str, str]) -> list[AnyCommand]:
    """Ten commands of every kind a user's group carries, over two assets."""
    btc, eth = coins
    resting_buy = order(username, OrderType.LIMIT_BUY, btc, "2", limit_price="90")
    resting_sell = order(username, OrderType.LIMIT_SELL, eth, "3", limit_price="150")
    executable = order(username, OrderType.LIMIT_BUY, eth, "1", limit_price="120")
    return [
        FACTORY.deposit(username, "100"),
        order(username, OrderType.MARKET_BUY, btc, "1"),
        resting_buy,
        resting_sell,
        FACTORY.withdraw(username, "50"),
        order(username, OrderType.MARKET_SELL, eth.lower(), "2"),
        FACTORY.cancel(username, resting_buy.payload.order_id),
        executable,
        matcher_execute(executable.payload.order_id, eth, username),
        sweeper_expire(resting_sell.payload.order_id, username),
    ]


def stored(ledger: MemoryLedger, username: str, coins: tuple[str, str]) -> tuple[Any, ...]:
    return (
        ledger.cash.get((username, "USD")),
        *(ledger.holdings.get((username, c)) for c in coins),
    )


async def books_of(aws: AwsClients, username: str, coins: tuple[str, str]) -> tuple[Any, ...]:
    try:
        balance = await get_balance_dao(aws).get_balance(username)
        usd: tuple[Decimal, Decimal] | None = (balance.available, balance.held)
    except BalanceNotFoundException:
        usd = None
    holdings = [await get_asset_balance_dao(aws).get_asset_balance(username, c) for c in coins]
    return (usd, *((h.available, h.held) for h in holdings))


async def test_a_batch_of_every_command_type_is_written_in_one_transaction_dynamodb_accepts(
    aws: AwsClients, username: str, coins: tuple[str, str]
) -> None:
    ledger = await seeded_store(aws, username, coins)
    memory = await seeded_memory(username, coins)
    commands = [c.model_copy() for c in mixed_batch(username, coins)]

    outcomes = await handler(ledger, together=True).handle_group(username, messages_of(commands))
    await handler(memory, together=False).handle_group(username, messages_of(commands))

    assert set(outcomes.values()) == {Ack()}
    assert [type(e).__name__ for e in ledger.refusals] == []
    assert len(ledger.committed) == 1  # one transaction for the batch
    assert await books_of(aws, username, coins) == stored(memory, username, coins)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    before=st.lists(resting, max_size=3),
    plan=st.lists(steps, min_size=2, max_size=10),
    active=st.booleans(),
    without_usd=st.booleans(),
)
async def test_any_batch_written_together_in_the_store_leaves_what_one_by_one_leaves(
    aws: AwsClients,
    before: list[tuple[Any, ...]],
    plan: list[tuple[Any, ...]],
    active: bool,
    without_usd: bool,
) -> None:
    username = f"user_{uuid.uuid4().hex[:12]}"
    coins = (f"B{uuid.uuid4().hex[:6].upper()}", f"E{uuid.uuid4().hex[:6].upper()}")
    names = {"BTC": coins[0], "ETH": coins[1], "eth": coins[1].lower(), "XRP": "XNEVER"}
    ledger = await seeded_store(aws, username, coins)
    memory = await seeded_memory(username, coins)
    setup = commands_of(before, [], username, names)
    await handler(ledger, together=False).handle_group(username, messages_of(setup))
    await handler(memory, together=False).handle_group(username, messages_of(setup))
    if not active:
        await get_user_dao(aws).update_user(username, UserUpdate(is_active=False))
        memory.users[username] = memory.users[username].model_copy(update={"is_active": False})
    if without_usd and not memory.cash[username, "USD"][1]:  # a user whose balance was never opened
        await aws.dynamodb.delete_item(
            TableName=aws.resources.users_table, Key=keys.balance_key(username)
        )
        del memory.cash[username, "USD"]
    earlier = [c.payload.order_id for c in setup if isinstance(c, PlaceOrder)]
    commands = commands_of(plan, earlier, username, names)
    together, alone = handler(ledger, together=True), handler(memory, together=False)

    outcomes = await together.handle_group(username, messages_of(commands))
    expected = await alone.handle_group(username, messages_of(commands))

    assert outcomes == expected
    assert [type(e).__name__ for e in ledger.refusals] == []
    assert isinstance(together.metrics, Counted)
    assert "one_by_one" not in together.metrics.batches
    assert await books_of(aws, username, coins) == stored(memory, username, coins)
    assert isinstance(together.events, MemoryEvents)
    assert isinstance(alone.events, MemoryEvents)
    assert said(together.events) == said(alone.events)


def said(events: MemoryEvents) -> list[tuple[Any, ...]]:
    """What a follower reads in each event but its times: its kind, state, a rejection's
    reason, an amount."""
    return [
        (e.event_type, e.status, e.sequence, e.data.get("reason"), e.data.get("amount"))
        for e in events.published
    ]


async def test_deposits_decided_across_midnight_are_counted_on_the_day_of_their_write(
    aws: AwsClients, username: str, coins: tuple[str, str]
) -> None:
    """The batch's read asks for the day it started on; its writes fall on the next: the
    next day's count is read at the same fence, and yesterday's full count stops nothing."""
    ledger = await seeded_store(aws, username, coins)  # 9000 deposited today (limit 10000)
    today = datetime.now(UTC)
    ticks = iter([today.replace(hour=23, minute=59, second=59)])
    tomorrow = (today + timedelta(days=1)).replace(hour=0, minute=0, second=1)
    together = handler(ledger, together=True)
    together = replace(together, saga=replace(together.saga, clock=lambda: next(ticks, tomorrow)))
    commands = [FACTORY.deposit(username, "2000"), FACTORY.deposit(username, "3000")]

    outcomes = await together.handle_group(username, messages_of(commands))

    assert set(outcomes.values()) == {Ack()}
    assert isinstance(together.events, MemoryEvents)
    assert [e.event_type for e in together.events.published] == [
        EventType.BALANCE_DEPOSITED,
        EventType.BALANCE_DEPOSITED,
    ]
    balance = await get_balance_dao(aws).get_balance(username)
    assert balance.available == Decimal("14000.00")
    assert ledger.committed == [2]
