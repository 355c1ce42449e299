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
from order_processor.domain.balances import BalanceTransaction, TransactionStatus
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
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for trade in trades:
        sums[trade.asset_id] += trade.quantity_delta
    held = {
        b.asset_id: b.available + b.held
        for b in await get_asset_balance_dao(clients).get_all_asset_balances(username)
    }
    assert held == {k: v for k, v in sums.items() if k in held or v != 0}, (held, dict(sums))
    usd = await usd_transactions(balances, username)
    for order in await _orders(clients, username):
        _assert_order_agrees(
            order,
            [t for t in usd if t.reference_id == order.order_id],
            [t for t in trades if t.order_id == order.order_id],
        )


def _assert_order_agrees(
    order: Order, usd: list[BalanceTransaction], trades: list[AssetTransaction]
) -> None:
    assert order.status.is_terminal, f"order {order.order_id} is still {order.status}"
    kinds = sorted(
        [t.transaction_type.value for t in usd] + [t.transaction_type.value for t in trades]
    )
    buy = order.order_type.is_buy
    if order.status is OrderStatus.COMPLETED:
        expected = ["BUY", "ORDER_PAYMENT"] if buy else ["ORDER_SALE", "SELL"]
    elif order.step == "refunded":
        expected = ["ORDER_PAYMENT", "ORDER_REFUND"] if buy else ["REFUND", "SELL"]
    else:
        expected = []
    assert kinds == expected, f"order {order.order_id} {order.status}/{order.step}: {kinds}"
    assert all(t.amount == order.total_amount for t in usd)
    assert all(t.quantity == order.quantity for t in trades)
