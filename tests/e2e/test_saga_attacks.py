"""Saga v2 attacked through real worker processes (review of the redesign): each test
states what the guarantees promise and fails where the deployment does otherwise."""

from __future__ import annotations

from decimal import Decimal

from order_processor.bootstrap import get_asset_balance_dao, get_user_dao
from order_processor.domain.commands import ExecuteOrder, ExecutePayload, ServiceName
from order_processor.domain.events import EventType
from order_processor.domain.orders import OrderStatus
from order_processor.domain.users import UserCreate
from order_processor.exceptions import AssetBalanceNotFoundException
from order_processor.messaging.producer import UNSIGNED
from tests.e2e.harness import Harness


async def test_a_matchers_execute_order_naming_another_asset_cannot_fill_at_that_assets_price(
    harness: Harness,
) -> None:
    """BTC is at 120: a limit buy of 2 BTC at 100 waits. An ExecuteOrder for it that names
    DOGE (at 0.5) as its `asset_id` must not fill it; the worker reads DOGE with the order
    (engine.py _read) and settles the BTC order at DOGE's price: 2 BTC for 1 USD."""
    await harness.create_user("hint_user1", usd="1000")
    await harness.add_asset("BTC", "120")
    await harness.add_asset("DOGE", "0.5")
    buy = harness.limit("hint_user1", "buy", "BTC", "2", "100")
    await harness.send(buy)
    assert await harness.run_worker() == 0, harness.worker_output()
    assert (await harness.order(buy.payload.order_id)).status is OrderStatus.QUEUED

    execute = ExecuteOrder(
        command_id="execute-with-another-asset",
        username="hint_user1",
        auth=UNSIGNED,
        payload=ExecutePayload(order_id=buy.payload.order_id, asset_id="DOGE"),
    )
    await harness.send(harness.signed(ServiceName.LIMIT_MATCHER, execute))
    assert await harness.run_worker() == 0, harness.worker_output()

    order = await harness.order(buy.payload.order_id)
    assert (order.status, order.price) == (OrderStatus.QUEUED, None)
    assert await harness.available("hint_user1") == Decimal("800.00")
    holdings = get_asset_balance_dao(harness.clients)
    try:
        btc = (await holdings.get_asset_balance("hint_user1", "BTC")).available
    except AssetBalanceNotFoundException:
        btc = Decimal(0)
    assert btc == Decimal(0)


async def test_an_order_of_a_user_whose_balance_item_is_missing_is_answered_not_dead_lettered(
    harness: Harness,
) -> None:
    """The user's profile exists but its USD balance item does not (the CLI creates the two
    in separate calls: cli/admin.py:110-111). A market buy must end FAILED or rejected;
    the worker instead retries BalanceNotFoundException until the dead letters, and the
    user's deposit is rejected as UNKNOWN_USER although the user exists."""
    await get_user_dao(harness.clients).create_user(
        UserCreate(
            username="nobal_user1", email="nobal@example.com", first_name="N", last_name="B"
        ),
        password_hash="not-used-here",
    )
    await harness.add_asset("BTC", "100")
    buy = harness.market("nobal_user1", "buy", "BTC", "1")
    await harness.send(buy)

    assert await harness.run_worker() == 0, harness.worker_output()

    assert await harness.dead_letters() == 0
    events = await harness.collect_events(
        lambda e: any(
            x.order_id == buy.payload.order_id
            or (x.event_type is EventType.COMMAND_REJECTED and x.data.get("command_id"))
            for x in e
        ),
        seconds=10,
    )
    assert any(e.order_id == buy.payload.order_id for e in events) or any(
        e.event_type is EventType.COMMAND_REJECTED for e in events
    )
