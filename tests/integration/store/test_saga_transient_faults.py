"""Transient faults retry, they never fail an order (guarantee 3)."""

from __future__ import annotations

from dataclasses import dataclass
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
from order_processor.domain.assets import Asset, AssetCreate
from order_processor.domain.balances import BalanceTransactionCreate, TransactionType
from order_processor.domain.orders import Order, OrderCreate, OrderStatus, OrderType
from order_processor.exceptions import ServiceUnavailableException
from order_processor.messaging.publisher import EventPublisher
from order_processor.saga.context import Limits, SagaContext
from order_processor.saga.market import run_market_order
from order_processor.store.assets import AssetDAO
from order_processor.store.lock import UserLock
from order_processor.store.orders import order_item


@dataclass(frozen=True)
class ThrottledOnce(AssetDAO):
    """The real AssetDAO whose first read is throttled, as DynamoDB does under load."""

    calls: list[str] | None = None

    async def get_asset(self, asset_id: str) -> Asset:
        assert self.calls is not None
        self.calls.append(asset_id)
        if len(self.calls) == 1:
            raise ServiceUnavailableException("DynamoDB is unavailable: ThrottlingException")
        return await super().get_asset(asset_id)


async def test_a_throttled_price_read_retries_instead_of_failing_the_order(
    aws: AwsClients, username: str
) -> None:
    await get_balance_dao(aws).create_balance(username)
    await get_balance_dao(aws).update_balance(
        BalanceTransactionCreate(
            username=username, transaction_type=TransactionType.DEPOSIT, amount="100"
        )
    )
    asset_id = "T" + username[-6:].upper()
    await get_asset_dao(aws).create_asset(AssetCreate(asset_id=asset_id, name="T", price="10"))
    order = Order.place(
        username, OrderCreate(order_type=OrderType.MARKET_BUY, asset_id=asset_id, quantity="2")
    ).evolve(sequence=1, step="accepted")
    await aws.dynamodb.put_item(TableName=aws.resources.orders_table, Item=order_item(order))
    topic = (await aws.sns.create_topic(Name=aws.resources.events_topic))["TopicArn"]
    lock = UserLock(aws.dynamodb, aws.resources.users_table)
    context = SagaContext(
        dynamodb=aws.dynamodb,
        users=get_user_dao(aws),
        balances=get_balance_dao(aws),
        assets=ThrottledOnce(aws.dynamodb, aws.resources.inventory_table, calls=[]),
        asset_trades=get_asset_transaction_dao(aws),
        orders=get_order_dao(aws),
        lock=lock,
        publisher=EventPublisher(aws.sns, topic),
        limits=Limits(Decimal(10000), Decimal(10000), Decimal(5000)),
    )
    lease = await lock.acquire(username)

    with pytest.raises(ServiceUnavailableException) as raised:
        await run_market_order(context, lease, order)
    assert raised.value.retryable
    assert (await get_order_dao(aws).get_order(order.order_id)).status is OrderStatus.PENDING

    finished = await run_market_order(context, lease, order)

    assert (finished.status, finished.total_amount) == (OrderStatus.COMPLETED, Decimal("20.00"))
    assert (await get_balance_dao(aws).get_balance(username)).available == Decimal("80.00")
