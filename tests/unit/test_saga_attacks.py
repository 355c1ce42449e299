"""Saga v2 attacked from the outside (review of the redesign): each test states what the
guarantees promise and fails where the engine does otherwise. In-memory ports; the fake
refuses as DynamoLedger does (see tests/unit/fakes.py), so each finding holds for both."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError

from order_processor.domain.assets import Asset
from order_processor.domain.commands import ExecuteOrder
from order_processor.domain.orders import OrderStatus, OrderType
from order_processor.domain.ports import LedgerWrite, Snapshot
from order_processor.domain.steps import Step
from order_processor.exceptions import CommandRejected, FenceConflictException
from order_processor.saga.engine import Saga
from order_processor.store.ledger import DynamoLedger
from tests.unit.fakes import MemoryLedger
from tests.unit.test_saga import LIMITS, NOW, USER, place, reference, stranded, world


def with_eth(ledger: MemoryLedger, price: str) -> None:
    ledger.assets["ETH"] = Asset(asset_id="ETH", name="Ether", price=Decimal(price))


async def test_an_execute_order_naming_another_asset_never_settles_at_that_assets_price() -> None:
    """ExecuteOrder's optional `asset_id` is only a hint for the read: the order's own
    asset decides the trigger and the price. Here BTC is at 120 (a limit buy at 100 must
    stay QUEUED), but the command names ETH at 1."""
    saga, ledger, _ = world(price="120")
    with_eth(ledger, "1")
    await saga.handle(place(OrderType.LIMIT_BUY, "2", "100"))
    assert ledger.orders["o-1"].status is OrderStatus.QUEUED

    await saga.handle(reference(ExecuteOrder, asset_id="ETH"))

    order = ledger.orders["o-1"]
    assert (order.status, order.price) == (OrderStatus.QUEUED, None)
    assert ledger.available(USER) == (Decimal("800.00"), Decimal("200.00"))
    assert ledger.holding(USER, "BTC") == (Decimal(0), Decimal(0))


async def test_an_execute_order_naming_another_asset_does_not_price_an_order_left_pending() -> None:
    """The same hint on a v1 order left PENDING (a market buy of 1 BTC at 100): any command
    that finds it takes it on, at BTC's price, not at the named ETH's."""
    saga, ledger, _ = world(price="100")
    with_eth(ledger, "1")
    stranded(ledger, OrderStatus.PENDING)

    await saga.handle(reference(ExecuteOrder, asset_id="ETH"))

    order = ledger.orders["o-1"]
    assert (order.status, order.price, order.total_amount) == (
        OrderStatus.COMPLETED,
        Decimal("100"),
        Decimal("100.00"),
    )
    assert ledger.available(USER) == (Decimal("900.00"), Decimal("0.00"))


@pytest.mark.parametrize("side", [OrderType.MARKET_BUY, OrderType.LIMIT_BUY, OrderType.MARKET_SELL])
async def test_an_order_of_a_user_without_a_usd_balance_is_answered_not_retried_into_the_dlq(
    side: OrderType,
) -> None:
    """A profile without its USD balance item (UserDAO.create_user and
    BalanceDAO.create_balance are two calls: cli/admin.py:110-111, demo/load.py:151-152)
    makes the write's balance part fail `attribute_exists(PK)`: BalanceNotFoundException,
    which no decision answers. The command must end as an order FAILED or a rejection,
    not as an exception the handler retries until the dead letters."""
    saga, ledger, _ = world(btc="1")
    del ledger.cash[USER, "USD"]
    limit = "100" if side is OrderType.LIMIT_BUY else None

    try:
        await saga.handle(place(side, "0.5", limit))
    except CommandRejected:
        return  # answered
    assert ledger.orders["o-1"].status is OrderStatus.FAILED


class DisabledAfterRead(MemoryLedger):
    """An admin disables the user between the saga's read and its write; as
    UserDAO.update_user does (tested against the endpoint), that moves the user's fence."""

    async def read(self, username: str, **kwargs: Any) -> Snapshot:
        snapshot = await super().read(username, **kwargs)
        user = self.users.get(username)
        if user is not None and user.is_active:
            self.users[username] = user.model_copy(update={"is_active": False})
            self.fences[username] = self.fences.get(username, 0) + 1
        return snapshot


async def test_a_user_disabled_between_the_read_and_the_write_gets_no_market_fill() -> None:
    saga, memory, events = world()
    ledger = DisabledAfterRead(
        users=memory.users, cash=memory.cash, holdings=memory.holdings, assets=memory.assets
    )
    saga = Saga(ledger, events, LIMITS, clock=lambda: NOW)

    with contextlib.suppress(CommandRejected):
        await saga.handle(place(OrderType.MARKET_BUY, "1"))
    order = ledger.orders.get("o-1")
    assert order is None or order.status is not OrderStatus.COMPLETED
    assert ledger.available(USER) == (Decimal("1000.00"), Decimal("0.00"))


async def test_a_marketable_limit_buy_whose_hold_the_user_cannot_afford_fails_like_any_other() -> (
    None
):
    """Placing a limit buy holds quantity x limit (ORDER_HOLD). 10 @ 100 holds 1,000 USD;
    the user has 600: FAILED INSUFFICIENT_BALANCE when the market is at 150. At 50 the
    fused place-and-execute write nets the hold against its release and only checks the
    500 paid, so the order completes and the history records a hold of 1,000 taken from
    600 available (replayed in order, the balance goes to -400)."""
    saga, ledger, _ = world(usd="600", price="50")

    await saga.handle(place(OrderType.LIMIT_BUY, "10", "100"))

    order = ledger.orders["o-1"]
    assert (order.status, order.failure_reason) == (OrderStatus.FAILED, "INSUFFICIENT_BALANCE")


# The store: a write cancelled because another transaction held the user's fence item


class Conflicting:
    """A DynamoDB client whose TransactWriteItems is cancelled as real DynamoDB cancels
    one that meets another transaction on the same item (every write of a user touches
    its lock item, so two concurrent writes of one user meet there)."""

    async def transact_write_items(self, **_: Any) -> dict[str, Any]:
        raise ClientError(
            cast(
                Any,
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                    "CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}],
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
            ),
            "TransactWriteItems",
        )


async def test_a_write_meeting_another_writer_on_the_fence_is_decided_again_not_handed_back() -> (
    None
):
    """A moved fence (FenceConflictException) is decided again in-process (engine.py
    handle); a TransactionConflict on the same fence item (what DynamoDB answers when the
    other writer's transaction is still in flight) must be the same refusal, not a
    ServiceUnavailableException that hands the message back and counts a receive."""
    ledger = DynamoLedger(cast(Any, Conflicting()), "users", "orders", "inventory")
    write = LedgerWrite(username=USER, fence=3, at=NOW, step=Step.COMPLETED)

    with pytest.raises(FenceConflictException):
        await ledger.write(write)
