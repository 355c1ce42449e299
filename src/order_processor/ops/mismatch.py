"""What the ledger audit finds: one mismatch, named by its kind, its user and its ids."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mismatch:
    # balance, liquidity, conversion, conservation (ops.cash_audit); asset_balance,
    # order_records, order_amounts, order_in_flight, order_overdue (ops.ledger_audit)
    kind: str
    username: str
    detail: str
    ids: tuple[str, ...] = ()

    def __str__(self) -> str:
        ids = f" [{', '.join(self.ids)}]" if self.ids else ""
        return f"{self.kind}: {self.username}: {self.detail}{ids}"
