"""The ledger invariants, checked through the DAOs:
- each USD balance (available and held) equals the sum of its COMPLETED transactions;
- each asset balance equals the sum of its asset transactions;
- each order's status agrees with the transactions recorded for it."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from order_processor.dependencies import (
    AwsClients,
    get_asset_balance_dao,
    get_asset_transaction_dao,
    get_balance_dao,
    get_order_dao,
)
from order_processor.domain.assets import AssetTransaction
from order_processor.domain.balances import BalanceTransaction, TransactionStatus, TransactionType
from order_processor.domain.money import buy_cost
from order_processor.domain.orders import Order, OrderStatus
from order_processor.store.balances import BalanceDAO


async def usd_transactions(balances: BalanceDAO, username: str) -> list[BalanceTransaction]:
    records: list[BalanceTransaction] = []
    cursor: str | None = None
    while True:
        page = await balances.get_user_transactions(username, limit=100, cursor=cursor)
        records += page.items
        if page.next_cursor is None:
            return records
        cursor = page.next_cursor


async def assert_usd_ledger_balances(balances: BalanceDAO, username: str) -> None:
    completed = [
        r
        for r in await usd_transactions(balances, username)
        if r.status is TransactionStatus.COMPLETED
    ]
    available = sum((r.available_delta for r in completed), Decimal("0"))
    held = sum((r.held_delta for r in completed), Decimal("0"))
    balance = await balances.get_balance(username)
    assert (balance.available, balance.held) == (available, held), (
        f"{username}: balance {balance.available}/{balance.held} but transactions sum to "
        f"{available}/{held}"
    )
    assert balance.available >= 0
    assert balance.held >= 0


async def _asset_transactions(clients: AwsClients, username: str) -> list[AssetTransaction]:
    trades = get_asset_transaction_dao(clients)
    records: list[AssetTransaction] = []
    cursor: str | None = None
    while True:
        page = await trades.get_user_asset_transactions(username, limit=100, cursor=cursor)
        records += page.items
        if page.next_cursor is None:
            return records
        cursor = page.next_cursor


async def _orders(clients: AwsClients, username: str) -> list[Order]:
    orders = get_order_dao(clients)
    found: list[Order] = []
    cursor: str | None = None
    while True:
        page = await orders.get_orders_by_user(username, limit=100, cursor=cursor)
        found += page.items
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


async def assert_ledger(clients: AwsClients, username: str) -> None:
    balances = get_balance_dao(clients)
    await assert_usd_ledger_balances(balances, username)
    trades = await _asset_transactions(clients, username)
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for trade in trades:
        sums[trade.asset_id][0] += trade.available_delta
        sums[trade.asset_id][1] += trade.held_delta
    holdings = await get_asset_balance_dao(clients).get_all_asset_balances(username)
    stored = {b.asset_id: [b.available, b.held] for b in holdings}
    expected = {k: v for k, v in sums.items() if k in stored or v != [0, 0]}
    assert stored == expected, (stored, dict(sums))
    usd = await usd_transactions(balances, username)
    for order in await _orders(clients, username):
        mine = [t for t in usd if t.reference_id == order.order_id]
        _assert_order_agrees(order, mine, [t for t in trades if t.order_id == order.order_id])


EXPECTED_RECORDS = {
    # (buy?, limit?, how it ended) -> the kinds of records it must have, sorted
    (True, False, "completed"): ["BUY", "ORDER_PAYMENT"],
    (False, False, "completed"): ["ORDER_SALE", "SELL"],
    (True, True, "completed"): ["BUY", "ORDER_HOLD", "ORDER_PAYMENT", "ORDER_RELEASE"],
    (False, True, "completed"): ["HOLD", "ORDER_SALE", "RELEASE", "SELL"],
    (True, False, "refunded"): ["ORDER_PAYMENT", "ORDER_REFUND"],
    (False, False, "refunded"): ["REFUND", "SELL"],
    (True, True, "refunded"): ["ORDER_HOLD", "ORDER_PAYMENT", "ORDER_REFUND", "ORDER_RELEASE"],
    (False, True, "refunded"): ["HOLD", "REFUND", "RELEASE", "SELL"],
    (True, True, "released"): ["ORDER_HOLD", "ORDER_RELEASE"],
    (False, True, "released"): ["HOLD", "RELEASE"],
}


def _assert_order_agrees(
    order: Order, usd: list[BalanceTransaction], trades: list[AssetTransaction]
) -> None:
    assert order.status.is_terminal or order.status is OrderStatus.QUEUED, (
        f"order {order.order_id} is still {order.status}"
    )
    kinds = sorted(
        [t.transaction_type.value for t in usd] + [t.transaction_type.value for t in trades]
    )
    buy, limit = order.order_type.is_buy, order.order_type.is_limit
    if order.status is OrderStatus.COMPLETED:
        ending = "completed"
    elif order.step == "refunded":
        ending = "refunded"
    elif order.status in {OrderStatus.CANCELLED, OrderStatus.EXPIRED}:
        ending = "released"
    elif order.status is OrderStatus.QUEUED:
        expected = ["ORDER_HOLD"] if buy else ["HOLD"]
        assert kinds == expected, f"order {order.order_id} QUEUED: {kinds}"
        return
    else:
        assert kinds == [], f"order {order.order_id} {order.status}/{order.step}: {kinds}"
        return
    assert kinds == EXPECTED_RECORDS[(buy, limit, ending)], (
        f"order {order.order_id} {order.status}/{order.step}: {kinds}"
    )
    for record in usd:
        if record.transaction_type in {TransactionType.ORDER_HOLD, TransactionType.ORDER_RELEASE}:
            assert order.limit_price is not None
            assert record.amount == buy_cost(order.quantity, order.limit_price)
        else:
            assert record.amount == order.total_amount
    assert all(t.quantity == order.quantity for t in trades)
