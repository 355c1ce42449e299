"""Conditional orders attacked through real processes: a customer's stop-loss sell small
enough that its fill below the stop rounds to 0.00 USD of proceeds."""

from __future__ import annotations

from order_processor.domain.orders import OrderCreate, OrderStatus
from tests.e2e.harness import Harness
from tests.ledger import assert_ledger


async def test_a_tiny_stop_loss_sell_filled_below_its_stop_fails_once_and_leaves_no_dead_letters(
    strict_harness: Harness,
) -> None:
    harness, user = strict_harness, "tiny_stop"
    await harness.create_user(user, usd="10")
    await harness.add_asset("BTC", "101")
    await harness.give_asset(user, "BTC", "1")
    request = OrderCreate.model_validate(
        {"order_type": "STOP_SELL", "asset_id": "BTC", "quantity": "0.0002", "stop_price": "100"}
    )
    stop = harness.factory.place_order(user, request)  # 0.02 USD at its stop: accepted
    await harness.send(stop)
    assert await harness.run_worker() == 0, harness.worker_output()
    assert (await harness.order(stop.payload.order_id)).status is OrderStatus.QUEUED

    for price in ("40", "39"):  # 0.008 and 0.0078 USD: 0.00 rounded down
        await harness.send_prices(("BTC", price))
        await harness.settle()

    order = await harness.order(stop.payload.order_id)
    dead = await harness.dead_letters()
    await assert_ledger(harness.clients, user)  # holds either way: nothing was written
    assert (order.status, dead) == (OrderStatus.FAILED, 0), harness.worker_output()[-2000:]
