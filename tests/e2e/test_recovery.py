"""No order is left PENDING or PROCESSING. v2 never stores those states (each command is
one write from a resting state to the next), but orders a v1 worker left mid-saga (or a
bug, or what no test foresaw) are finished: whatever command finds one takes it on first,
and when no message is left to do it, the sweeper's recovery job does. Real processes,
`audit` afterwards."""

from __future__ import annotations

import signal
from datetime import timedelta
from decimal import Decimal

import pytest

from order_processor.bootstrap import get_asset_balance_dao, get_user_dao
from order_processor.domain.base import ORDER_ID_MAX_LENGTH, utc_now
from order_processor.domain.commands import (
    ExecuteOrder,
    ExecutePayload,
    ExpireOrder,
    OrderReference,
    ServiceName,
)
from order_processor.domain.events import EventType
from order_processor.domain.orders import OrderStatus
from order_processor.domain.users import UserUpdate
from order_processor.messaging.producer import UNSIGNED
from tests.e2e.harness import AHEAD, DUE_IN, Harness
from tests.ledger import assert_ledger
from tests.support import cli_env, run_cli


async def stranded_limit_buy(harness: Harness) -> str:
    """A limit buy a v1 worker executed at 24 and died right after the debit: the user has
    paid (PROCESSING) and holds no asset yet."""
    await harness.create_user("stranded_1", usd="1000")
    await harness.add_asset("AVAX", "24")
    buy = harness.limit("stranded_1", "buy", "AVAX", "10", "25")
    order = await harness.strand(buy, OrderStatus.PROCESSING)
    assert (order.status, order.step, order.sequence) == (OrderStatus.PROCESSING, "debited", 3)
    assert await harness.available("stranded_1") == Decimal("760.00")
    return buy.payload.order_id


async def assert_bought_at_24(harness: Harness, order_id: str) -> None:
    order = await harness.order(order_id)
    assert (order.status, order.price, order.total_amount) == (
        OrderStatus.COMPLETED,
        Decimal("24"),
        Decimal("240.00"),
    )
    assert await harness.available("stranded_1") == Decimal("760.00")
    avax = await get_asset_balance_dao(harness.clients).get_asset_balance("stranded_1", "AVAX")
    assert avax.available == Decimal("10")
    await assert_ledger(harness.clients, "stranded_1")
    events = await harness.collect_events(
        lambda e: any(x.event_type is EventType.ORDER_COMPLETED for x in e)
    )
    mine = {(e.event_type, e.sequence) for e in events if e.order_id == order_id}
    # The PROCESSING event the crash may have skipped is published when it is taken on.
    assert (EventType.ORDER_PROCESSING, 3) in mine
    assert (EventType.ORDER_COMPLETED, 4) in mine


@pytest.mark.parametrize("command", ["execute", "cancel", "expire", "resume"])
async def test_any_command_that_finds_the_order_mid_saga_takes_it_on(
    harness: Harness, command: str
) -> None:
    order_id = await stranded_limit_buy(harness)
    if command == "cancel":
        await harness.send(harness.factory.cancel("stranded_1", order_id))
    elif command == "execute":
        execute = ExecuteOrder(
            command_id="execute-now",
            username="stranded_1",
            auth=UNSIGNED,
            payload=ExecutePayload(order_id=order_id, asset_id="AVAX"),
        )
        await harness.send(harness.signed(ServiceName.LIMIT_MATCHER, execute))
    elif command == "expire":
        expire = ExpireOrder(
            command_id="expire-now",
            username="stranded_1",
            auth=UNSIGNED,
            payload=OrderReference(order_id=order_id),
        )
        await harness.send(harness.signed(ServiceName.EXPIRY_SWEEPER, expire))
    else:
        await harness.sweep(recovery_age=0)
    assert await harness.run_worker() == 0, harness.worker_output()
    await assert_bought_at_24(harness, order_id)
    if command == "cancel":  # taken on first, so too late to cancel: said so
        events = await harness.collect_events(
            lambda e: any(x.event_type is EventType.COMMAND_REJECTED for x in e)
        )
        rejected = [e for e in events if e.event_type is EventType.COMMAND_REJECTED]
        assert [e.data["reason"] for e in rejected] == ["ORDER_NOT_CANCELLABLE"]


