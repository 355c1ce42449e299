"""Trailing stops over real DynamoDB conditions (the emulator): the matcher's trail
UpdateItem (conditioned on QUEUED and a worse stored best, its sequence up by one) racing
itself with repeated and out-of-order prices, and racing the worker's whole-item Put
(conditioned on status and sequence) decided from a read taken before the move."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from botocore.exceptions import ClientError

from order_processor.bootstrap import AwsClients, get_order_dao
from order_processor.domain.orders import Order, OrderStatus
from order_processor.domain.steps import Step
from order_processor.handlers.trails import move_trails
from order_processor.saga.decision import moved
from order_processor.store.dynamo import call
from order_processor.store.items import transition_put
from tests.builders import a_trailing_stop

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def trailing(username: str, asset: str, best: str = "100", trail: str = "10") -> Order:
    return a_trailing_stop(best=best, trail=trail, username=username, asset_id=asset, at=T0).evolve(
        step=Step.HELD, expires_at=T0 + timedelta(days=30)
    )


async def test_racing_repeated_and_out_of_order_prices_never_move_a_trail_back(
    aws: AwsClients, username: str
) -> None:
    orders = get_order_dao(aws)
    asset = f"T{username[-6:].upper()}"
    placed = trailing(username, asset)
    await orders.create_order(placed)
    path = ["120", "110", "130", "120", "125", "130", "101", "129.99999999"]

    for _ in range(3):  # three matchers, each with the whole path, all at once
        await asyncio.gather(*(move_trails(orders, [placed], Decimal(p)) for p in path))

    stored = await orders.get_order(placed.order_id)
    assert (stored.best_price, stored.stop_price) == (Decimal("130"), Decimal("120"))
    # Each move that went through is a state: 100 -> 130 takes one to three of them.
    assert placed.sequence + 1 <= stored.sequence <= placed.sequence + 3
    assert [o.order_id for o in await orders.triggered_stops(asset, Decimal("120"))] == [
        placed.order_id
    ]
    assert await orders.triggered_stops(asset, Decimal("120.00000001")) == []


async def test_a_closed_trailing_stop_is_never_moved_again(aws: AwsClients, username: str) -> None:
    orders = get_order_dao(aws)
    asset = f"C{username[-6:].upper()}"
    placed = trailing(username, asset)
    await orders.create_order(placed)
    await orders.update_order_status(placed.order_id, OrderStatus.CANCELLED)

    assert await move_trails(orders, [placed], Decimal("500")) == []
    stored = await orders.get_order(placed.order_id)
    assert (stored.status, stored.best_price) == (OrderStatus.CANCELLED, Decimal("100"))


async def test_a_cancel_decided_before_a_trail_move_is_decided_again(
    aws: AwsClients, username: str
) -> None:
    orders = get_order_dao(aws)
    asset = f"R{username[-6:].upper()}"
    placed = trailing(username, asset)
    await orders.create_order(placed)
    read = await orders.get_order(placed.order_id)  # the worker's read, CancelOrder

    await move_trails(orders, [read], Decimal("150"))  # the matcher, between read and write
    cancelled = moved(read, T0, Step.CANCELLED, status=OrderStatus.CANCELLED)
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):  # decided again instead
        await call(
            aws.dynamodb,
            "put_item",
            **transition_put(orders.table, read, cancelled, {OrderStatus.QUEUED}),
        )

    stored = await orders.get_order(placed.order_id)
    assert stored.status is OrderStatus.QUEUED
    assert (stored.best_price, stored.stop_price) == (Decimal("150"), Decimal("140"))
