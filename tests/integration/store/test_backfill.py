"""`order-processor backfill-triggers` (README, "Upgrading to the reach indexes"): the
QUEUED orders an older version wrote, without the matcher's index keys, are given them
once, and the matcher's query then finds them; an order that changed meanwhile is passed
over, never written back to the state read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, cast

from order_processor.bootstrap import AwsClients, get_order_dao
from order_processor.domain.orders import Order, OrderStatus, OrderType
from order_processor.domain.triggers import PriceMove
from order_processor.store.backfill import backfill_reach_keys
from order_processor.store.dynamo import from_item
from order_processor.store.items import order_item
from order_processor.store.keys import REACH_INDEXES
from tests.builders import a_resting_order, a_trailing_stop

T = OrderType
OLD_VERSION_LACKS = {name for i in REACH_INDEXES.values() for name in (i.key, i.price)}


async def written_by_the_old_version(aws: AwsClients, *orders: Order) -> None:
    for order in orders:
        item = {k: v for k, v in order_item(order).items() if k not in OLD_VERSION_LACKS}
        await aws.dynamodb.put_item(TableName=aws.resources.orders_table, Item=item)


async def found(aws: AwsClients, order: Order, price: str, move: PriceMove) -> bool:
    reached = await get_order_dao(aws).reached(order.asset_id, Decimal(price), move)
    return order.order_id in {o.order_id for o in reached}


async def test_an_older_versions_orders_are_found_by_the_matcher_once_backfilled(
    aws: AwsClients, username: str
) -> None:
    asset = f"U{username[-6:].upper()}"
    buy = a_resting_order(T.LIMIT_BUY, username=username, asset_id=asset, limit_price="90")
    trail = a_trailing_stop(best="100", trail="10", username=username, asset_id=asset)
    closed = a_resting_order(
        T.LIMIT_SELL,
        status=OrderStatus.CANCELLED,
        username=username,
        asset_id=asset,
        limit_price="1",
    )
    await written_by_the_old_version(aws, buy, trail, closed)
    assert not await found(aws, buy, "90", PriceMove.FALL)

    done = await backfill_reach_keys(aws.dynamodb, aws.resources.orders_table)
    again = Watched(aws, nothing)
    await backfill_reach_keys(cast(Any, again), aws.resources.orders_table)

    assert done.written >= 2
    assert await found(aws, buy, "90", PriceMove.FALL)
    assert await found(aws, trail, "90", PriceMove.FALL)  # its stop
    assert await found(aws, trail, "100.01", PriceMove.RISE)  # its best: the trail moves
    assert not await found(aws, closed, "1", PriceMove.RISE)
    stored = await get_order_dao(aws).get_order(buy.order_id)
    assert (stored.status, stored.sequence) == (OrderStatus.QUEUED, buy.sequence)
    assert not {buy.order_id, trail.order_id} & set(again.written)  # not read again


async def nothing(order_id: str) -> None:
    pass


class Watched:
    """The DynamoDB client of a backfill: each write's order id is noted, and `before`
    runs first (what another writer does just then)."""

    def __init__(self, aws: AwsClients, before: Callable[[str], Awaitable[None]]) -> None:
        self.aws, self.before, self.written = aws, before, list[str]()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.aws.dynamodb, name)

    async def update_item(self, **request: Any) -> Any:
        order_id = from_item(request["Key"])["PK"].removeprefix("ORDER#")
        self.written.append(order_id)
        await self.before(order_id)
        return await self.aws.dynamodb.update_item(**request)


async def test_an_order_that_changed_meanwhile_is_passed_over(
    aws: AwsClients, username: str
) -> None:
    asset = f"V{username[-6:].upper()}"
    buy = a_resting_order(T.LIMIT_BUY, username=username, asset_id=asset, limit_price="90")
    await written_by_the_old_version(aws, buy)

    async def cancel(order_id: str) -> None:
        if order_id == buy.order_id:  # the order worker's Put of the whole item, new version
            cancelled = buy.evolve(status=OrderStatus.CANCELLED, sequence=buy.sequence + 1)
            table = aws.resources.orders_table
            await aws.dynamodb.put_item(TableName=table, Item=order_item(cancelled))

    watched = Watched(aws, cancel)
    done = await backfill_reach_keys(cast(Any, watched), aws.resources.orders_table)

    stored = await get_order_dao(aws).get_order(buy.order_id)
    assert done.changed >= 1
    assert (stored.status, stored.sequence) == (OrderStatus.CANCELLED, buy.sequence + 1)
    assert not await found(aws, buy, "90", PriceMove.FALL)
