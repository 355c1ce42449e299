from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from order_processor.bootstrap import AwsClients, get_order_dao
from order_processor.domain.orders import Order, OrderStatus, OrderType, OrderUpdate
from order_processor.exceptions import (
    EntityAlreadyExistsException,
    InvalidTransitionException,
    OrderNotFoundException,
)
from order_processor.store.dynamo import InvalidCursorError, from_item
from tests.builders import an_order

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def order(username: str, minutes: int = 0, **fields: Any) -> Order:
    at = T0 + timedelta(minutes=minutes)
    return an_order(username=username, quantity="0.5", at=at, **fields)


async def test_an_order_round_trips_exactly(aws: AwsClients, username: str) -> None:
    orders = get_order_dao(aws)
    placed = order(
        username,
        order_type=OrderType.LIMIT_BUY,
        limit_price="100.5",
        expires_at=T0 + timedelta(days=30),
    )

    await orders.create_order(placed)

    stored = await orders.get_order(placed.order_id)
    assert stored == placed
    assert stored.quantity == Decimal("0.5")
    assert stored.limit_price == Decimal("100.50000000")


async def test_an_order_id_is_created_once_and_the_stored_one_comes_back(
    aws: AwsClients, username: str
) -> None:
    orders = get_order_dao(aws)
    first = order(username)
    await orders.create_order(first)

    with pytest.raises(EntityAlreadyExistsException) as raised:
        await orders.create_order(first.model_copy(update={"quantity": Decimal("9")}))

    assert raised.value.existing is not None
    assert raised.value.existing["quantity"] == Decimal("0.5")
    assert (await orders.get_order(first.order_id)).quantity == Decimal("0.5")


async def test_another_users_order_is_not_found(aws: AwsClients, username: str) -> None:
    orders = get_order_dao(aws)
    placed = order(username)
    await orders.create_order(placed)

    with pytest.raises(OrderNotFoundException):
        await orders.get_order(placed.order_id, username="someone_else")
    with pytest.raises(OrderNotFoundException):
        await orders.get_order("missing-order")
    assert (await orders.get_order(placed.order_id, username=username.upper())) == placed


async def test_status_follows_the_transition_table_and_the_sequence_rises(
    aws: AwsClients, username: str
) -> None:
    orders = get_order_dao(aws)
    placed = order(username)
    await orders.create_order(placed)

    processing = await orders.update_order_status(placed.order_id, OrderStatus.PROCESSING)
    done = await orders.update_order(
        placed.order_id,
        OrderUpdate(status=OrderStatus.COMPLETED, price="60000", total_amount="30000"),
    )

    assert (processing.sequence, done.sequence) == (1, 2)
    stored = await orders.get_order(placed.order_id)
    assert stored.status is OrderStatus.COMPLETED
    assert (stored.price, stored.total_amount) == (Decimal("60000"), Decimal("30000"))
    with pytest.raises(InvalidTransitionException, match="COMPLETED to PROCESSING"):
        await orders.update_order_status(placed.order_id, OrderStatus.PROCESSING)
    with pytest.raises(InvalidTransitionException):
        await orders.update_order(placed.order_id, OrderUpdate(status=OrderStatus.CANCELLED))


async def test_a_cancel_racing_an_execution_ends_in_exactly_one_of_them(
    aws: AwsClients, username: str
) -> None:
    orders = get_order_dao(aws)
    placed = order(username, order_type=OrderType.LIMIT_BUY, limit_price="10")
    await orders.create_order(placed)
    await orders.update_order_status(placed.order_id, OrderStatus.QUEUED)

    # Both read QUEUED (sequence 1); each write is conditional on that sequence.
    results = await asyncio.gather(
        orders.update_order_status(placed.order_id, OrderStatus.CANCELLED),
        orders.update_order_status(placed.order_id, OrderStatus.PROCESSING),
        return_exceptions=True,
    )

    winners = [r for r in results if isinstance(r, Order)]
    refused = [r for r in results if isinstance(r, InvalidTransitionException)]
    assert len(winners) == 1
    assert len(refused) == 1
    stored = await orders.get_order(placed.order_id)
    assert stored.status is winners[0].status
    assert stored.sequence == 2


