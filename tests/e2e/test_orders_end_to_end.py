"""A user's life through real worker processes: deposit, buy, sell, withdraw."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from order_processor.aws import sync_client
from order_processor.bootstrap import get_asset_balance_dao, get_balance_dao
from order_processor.domain.balances import TransactionType
from order_processor.domain.events import EventType
from order_processor.domain.orders import OrderStatus
from order_processor.messaging.producer import SyncProducer
from tests.e2e.harness import Harness
from tests.ledger import assert_ledger, usd_transactions


async def test_deposit_buy_sell_withdraw(harness: Harness) -> None:
    await harness.create_user("alice_01")
    await harness.add_asset("BTC", "50000")
    # Issued in this order (transaction ids, and so listings, follow issue time).
    deposit = harness.factory.deposit("alice_01", "1000")
    buy = harness.market("alice_01", "buy", "BTC", "0.01")
    sell = harness.market("alice_01", "sell", "BTC", "0.004")
    withdraw = harness.factory.withdraw("alice_01", "100.50")
    await harness.send(deposit, buy, sell, withdraw)

    assert await harness.run_worker() == 0, harness.worker_output()

    balances = get_balance_dao(harness.clients)
    assert (await balances.get_balance("alice_01")).available == Decimal("599.50")
    btc = await get_asset_balance_dao(harness.clients).get_asset_balance("alice_01", "BTC")
    assert btc.available == Decimal("0.006")
    history = await usd_transactions(balances, "alice_01")
    assert [(t.transaction_type, t.amount) for t in reversed(history)] == [
        (TransactionType.DEPOSIT, Decimal("1000.00")),
        (TransactionType.ORDER_PAYMENT, Decimal("500.00")),
        (TransactionType.ORDER_SALE, Decimal("200.00")),
        (TransactionType.WITHDRAW, Decimal("100.50")),
    ]
    for order_id, total in ((buy.payload.order_id, "500.00"), (sell.payload.order_id, "200.00")):
        order = await harness.order(order_id)
        assert (order.status, order.price, order.total_amount) == (
            OrderStatus.COMPLETED,
            Decimal("50000"),
            Decimal(total),
        )
    await assert_ledger(harness.clients, "alice_01")

    events = await harness.collect_events(lambda e: len(e) >= 8)
    per_order = [(e.event_type, e.sequence) for e in events if e.order_id == buy.payload.order_id]
    assert sorted(per_order, key=lambda x: x[1]) == [
        (EventType.ORDER_ACCEPTED, 1),
        (EventType.ORDER_PROCESSING, 2),
        (EventType.ORDER_COMPLETED, 3),
    ]
    completed = next(e for e in events if e.event_type is EventType.ORDER_COMPLETED)
    assert completed.data["total_amount"] in {"500.00", "200.00"}
    funds = sorted((e.event_type, e.data["amount"]) for e in events if e.order_id is None)
    assert funds == [
        (EventType.BALANCE_DEPOSITED, "1000.00"),
        (EventType.BALANCE_WITHDRAWN, "100.50"),
    ]
    assert not harness.of_type(EventType.COMMAND_REJECTED)


async def test_a_plain_send_message_following_the_schema_works(harness: Harness) -> None:
    await harness.create_user("bob_0001", usd="100")
    await harness.add_asset("ETH", "2500")
    token = harness.tokens.create_access_token("bob_0001")
    body = json.dumps(
        {
            "schema": "order-processor/command/v1",
            "command_id": "hand-written-1",
            "type": "PlaceOrder",
            "username": "bob_0001",
            "issued_at": "2026-01-01T00:00:00Z",
            "auth": token,
            "payload": {
                "order_id": "hand-1",
                "order_type": "MARKET_BUY",
                "asset_id": "ETH",
                "quantity": "0.02",
            },
        }
    )

    await harness.send_raw(body, group="bob_0001")
    assert await harness.run_worker() == 0, harness.worker_output()

    order = await harness.order("hand-1")
    assert (order.status, order.total_amount) == (OrderStatus.COMPLETED, Decimal("50.00"))
    assert await harness.available("bob_0001") == Decimal("50.00")
    await assert_ledger(harness.clients, "bob_0001")


async def test_an_order_beyond_the_balance_fails_and_moves_nothing(harness: Harness) -> None:
    await harness.create_user("carol_01", usd="10")
    await harness.add_asset("BTC", "50000")
    buy = harness.market("carol_01", "buy", "BTC", "0.001")  # 50 USD

    await harness.send(buy)
    assert await harness.run_worker() == 0, harness.worker_output()

    order = await harness.order(buy.payload.order_id)
    assert (order.status, order.failure_reason) == (OrderStatus.FAILED, "INSUFFICIENT_BALANCE")
    assert await harness.available("carol_01") == Decimal("10.00")
    events = await harness.collect_events(
        lambda e: any(x.event_type is EventType.ORDER_FAILED for x in e)
    )
    assert [e.event_type for e in events] == [EventType.ORDER_ACCEPTED, EventType.ORDER_FAILED]
    await assert_ledger(harness.clients, "carol_01")


async def test_the_synchronous_producer_sends_batches_a_worker_executes(harness: Harness) -> None:
    await harness.create_user("sync_user")
    await harness.add_asset("ADA", "0.5")
    producer = SyncProducer(sync_client(harness.settings, "sqs"), harness.queue_url, fifo=True)
    commands = [harness.factory.deposit("sync_user", "100")] + [
        harness.market("sync_user", "buy", "ADA", "10") for _ in range(12)
    ]

    sent = await asyncio.to_thread(producer.send_batch, commands)
    last = harness.market("sync_user", "buy", "ADA", "10")
    order_id = await asyncio.to_thread(producer.send, last)
    assert await harness.run_worker() == 0, harness.worker_output()

    assert sent == [c.command_id for c in commands]
    assert order_id == last.payload.order_id
    assert (await harness.order(order_id)).status.value == "COMPLETED"
    assert await harness.available("sync_user") == Decimal("35.00")
    await assert_ledger(harness.clients, "sync_user")


async def test_every_write_moves_the_users_fence_and_leaves_no_lock_behind(
    harness: Harness,
) -> None:
    await harness.create_user("batch_user")
    await harness.send(*(harness.factory.deposit("batch_user", "10") for _ in range(10)))

    assert await harness.run_worker() == 0, harness.worker_output()

    lock = await harness.clients.dynamodb.get_item(
        TableName=harness.settings.resources().users_table,
        Key={"PK": {"S": "USER#batch_user"}, "SK": {"S": "LOCK"}},
    )
    # Ten deposits, ten fenced writes: the token moved ten times, and the lock is taken
    # and released within each write, so nothing holds it now.
    assert lock["Item"]["fencing_token"]["N"] == "10"
    assert "owner" not in lock["Item"]
    assert await harness.available("batch_user") == Decimal("100.00")
