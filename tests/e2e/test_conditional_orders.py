"""Stop, take-profit and trailing stop orders through real processes: placed and held,
triggered by the matcher through its index queries, executed once at the market price,
listed in the book while they wait."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from decimal import Decimal
from typing import Any

from order_processor.bootstrap import get_asset_balance_dao, get_asset_dao, get_balance_dao
from order_processor.domain.commands import PlaceOrder
from order_processor.domain.orders import OrderCreate, OrderStatus
from tests.e2e.harness import Harness
from tests.ledger import assert_ledger
from tests.support import cli_env, run_cli


def conditional(harness: Harness, username: str, kind: str, **fields: Any) -> PlaceOrder:
    request = OrderCreate.model_validate(
        {"order_type": kind, "asset_id": "BTC", "quantity": "1", **fields}
    )
    return harness.factory.place_order(username, request)


async def until_done(harness: Harness, order_ids: list[str], price: str) -> None:
    """Until the inventory shows `price` (the matcher applied it) and every order in
    `order_ids` is final."""
    deadline = time.monotonic() + 60
    assets = get_asset_dao(harness.clients)
    while True:
        applied = (await assets.get_asset("BTC")).price == Decimal(price)
        orders = [await harness.order(order_id) for order_id in order_ids]
        if applied and all(o.status.is_terminal for o in orders):
            return
        assert time.monotonic() < deadline, harness.worker_output()
        await asyncio.sleep(0.1)


async def test_each_conditional_order_fires_once_at_the_market_when_the_path_crosses_it(
    harness: Harness,
) -> None:
    user = "stops_user"
    await harness.create_user(user, usd="10000")
    await harness.add_asset("BTC", "100")
    await harness.give_asset(user, "BTC", "10")
    orders = {
        "stop sell": conditional(harness, user, "STOP_SELL", stop_price="90"),
        "take-profit sell": conditional(harness, user, "TAKE_PROFIT_SELL", stop_price="120"),
        "stop buy": conditional(harness, user, "STOP_BUY", stop_price="110"),
        "take-profit buy": conditional(harness, user, "TAKE_PROFIT_BUY", stop_price="80"),
        "trailing sell": conditional(harness, user, "TRAILING_STOP_SELL", trail_amount="10"),
        "trailing buy": conditional(harness, user, "TRAILING_STOP_BUY", trail_amount="35"),
    }
    ids = {name: command.payload.order_id for name, command in orders.items()}
    await harness.send(*orders.values())
    assert await harness.run_worker() == 0, harness.worker_output()

    book = run_cli("orders", "book", "BTC", env=cli_env(harness.settings) | harness_secret(harness))
    assert book.returncode == 0, book.stderr
    waiting = {row["order_id"]: row for row in json.loads(book.stdout)["stops"]}
    assert set(waiting) == set(ids.values())
    assert waiting[ids["trailing sell"]]["stop_price"] == "90.00000000"
    assert waiting[ids["trailing buy"]]["stop_price"] == "135.00000000"
    status = run_cli("status", env=cli_env(harness.settings))
    assert "waiting stop orders: BTC 6" in status.stdout, status.stdout + status.stderr
    balance = await get_balance_dao(harness.clients).get_balance(user)
    # Held: the stop buy 110 + 5 % = 115.50, the take-profit buy 80.00, the trailing buy
    # (135 + 5 %) 141.75.
    assert balance.held == Decimal("337.25")

    # The matcher and the worker run throughout; each move waits for what it fires.
    running = [
        harness.start_worker(burst=False, kind="limit-matcher"),
        harness.start_worker(burst=False),
    ]
    try:
        path = [
            ("130", ["take-profit sell", "stop buy"]),  # up; the trailing sell's best rises
            ("119", ["trailing sell"]),  # 11 below its best (130), its stop 120
            ("85", ["stop sell"]),  # down; the trailing buy's best falls
            ("79", ["take-profit buy"]),
            ("95", []),  # nothing: the trailing buy's stop is 79 + 35 = 114
            ("115", ["trailing buy"]),
        ]
        for price, fired in path:
            await harness.send_prices(("BTC", price))
            await until_done(harness, [ids[name] for name in fired], price)
    finally:
        for program in running:
            program.send_signal(signal.SIGTERM)
        assert [await harness.wait(p, 60) for p in running] == [0, 0], harness.worker_output()

    filled = {name: await harness.order(order_id) for name, order_id in ids.items()}
    assert {name: (o.status, o.price) for name, o in filled.items()} == {
        "take-profit sell": (OrderStatus.COMPLETED, Decimal("130")),
        "stop buy": (OrderStatus.COMPLETED, Decimal("130")),
        "trailing sell": (OrderStatus.COMPLETED, Decimal("119")),
        "stop sell": (OrderStatus.COMPLETED, Decimal("85")),
        "take-profit buy": (OrderStatus.COMPLETED, Decimal("79")),
        "trailing buy": (OrderStatus.COMPLETED, Decimal("115")),
    }
    balance = await get_balance_dao(harness.clients).get_balance(user)
    btc = await get_asset_balance_dao(harness.clients).get_asset_balance(user, "BTC")
    # Sold 130 + 119 + 85, bought 130 + 79 + 115: 10000 + 334 - 324.
    assert (balance.available, balance.held) == (Decimal("10010.00"), Decimal("0.00"))
    assert (btc.available, btc.held) == (Decimal("10"), Decimal("0"))
    await assert_ledger(harness.clients, user)


def harness_secret(harness: Harness) -> dict[str, str]:
    return {"ORDER_PROCESSOR_JWT_SECRET": harness.settings.to_env()["ORDER_PROCESSOR_JWT_SECRET"]}


async def test_a_matcher_killed_after_moving_a_trail_moves_it_once_and_fires_it_once(
    harness: Harness,
) -> None:
    user = "trail_crash"
    await harness.create_user(user, usd="100")
    await harness.add_asset("BTC", "100")
    await harness.give_asset(user, "BTC", "1")
    trailing = conditional(harness, user, "TRAILING_STOP_SELL", trail_amount="5")
    await harness.send(trailing)
    assert await harness.run_worker() == 0, harness.worker_output()

    await harness.send_prices(("BTC", "110"))
    killed = await harness.run_worker(kind="limit-matcher", fault="crash-after=trailed")
    assert killed == -signal.SIGKILL  # after the move, before the update was deleted
    await harness.settle()  # the update again: the same move, nothing to send
    moved = await harness.order(trailing.payload.order_id)
    assert (moved.status, moved.best_price, moved.stop_price) == (
        OrderStatus.QUEUED,
        Decimal("110"),
        Decimal("105"),
    )
    # Killed before announcing the move: the redelivery announces the trail as it stands.
    events = await harness.collect_events(
        lambda heard: any(
            e.order_id == moved.order_id and e.sequence == moved.sequence for e in heard
        )
    )
    announced = next(e for e in events if e.sequence == moved.sequence)
    assert (announced.status, Decimal(announced.data["best_price"])) == ("QUEUED", Decimal(110))

    await harness.send_prices(("BTC", "104"))
    killed = await harness.run_worker(kind="limit-matcher", fault="crash-after=trailed")
    assert killed == -signal.SIGKILL
    await harness.settle()

    sold = await harness.order(trailing.payload.order_id)
    assert (sold.status, sold.price, sold.total_amount) == (
        OrderStatus.COMPLETED,
        Decimal("104"),
        Decimal("104.00"),
    )
    assert await harness.available(user) == Decimal("204.00")
    await assert_ledger(harness.clients, user)
