"""The fenced user lock: a stalled worker whose lease was taken can write nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from order_processor.bootstrap import (
    AwsClients,
    get_asset_dao,
    get_asset_transaction_dao,
    get_balance_dao,
    get_order_dao,
    get_user_dao,
)
from order_processor.domain.orders import Order, OrderCreate, OrderType
from order_processor.exceptions import LockAcquisitionException, OrderNotFoundException
from order_processor.messaging.publisher import EventPublisher
from order_processor.saga.context import Limits, LostLock, SagaContext, commit
from order_processor.store.lock import UserLock
from order_processor.store.orders import order_item

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def lock_at(aws: AwsClients, moment: datetime) -> UserLock:
    return UserLock(aws.dynamodb, aws.resources.users_table, lease_seconds=5, clock=lambda: moment)


def saga_context(aws: AwsClients, lock: UserLock) -> SagaContext:
    return SagaContext(
        dynamodb=aws.dynamodb,
        users=get_user_dao(aws),
        balances=get_balance_dao(aws),
        assets=get_asset_dao(aws),
        asset_trades=get_asset_transaction_dao(aws),
        orders=get_order_dao(aws),
        lock=lock,
        publisher=EventPublisher(aws.sns, "arn:aws:sns:us-east-1:000000000000:unused"),
        limits=Limits(Decimal(1), Decimal(1), Decimal(1)),
    )


async def test_a_held_lock_is_busy_until_its_lease_expires(aws: AwsClients, username: str) -> None:
    first = await lock_at(aws, T0).acquire(username)

    with pytest.raises(LockAcquisitionException):
        await lock_at(aws, T0 + timedelta(seconds=4)).acquire(username)
    second = await lock_at(aws, T0 + timedelta(seconds=6)).acquire(username)

    assert second.fencing_token == first.fencing_token + 1
    assert second.owner != first.owner


async def test_a_released_lock_is_free_and_tokens_keep_rising(
    aws: AwsClients, username: str
) -> None:
    lock = lock_at(aws, T0)
    tokens = []
    for _ in range(3):
        lease = await lock.acquire(username)
        tokens.append(lease.fencing_token)
        await lock.release(lease)

    assert tokens == [tokens[0], tokens[0] + 1, tokens[0] + 2]


async def test_a_stalled_worker_whose_lease_was_taken_cannot_write(
    aws: AwsClients, username: str
) -> None:
    stalled_lock = lock_at(aws, T0)
    stalled = await stalled_lock.acquire(username)
    successor_lock = lock_at(aws, T0 + timedelta(seconds=30))
    successor = await successor_lock.acquire(username)
    order = Order.place(
        username,
        OrderCreate(order_type=OrderType.MARKET_BUY, asset_id="BTC", quantity="1"),
    )
    put = {"TableName": aws.resources.orders_table, "Item": order_item(order)}

    with pytest.raises(LostLock):
        await commit(saga_context(aws, stalled_lock), stalled, [("order", {"Put": put})])
    with pytest.raises(LockAcquisitionException):
        await stalled_lock.renew(stalled)
    await stalled_lock.release(stalled)  # not its lock any more: a no-op

    with pytest.raises(OrderNotFoundException):
        await get_order_dao(aws).get_order(order.order_id)
    await commit(saga_context(aws, successor_lock), successor, [("order", {"Put": put})])
    assert (await get_order_dao(aws).get_order(order.order_id)).order_id == order.order_id
    with pytest.raises(LockAcquisitionException):  # the successor still holds it
        await lock_at(aws, T0 + timedelta(seconds=31)).acquire(username)