@pytest.mark.parametrize(
    ("side", "stranded_as"),
    [
        ("buy", OrderStatus.PENDING),
        ("buy", OrderStatus.PROCESSING),
        ("sell", OrderStatus.PROCESSING),
    ],
)
async def test_recovery_finishes_an_order_no_message_is_left_to_finish(
    harness: Harness, side: str, stranded_as: OrderStatus
) -> None:
    await harness.create_user("lost_msg_1", usd="1000")
    await harness.add_asset("BTC", "50000")
    await harness.give_asset("lost_msg_1", "BTC", "1")
    order = harness.market("lost_msg_1", side, "BTC", "0.01")
    await harness.strand(order, stranded_as)
    audit = run_cli("audit", env=cli_env(harness.settings))
    assert audit.returncode == 1
    assert "order_in_flight" in audit.stdout

    await harness.sweep(recovery_age=3600)  # not stalled for that long: nothing sent
    assert await harness.run_worker() == 0
    assert (await harness.order(order.payload.order_id)).status is stranded_as
    await harness.sweep(recovery_age=0)
    assert await harness.run_worker() == 0, harness.worker_output()

    finished = await harness.order(order.payload.order_id)
    assert (finished.status, finished.total_amount) == (OrderStatus.COMPLETED, Decimal("500.00"))
    expected_usd = Decimal("500.00") if side == "buy" else Decimal("1500.00")
    assert await harness.available("lost_msg_1") == expected_usd
    audit = run_cli("audit", env=cli_env(harness.settings))
    assert audit.returncode == 0, audit.stdout + audit.stderr
    output = harness.worker_output()
    assert f"recovery: order {order.payload.order_id}" in output
    assert f"recovering order {order.payload.order_id}" in output


@pytest.mark.parametrize("side", ["buy", "sell"])
async def test_the_longest_order_id_runs_every_step_and_its_refund(
    harness: Harness, side: str
) -> None:
    await harness.create_user("long_ids_1", usd="1000")
    await harness.add_asset("ETH", "100")
    await harness.give_asset("long_ids_1", "ETH", "5")
    longest = "L" * (ORDER_ID_MAX_LENGTH - 2)
    refunded = harness.market("long_ids_1", side, "ETH", "1", order_id=longest + "-r")
    price = "150" if side == "sell" else "50"
    limit = harness.limit("long_ids_1", side, "ETH", "1", price, order_id=longest + "-q")
    await harness.strand(refunded, OrderStatus.PROCESSING)  # debited by a v1 worker
    await harness.sweep(recovery_age=0)
    assert await harness.run_worker(fault="fail-step=completed") == 0, harness.worker_output()
    await harness.send(limit, harness.factory.cancel("long_ids_1", longest + "-q"))
    assert await harness.run_worker() == 0, harness.worker_output()

    first = await harness.order(longest + "-r")
    assert (first.status, first.step) == (OrderStatus.FAILED, "refunded")
    assert (await harness.order(longest + "-q")).status is OrderStatus.CANCELLED
    assert await harness.available("long_ids_1") == Decimal("1000.00")
    await assert_ledger(harness.clients, "long_ids_1")


async def test_a_lost_execute_order_is_sent_again_by_the_matchers_rematch(
    harness: Harness,
) -> None:
    await harness.create_user("stranded_1", usd="1000")
    await harness.add_asset("AVAX", "30")
    buy = harness.limit("stranded_1", "buy", "AVAX", "10", "25")
    await harness.send(buy)
    assert await harness.run_worker() == 0, harness.worker_output()
    await harness.send_prices(("AVAX", "24"))
    assert await harness.run_worker(kind="limit-matcher") == 0, harness.worker_output()
    await harness.lose_commands()  # the ExecuteOrder is gone (its token expired in a backlog)
    assert await harness.run_worker() == 0
    assert (await harness.order(buy.payload.order_id)).status is OrderStatus.QUEUED

    rematch = ("--rematch-interval", "1")
    assert await harness.run_worker(kind="limit-matcher", extra=rematch) == 0
    assert await harness.run_worker() == 0, harness.worker_output()
    await assert_bought_at_24(harness, buy.payload.order_id)
    assert f"rematch: order {buy.payload.order_id}" in harness.worker_output()


