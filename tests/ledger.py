"""The ledger invariants, checked through the DAOs:
- each USD balance (available and held) equals the sum of its COMPLETED transactions;
- each asset balance equals the sum of its asset transactions;
- each order's status agrees with the transactions recorded for it."""

from __future__ import annotations

from decimal import Decimal

from order_processor.bootstrap import AwsClients, get_order_dao
from order_processor.domain.balances import BalanceTransaction, TransactionStatus
from order_processor.ops.ledger_audit import AuditReport, LedgerAuditor
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


async def assert_ledger(clients: AwsClients, username: str) -> None:
    """The same checks `order-processor audit` makes, for one user: no worker is running
    when a test calls this, so an order still PENDING or PROCESSING is a mismatch."""
    auditor = LedgerAuditor(clients.dynamodb, clients.resources.users_table, get_order_dao(clients))
    report = AuditReport()
    await auditor.audit_user(username.lower(), report)
    assert report.passed, "\n".join(str(m) for m in report.mismatches)
