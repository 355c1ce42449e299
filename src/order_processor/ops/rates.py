"""The stored exchange rates as an operator reads them (`rates`, the dashboard): each with
the time the feed observed it, its age, and whether it is older than a decision may use
(ORDER_PROCESSOR_FX_MAX_AGE_SECONDS); the enabled currencies without one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from order_processor.config import Settings
from order_processor.domain.base import utc_now
from order_processor.domain.currencies import BASE_CURRENCY
from order_processor.domain.fx import ExchangeRate


@dataclass(frozen=True)
class StoredRates:
    rows: list[RateRow]
    missing: list[str]  # enabled currencies without a rate
    max_age_seconds: int

    @classmethod
    def of(
        cls, stored: Mapping[str, ExchangeRate], settings: Settings, now: datetime | None = None
    ) -> StoredRates:
        now, max_age = now or utc_now(), settings.fx_max_age
        rows = [
            RateRow(rate, int((now - rate.as_of).total_seconds()), now - rate.as_of > max_age)
            for rate in sorted(stored.values(), key=lambda r: r.currency)
        ]
        missing = sorted(c for c in settings.currencies if c != BASE_CURRENCY and c not in stored)
        return cls(rows, missing, settings.fx_max_age_seconds)

    def document(self) -> dict[str, Any]:
        """`rates --output json`."""
        return {
            "base_currency": BASE_CURRENCY,
            "max_age_seconds": self.max_age_seconds,
            "rates": [row.document() for row in self.rows],
            "missing": self.missing,
        }


@dataclass(frozen=True)
class RateRow:
    rate: ExchangeRate
    age_seconds: int
    stale: bool

    def document(self) -> dict[str, Any]:
        return {
            "currency": self.rate.currency,
            "rate": format(self.rate.rate, "f"),
            "as_of": self.rate.as_of.isoformat(timespec="seconds"),
            "age_seconds": self.age_seconds,
            "stale": self.stale,
        }

    def line(self, max_age_seconds: int) -> str:
        stale = f"  stale (older than {max_age_seconds} s)" if self.stale else ""
        return (
            f"{self.rate.currency}  {self.rate.rate:f} {BASE_CURRENCY}  "
            f"as of {self.rate.as_of.isoformat(timespec='seconds')}  "
            f"{age(self.age_seconds)} old{stale}"
        )


def age(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours < 2:
        return f"{minutes} min"
    if days < 2:
        return f"{hours} h {minutes % 60} min"
    return f"{days} d {hours % 24} h"
