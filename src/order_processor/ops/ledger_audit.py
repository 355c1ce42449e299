"""The ledger audit: every balance against its transactions, every order against its
records and holds, and money conserved in each currency (ops.cash_audit).

It walks the users table one user at a time (a paginated scan for balance items, then one
partition query per user) and each user's orders through UserOrdersIndex, so memory holds
one user's items at most, however large the tables grow.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from order_processor.domain.assets import AssetBalance, AssetTransaction
from order_processor.domain.balances import BalanceTransaction, TransactionType
from order_processor.domain.base import utc_now
from order_processor.domain.currencies import minor_unit
from order_processor.domain.money import buy_cost, exact_total, sell_proceeds
from order_processor.domain.orders import Order, OrderStatus
from order_processor.domain.steps import Step
from order_processor.domain.triggers import triggered
from order_processor.ops.cash_audit import (
    CashBooks,
    CurrencyTotals,
    cash_mismatches,
    conservation_mismatches,
)
from order_processor.ops.mismatch import Mismatch
from order_processor.store import keys
from order_processor.store.dynamo import Page, all_items, all_pages, to_attribute, without_keys
from order_processor.store.orders import OrderDAO

# What the audit reads of a user's partition, by SK prefix.
PARTITION_GROUPS = (
    keys.TRANSACTION_PREFIX,
    keys.ASSET_TRANSACTION_PREFIX,
    keys.ASSET_BALANCE_PREFIX,
    keys.BALANCE_PREFIX,
    keys.LIQUIDITY_PREFIX,
)
# A QUEUED order this far past its expiry was missed by the sweeper (it runs every 30 s).
OVERDUE = timedelta(minutes=10)
# (buy?, limit?, how it ended) -> the kinds of records the order must have, sorted.
EXPECTED_RECORDS: dict[tuple[bool, bool, Step], list[str]] = {
    (True, False, Step.COMPLETED): ["BUY", "ORDER_PAYMENT"],
    (False, False, Step.COMPLETED): ["ORDER_SALE", "SELL"],
    (True, True, Step.COMPLETED): ["BUY", "ORDER_HOLD", "ORDER_PAYMENT", "ORDER_RELEASE"],
    (False, True, Step.COMPLETED): ["HOLD", "ORDER_SALE", "RELEASE", "SELL"],
    (True, False, Step.REFUNDED): ["ORDER_PAYMENT", "ORDER_REFUND"],
    (False, False, Step.REFUNDED): ["REFUND", "SELL"],
    (True, True, Step.REFUNDED): ["ORDER_HOLD", "ORDER_PAYMENT", "ORDER_REFUND", "ORDER_RELEASE"],
    (False, True, Step.REFUNDED): ["HOLD", "REFUND", "RELEASE", "SELL"],
    (True, True, Step.RELEASED): ["ORDER_HOLD", "ORDER_RELEASE"],
    (False, True, Step.RELEASED): ["HOLD", "RELEASE"],
    (True, True, Step.HELD): ["ORDER_HOLD"],
    (False, True, Step.HELD): ["HOLD"],
}


@dataclass
class AuditReport:
    users: int = 0
    orders: int = 0
    transactions: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    # Per currency, across the users read: balances, liquidity, in less out.
    currencies: dict[str, CurrencyTotals] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.mismatches

    def as_dict(self) -> dict[str, Any]:
        """For `audit --output json`."""
        return {
            "passed": self.passed,
            "users": self.users,
            "orders": self.orders,
            "transactions": self.transactions,
            "mismatches": [
                {"kind": m.kind, "username": m.username, "detail": m.detail, "ids": list(m.ids)}
                for m in self.mismatches
            ],
            "currencies": {c: t.as_dict(c) for c, t in sorted(self.currencies.items())},
        }

    def add_totals(self, totals: dict[str, CurrencyTotals]) -> None:
        for currency, total in totals.items():
            self.currencies.setdefault(currency, CurrencyTotals()).add(total)

    def currency_lines(self) -> list[str]:
        """Each currency's balances and liquidity against what came in less what went
        out (`audit`'s text output, before its summary)."""
        return [t.line(c) for c, t in sorted(self.currencies.items())]

    def summary(self) -> str:
        verdict = "PASSED" if self.passed else f"FAILED: {len(self.mismatches)} mismatch(es)"
        return (
            f"audit {verdict}: {self.users} users, {self.orders} orders, "
            f"{self.transactions} transactions checked"
        )


@dataclass(frozen=True)
class LedgerAuditor:
    client: Any
    users_table: str
    orders: OrderDAO
    clock: Callable[[], datetime] = utc_now

    async def run(self, *, allow_in_flight: bool = False) -> AuditReport:
        """`allow_in_flight`: PENDING/PROCESSING orders are fine while workers run."""
        report = AuditReport()
        async for username in self._usernames():
            report.users += 1
            await self.audit_user(username, report, allow_in_flight=allow_in_flight)
        report.mismatches += conservation_mismatches(report.currencies)
        return report

    async def _usernames(self) -> AsyncIterator[str]:
        arguments: dict[str, Any] = {
            "TableName": self.users_table,
            "FilterExpression": "SK = :balance",
            "ExpressionAttributeValues": {":balance": to_attribute(keys.USD_BALANCE)},
            "ProjectionExpression": "PK",
        }
        async for item in all_items(self.client, "scan", arguments):
            yield str(item["PK"]).removeprefix("USER#")

    async def audit_user(
        self, username: str, report: AuditReport, *, allow_in_flight: bool = False
    ) -> None:
        """With `allow_in_flight` (workers run), a user's records are read before their
        orders, so an order that a worker commits in between looks unrecorded: a mismatch
        counts only when a second read of that user finds it again; the user's cash then
        counts in the currencies' totals as the second read found it."""
        first = AuditReport()
        found = await self._user_mismatches(username, first, allow_in_flight)
        last = first
        if found and allow_in_flight:
            last = AuditReport()
            again = await self._user_mismatches(username, last, allow_in_flight)
            seen = {(m.kind, m.ids) for m in again}
            found = [m for m in found if (m.kind, m.ids) in seen]
        report.orders += first.orders
        report.transactions += first.transactions
        report.add_totals(last.currencies)
        report.mismatches += found

    async def _user_mismatches(
        self, username: str, report: AuditReport, allow_in_flight: bool
    ) -> list[Mismatch]:
        """One read of the user's ledger and orders; `report` counts what was read and
        adds up the user's cash per currency."""
        partition = await self._partition(username)
        cash = [
            BalanceTransaction.model_validate(without_keys(i))
            for i in partition[keys.TRANSACTION_PREFIX]
        ]
        trades = [
            AssetTransaction.model_validate(without_keys(i))
            for i in partition[keys.ASSET_TRANSACTION_PREFIX]
        ]
        report.transactions += len(cash) + len(trades)
        books = CashBooks.of(
            username, partition[keys.BALANCE_PREFIX], partition[keys.LIQUIDITY_PREFIX], cash
        )
        report.add_totals(books.totals())
        found = cash_mismatches(books)
        found += _asset_mismatches(username, partition[keys.ASSET_BALANCE_PREFIX], trades)

        def page(cursor: str | None) -> Awaitable[Page[Order]]:
            return self.orders.get_orders_by_user(username, limit=100, cursor=cursor)

        async for order in all_pages(page):
            report.orders += 1
            mine = [t for t in cash if t.reference_id == order.order_id]
            own_trades = [t for t in trades if t.order_id == order.order_id]
            found += order_mismatches(order, mine, own_trades, allow_in_flight, self.clock())
        return found

    async def _partition(self, username: str) -> dict[str, list[dict[str, Any]]]:
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        arguments: dict[str, Any] = {
            "TableName": self.users_table,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": to_attribute(keys.user_pk(username))},
            "ConsistentRead": True,
        }
        async for item in all_items(self.client, "query", arguments):
            sk = str(item["SK"])
            prefix = next(
                (p for p in PARTITION_GROUPS if sk.startswith(p)),
                "other",
            )
            groups[prefix].append(item)
        return groups


def _asset_mismatches(
    username: str, balance_items: list[dict[str, Any]], records: list[AssetTransaction]
) -> list[Mismatch]:
    by_asset: dict[str, list[AssetTransaction]] = defaultdict(list)
    for record in records:
        by_asset[record.asset_id].append(record)
    sums = {
        asset_id: [
            exact_total(r.available_delta for r in mine),
            exact_total(r.held_delta for r in mine),
        ]
        for asset_id, mine in by_asset.items()
    }
    stored = {
        b.asset_id: [b.available, b.held]
        for b in (AssetBalance.model_validate(without_keys(i)) for i in balance_items)
    }
    found = []
    for asset_id in sorted(set(stored) | set(sums)):
        have = stored.get(asset_id, [Decimal(0), Decimal(0)])
        want = sums.get(asset_id, [Decimal(0), Decimal(0)])
        if have != want:
            found.append(
                Mismatch(
                    "asset_balance",
                    username,
                    f"{asset_id}: stored {have[0]} available / {have[1]} held, "
                    f"transactions sum to {want[0]} / {want[1]}",
                    (asset_id,),
                )
            )
    return found


def _ending(order: Order) -> Step | None:
    if order.status is OrderStatus.COMPLETED:
        return Step.COMPLETED
    if order.step == Step.REFUNDED:
        return Step.REFUNDED
    if order.status in {OrderStatus.CANCELLED, OrderStatus.EXPIRED} or order.step == Step.RELEASED:
        return Step.RELEASED  # a QUEUED order closed: its hold given back
    if order.status is OrderStatus.QUEUED:
        return Step.HELD
    return None


def order_mismatches(
    order: Order,
    usd: list[BalanceTransaction],
    trades: list[AssetTransaction],
    allow_in_flight: bool = False,
    now: datetime | None = None,
) -> list[Mismatch]:
    kinds = sorted(
        [t.transaction_type.value for t in usd] + [t.transaction_type.value for t in trades]
    )
    ids = (order.order_id, *(t.transaction_id for t in usd), *(t.transaction_id for t in trades))
    if order.status in {OrderStatus.PENDING, OrderStatus.PROCESSING}:
        if allow_in_flight:
            return []
        return [Mismatch("order_in_flight", order.username, f"order is {order.status}", ids)]
    if now is not None and _overdue(order, now):
        detail = f"QUEUED past its expiry {order.expires_at}"
        return [Mismatch("order_overdue", order.username, detail, ids)]
    expected = _expected_records(order)
    if kinds != expected:
        detail = f"{order.status}/{order.step} has records {kinds}, expected {expected}"
        return [Mismatch("order_records", order.username, detail, ids)]
    return _amount_mismatches(order, usd, trades, ids)


def _expected_records(order: Order) -> list[str]:
    """The kinds of records an order's ending leaves, sorted; a buy paid in another
    currency has its conversion's two with its payment."""
    ending = _ending(order)
    buy, limit = order.order_type.is_buy, order.order_type.rests
    expected = [] if ending is None else EXPECTED_RECORDS.get((buy, limit, ending), [])
    if _paid_in(order) and TransactionType.ORDER_PAYMENT.value in expected:
        conversion = [TransactionType.CONVERSION_IN.value, TransactionType.CONVERSION_OUT.value]
        return sorted([*expected, *conversion])
    return expected


def _paid_in(order: Order) -> bool:
    return order.pay_currency is not None and order.pay_currency != order.quote_currency


def _overdue(order: Order, now: datetime) -> bool:
    expiry = order.expires_at
    return order.status is OrderStatus.QUEUED and expiry is not None and expiry < now - OVERDUE


def _pricing_mistakes(order: Order) -> list[str]:
    """An executed order's amount is its quantity at its price, rounded for the house; a
    limit order's price is never worse than its limit."""
    if order.price is None or order.total_amount is None:
        return []
    buy = order.order_type.is_buy
    unit = minor_unit(order.quote_currency)
    expected = (buy_cost if buy else sell_proceeds)(order.quantity, order.price, unit)
    wrong = []
    if order.total_amount != expected:
        wrong.append(
            f"total_amount is {order.total_amount}; {order.quantity} at {order.price} is {expected}"
        )
    limit = order.limit_price
    if limit is not None and (order.price > limit if buy else order.price < limit):
        wrong.append(f"executed at {order.price}, worse than its limit {limit}")
    if order.order_type.is_conditional and not triggered(order, order.price):
        wrong.append(f"executed at {order.price}, which its stop {order.stop_price} never triggers")
    return wrong


def _expected_cash(order: Order, record: BalanceTransaction) -> tuple[Decimal, str]:
    """A cash record's amount and currency: a hold's at the hold price, the conversion's
    sold side what the order paid in its pay currency, the others the total; each in the
    asset's quote currency but that sold side."""
    kind = record.transaction_type
    if kind in {TransactionType.ORDER_HOLD, TransactionType.ORDER_RELEASE}:
        held_at = order.hold_price or order.limit_price
        assert held_at is not None
        unit = minor_unit(order.quote_currency)
        return buy_cost(order.quantity, held_at, unit), order.quote_currency
    if kind is TransactionType.CONVERSION_OUT and order.pay_currency is not None:
        return order.paid_amount or Decimal(0), order.pay_currency
    return order.total_amount or Decimal(0), order.quote_currency


def _amount_mismatches(
    order: Order,
    usd: list[BalanceTransaction],
    trades: list[AssetTransaction],
    ids: tuple[str, ...],
) -> list[Mismatch]:
    wrong = _pricing_mistakes(order)
    for record in usd:
        expected, currency = _expected_cash(order, record)
        if (record.amount, record.currency) != (expected, currency):
            wrong.append(
                f"{record.transaction_id} is {record.amount} {record.currency}, "
                f"expected {expected} {currency}"
            )
        if record.transaction_type.is_conversion and record.rate != order.pay_rate:
            wrong.append(f"{record.transaction_id} at {record.rate}, the order's {order.pay_rate}")
    wrong += [
        f"{t.transaction_id} moves {t.quantity}, expected {order.quantity}"
        for t in trades
        if t.quantity != order.quantity
    ]
    return [Mismatch("order_amounts", order.username, "; ".join(wrong), ids)] if wrong else []
