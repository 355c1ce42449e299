"""The ledger parts of a saga step: transaction records and the balance changes they
cause, as TransactWriteItems entries. Record ids derive from the order id and the record's
kind, so a step that is retried can never record twice."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from order_processor.domain.assets import AssetTransaction, AssetTransactionType
from order_processor.domain.balances import BalanceTransactionCreate, TransactionType
from order_processor.domain.base import record_id
from order_processor.domain.money import exact_total
from order_processor.domain.orders import Order
from order_processor.saga.context import SagaContext
from order_processor.store.asset_balances import asset_balance_change

Part = tuple[str, dict[str, Any]]
SUFFIX = {
    TransactionType.ORDER_PAYMENT: "payment",
    TransactionType.ORDER_SALE: "sale",
    TransactionType.ORDER_REFUND: "refund",
    TransactionType.ORDER_HOLD: "hold",
    TransactionType.ORDER_RELEASE: "release",
}


def usd_record(order: Order, kind: TransactionType, amount: Decimal) -> BalanceTransactionCreate:
    return BalanceTransactionCreate(
        transaction_id=record_id(order.order_id, SUFFIX[kind]),
        username=order.username,
        transaction_type=kind,
        amount=amount,
        reference_id=order.order_id,
        description=f"{order.order_type} {order.quantity} {order.asset_id}",
    )


def asset_record(order: Order, kind: AssetTransactionType) -> AssetTransaction:
    price = order.price or order.limit_price
    assert price is not None
    return AssetTransaction(
        transaction_id=record_id(order.order_id, kind.value.lower()),
        username=order.username,
        asset_id=order.asset_id,
        transaction_type=kind,
        quantity=order.quantity,
        price=price,
        total_amount=order.total_amount or Decimal("0.00"),
        order_id=order.order_id,
        created_at=order.updated_at,
    )


def usd_parts(context: SagaContext, records: Sequence[BalanceTransactionCreate]) -> list[Part]:
    """One balance update for all records (an item appears once per transaction), then
    one put per record."""
    now = context.clock()
    balances = context.balances
    puts = [("transaction", {"Put": balances.transaction_put(r, now)}) for r in records]
    return [("balance", {"Update": balances.balance_change(records, now)}), *puts]


def asset_parts(context: SagaContext, records: Sequence[AssetTransaction]) -> list[Part]:
    first = records[0]
    change = asset_balance_change(
        context.asset_trades.table,
        first.username,
        first.asset_id,
        exact_total(r.available_delta for r in records),
        context.clock(),
        held_delta=exact_total(r.held_delta for r in records),
    )
    puts = [
        ("asset_transaction", {"Put": context.asset_trades.transaction_put(r)}) for r in records
    ]
    return [("asset_balance", {"Update": change}), *puts]