@pytest.mark.parametrize("step", ["completed", "expired"])
async def test_a_system_command_redelivered_after_its_final_commit_publishes_the_final_event(
    harness: Harness, step: str
) -> None:
    await harness.create_user("final_ev_1", usd="1000")
    await harness.add_asset("BTC", "100")
    expiry = utc_now() + (DUE_IN if step == "expired" else timedelta(hours=3))
    buy = harness.limit("final_ev_1", "buy", "BTC", "1", "50", expires_at=expiry)
    await harness.send(buy)
    assert await harness.run_worker() == 0, harness.worker_output()
    ahead = None
    if step == "completed":
        await harness.send_prices(("BTC", "40"))
        assert await harness.run_worker(kind="limit-matcher") == 0
    else:  # due for the sweeper and the worker, whose clocks run ahead of it
        ahead = AHEAD
        await harness.sweep_ahead(ahead)
    # The worker commits the final step and dies before publishing its event.
    crashed = await harness.run_worker(fault=f"crash-after={step}", ahead=ahead)
    assert crashed == -signal.SIGKILL, harness.worker_output()
    assert await harness.run_worker(ahead=ahead) == 0, harness.worker_output()

    final = await harness.order(buy.payload.order_id)
    kind = EventType.ORDER_COMPLETED if step == "completed" else EventType.ORDER_EXPIRED
    events = await harness.collect_events(lambda e: any(x.event_type is kind for x in e))
    last = max((e for e in events if e.order_id == final.order_id), key=lambda e: e.sequence)
    assert (last.event_type, last.sequence, last.status) == (
        kind,
        final.sequence,
        final.status.value,
    )


async def test_a_pending_order_of_a_user_disabled_meanwhile_fails_when_taken_on(
    harness: Harness,
) -> None:
    await harness.create_user("frozen_01", usd="1000")
    await harness.add_asset("BTC", "100")
    buy = harness.market("frozen_01", "buy", "BTC", "1")
    await harness.strand(buy, OrderStatus.PENDING)
    await get_user_dao(harness.clients).update_user("frozen_01", UserUpdate(is_active=False))
    await harness.send(buy)  # its redelivery
    assert await harness.run_worker() == 0, harness.worker_output()

    order = await harness.order(buy.payload.order_id)
    assert (order.status, order.failure_reason) == (OrderStatus.FAILED, "USER_INACTIVE")
    assert await harness.available("frozen_01") == Decimal("1000.00")
    await assert_ledger(harness.clients, "frozen_01")


async def test_events_lost_with_their_message_are_published_again_by_the_operator(
    harness: Harness,
) -> None:
    await harness.create_user("lost_ev_01", usd="1000")
    await harness.add_asset("BTC", "100")
    buy = harness.market("lost_ev_01", "buy", "BTC", "1")
    before = utc_now()
    await harness.send(buy)
    assert await harness.run_worker(fault="crash-after=completed") == -signal.SIGKILL
    await harness.lose_commands()  # the message that would have published it again is gone
    assert await harness.run_worker() == 0

    env = {**cli_env(harness.settings), "ORDER_PROCESSOR_QUEUE_KIND": "fifo"}
    result = run_cli("events", "republish", "--changed-since", before.isoformat(), env=env)
    assert result.returncode == 0, result.stderr
    assert f"{buy.payload.order_id} COMPLETED #3" in result.stdout
    events = await harness.collect_events(
        lambda e: any(x.event_type is EventType.ORDER_COMPLETED for x in e)
    )
    assert (EventType.ORDER_COMPLETED, 3) in {(e.event_type, e.sequence) for e in events}