async def test_queued_limit_orders_alone_are_in_the_open_order_book(
    aws: AwsClients, username: str
) -> None:
    orders = get_order_dao(aws)
    placed = order(
        username,
        order_type=OrderType.LIMIT_SELL,
        limit_price="70000",
        asset_id="XBOOK" + username[-4:].upper(),
    )
    await orders.create_order(placed)

    async def in_book() -> list[str]:
        response = await aws.dynamodb.query(
            TableName=aws.resources.orders_table,
            IndexName="OpenLimitOrders",
            KeyConditionExpression="book_key = :book",
            ExpressionAttributeValues={":book": {"S": f"{placed.asset_id}#SELL"}},
        )
        return [from_item(i)["order_id"] for i in response["Items"]]

    assert await in_book() == []
    await orders.update_order_status(placed.order_id, OrderStatus.QUEUED)
    assert await in_book() == [placed.order_id]
    await orders.update_order_status(placed.order_id, OrderStatus.CANCELLED)
    assert await in_book() == []


async def test_a_users_orders_newest_first_across_pages(aws: AwsClients, username: str) -> None:
    orders = get_order_dao(aws)
    placed = [order(username, minutes=m, asset_id="ETH" if m % 2 else "BTC") for m in range(7)]
    for o in reversed(placed):
        await orders.create_order(o)
    await orders.update_order_status(placed[3].order_id, OrderStatus.PROCESSING)

    ids, cursor = [], None
    while True:
        page = await orders.get_orders_by_user(username, limit=3, cursor=cursor)
        ids += [o.order_id for o in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    eth = await orders.get_orders_by_user_and_asset(username, "eth", limit=10)
    processing = await orders.get_orders_by_user_and_status(username, OrderStatus.PROCESSING)

    assert ids == [o.order_id for o in reversed(placed)]
    assert [o.order_id for o in eth.items] == [placed[m].order_id for m in (5, 3, 1)]
    assert [o.order_id for o in processing.items] == [placed[3].order_id]


async def test_a_forged_cursor_is_refused(aws: AwsClients, username: str) -> None:
    with pytest.raises(InvalidCursorError):
        await get_order_dao(aws).get_orders_by_user(username, cursor="not-a-cursor!")


async def test_another_users_cursor_is_refused(aws: AwsClients, username: str) -> None:
    orders = get_order_dao(aws)
    for minutes in range(3):
        await orders.create_order(order(username, minutes=minutes))
    page = await orders.get_orders_by_user(username, limit=1)
    assert page.next_cursor is not None

    with pytest.raises(InvalidCursorError):
        await orders.get_orders_by_user("someone_else", cursor=page.next_cursor)


async def test_every_change_raises_the_sequence_so_a_stale_write_cannot_undo_it(
    aws: AwsClients, username: str
) -> None:
    orders = get_order_dao(aws)
    placed = order(username)
    await orders.create_order(placed)

    priced = await orders.update_order(placed.order_id, OrderUpdate(price="100", total_amount="50"))
    # A writer that read the order before the price was set must not wipe it.
    with pytest.raises(InvalidTransitionException, match="concurrently"):
        await orders._write_change(
            placed, placed.evolve(status=OrderStatus.PROCESSING, sequence=1), None
        )

    assert priced.sequence == 1
    stored = await orders.get_order(placed.order_id)
    assert (stored.price, stored.total_amount, stored.status) == (
        Decimal("100"),
        Decimal("50"),
        OrderStatus.PENDING,
    )


async def test_status_changes_are_validated_before_they_are_stored(
    aws: AwsClients, username: str
) -> None:
    orders = get_order_dao(aws)
    placed = order(username)
    await orders.create_order(placed)

    with pytest.raises(ValidationError, match="price"):
        await orders.update_order_status(
            placed.order_id, OrderStatus.PROCESSING, price=Decimal("1.123456789012345")
        )

    assert (await orders.get_order(placed.order_id)).status is OrderStatus.PENDING
