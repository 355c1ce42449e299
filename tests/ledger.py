"""The ledger invariant, checked through the DAOs: each balance equals the sum of its
COMPLETED transactions."""

from __future__ import annotations

from decimal import Decimal

from order_processor.domain.balances import TransactionStatus
from order_processor.store.balances import BalanceDAO


async def assert_usd_ledger_balances(balances: BalanceDAO, username: str) -> None:
    available = held = Decimal("0")
    cursor: str | None = None
    while True:
        page = await balances.get_user_transactions(username, limit=100, cursor=cursor)
        for record in page.items:
            if record.status is TransactionStatus.COMPLETED:
                available += record.available_delta
                held += record.held_delta
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    balance = await balances.get_balance(username)
    assert (balance.available, balance.held) == (available, held), (
        f"{username}: balance {balance.available}/{balance.held} but transactions sum to "
        f"{available}/{held}"
    )
