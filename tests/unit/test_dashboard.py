"""The dashboard's snapshot assembly over plain data: the per-second rates, the price
history in each asset's quote currency, the exchange rates with their age, the top of each
book, and the background audit's last result."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from order_processor.config import Settings
from order_processor.dashboard.app import static_folder
from order_processor.dashboard.audit import AuditSchedule
from order_processor.dashboard.snapshot import price_history, throughput, top_of_book
from order_processor.domain.assets import Asset
from order_processor.domain.fx import ExchangeRate
from order_processor.ops.ledger_audit import AuditReport
from order_processor.ops.mismatch import Mismatch
from order_processor.ops.rates import StoredRates

AS_OF = datetime(2026, 11, 28, 12, 14, 30, tzinfo=UTC)


def rate_row(minute: str, kind: str, status: str, orders: int) -> dict[str, Any]:
    return {"minute": minute, "order_type": kind, "status": status, "orders": orders}


def test_rates_are_orders_per_second_of_each_minute_and_the_current_one_so_far() -> None:
    rate = [
        rate_row("2026-11-28T12:00", "MARKET_BUY", "completed", 60),
        rate_row("2026-11-28T12:13", "MARKET_BUY", "completed", 120),
        rate_row("2026-11-28T12:13", "LIMIT_SELL", "failed", 30),
        rate_row("2026-11-28T12:14", "MARKET_BUY", "failed", 15),
    ]

    shown = throughput(rate, AS_OF)

    assert shown["minutes"][0] == "2026-11-28T12:00"
    assert shown["minutes"][-1] == "2026-11-28T12:14"
    assert len(shown["minutes"]) == 15
    assert shown["by_type"]["MARKET_BUY"][0] == 1.0
    assert shown["by_type"]["MARKET_BUY"][1:13] == [0.0] * 12
    # 12:14 has lasted 30 s: 15 orders in it are half an order a second, not a quarter.
    assert shown["by_type"]["MARKET_BUY"][-2:] == [2.0, 0.5]
    assert shown["by_type"]["LIMIT_SELL"][-2] == 0.5
    assert shown["by_status"]["completed"][-2] == 2.0
    assert shown["by_status"]["failed"][-2:] == [0.5, 0.5]


def test_minutes_before_the_window_are_left_out() -> None:
    shown = throughput([rate_row("2026-11-28T11:59", "MARKET_BUY", "completed", 60)], AS_OF)

    assert shown["by_type"] == {}
    assert shown["by_status"] == {}


def minute(bucket: str, quantity: str, amount: str, currency: str = "USD") -> dict[str, Any]:
    """A row of the volume by minute, as the analytics summary has it."""
    row = {"bucket": bucket, "orders": 1, "quantity": quantity, "amount": amount}
    return row | {"currency": currency}


def listed(asset_id: str, price: str, currency: str = "USD") -> Asset:
    return Asset(asset_id=asset_id, name=asset_id, price=price, quote_currency=currency)


def test_the_price_history_is_each_minutes_vwap_and_the_inventory_price_now() -> None:
    volume = {
        "BTC": {
            "minute": [
                minute("2026-11-28T12:00", "0.3", "15100.01"),
                minute("2026-11-28T12:01", "0", "0"),
            ]
        }
    }
    assets = {"BTC": listed("BTC", "50500.5"), "ETH": listed("ETH", "3000")}

    prices = price_history(volume, assets)

    assert prices["BTC"] == {
        "currency": "USD",
        "current": "50500.50000000",
        "history": [{"minute": "2026-11-28T12:00", "vwap": "50333.36666667"}],
    }
    assert prices["ETH"] == {"currency": "USD", "current": "3000.00000000", "history": []}


def test_each_assets_prices_are_in_its_quote_currency() -> None:
    volume = {
        "ETH": {"minute": [minute("2026-11-28T12:00", "0.5", "1000.50", "EUR")]},
        "SOL": {"minute": [minute("2026-11-28T12:00", "3", "63001", "JPY")]},
    }
    assets = {"ETH": listed("ETH", "2001.5", "EUR"), "SOL": listed("SOL", "21000", "JPY")}

    prices = price_history(volume, assets)

    assert prices["ETH"] == {
        "currency": "EUR",
        "current": "2001.50000000",
        "history": [{"minute": "2026-11-28T12:00", "vwap": "2001.00000000"}],
    }
    assert prices["SOL"]["currency"] == "JPY"
    assert prices["SOL"]["history"] == [{"minute": "2026-11-28T12:00", "vwap": "21000.33333333"}]


def test_an_asset_traded_but_gone_from_the_inventory_has_no_price_now() -> None:
    volume = {"SOL": {"minute": [minute("m", "2", "300", "JPY")]}}

    gone = price_history(volume, {})["SOL"]
    assert (gone["current"], gone["currency"]) == (None, "JPY")
    assert gone["history"] == [{"minute": "m", "vwap": "150.00000000"}]


def test_the_rates_shown_carry_their_age_the_stale_ones_marked_and_the_missing_named() -> None:
    def rate(code: str, value: str, seconds: int) -> ExchangeRate:
        return ExchangeRate(currency=code, rate=value, as_of=AS_OF - timedelta(seconds=seconds))

    stored = {"JPY": rate("JPY", "0.0067", 301), "EUR": rate("EUR", "1.08", 12)}
    settings = Settings(currencies="USD,EUR,GBP,JPY", fx_max_age_seconds=300)

    shown = StoredRates.of(stored, settings, AS_OF).document()

    assert [(r["currency"], r["rate"], r["age_seconds"], r["stale"]) for r in shown["rates"]] == [
        ("EUR", "1.0800000000", 12, False),
        ("JPY", "0.0067000000", 301, True),
    ]
    assert shown["rates"][0]["as_of"] == "2026-11-28T12:14:18+00:00"
    assert shown["missing"] == ["GBP"]


def test_the_top_of_a_book_keeps_the_best_rows_and_counts_them_all() -> None:
    book = {
        "asset_id": "BTC",
        "bids": [{"limit_price": str(100 - n)} for n in range(5)],
        "asks": [{"limit_price": "101"}],
        "stops": [],
    }

    top = top_of_book(book, depth=2)

    assert top["bids"] == [{"limit_price": "100"}, {"limit_price": "99"}]
    assert top["asks"] == [{"limit_price": "101"}]
    assert top["totals"] == {"bids": 5, "asks": 1, "stops": 0}


class ScriptedAuditor:
    def __init__(self, *outcomes: AuditReport | Exception) -> None:
        self.outcomes = list(outcomes)
        self.allowed: list[bool] = []

    async def run(self, *, allow_in_flight: bool = False) -> AuditReport:
        self.allowed.append(allow_in_flight)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def failed_audit(*usernames: str) -> AuditReport:
    report = AuditReport(users=2, orders=3, transactions=4)
    for n, username in enumerate(usernames):
        report.mismatches.append(Mismatch("order_records", username, "no hold", (f"o-{n}",)))
    return report


async def test_a_mismatch_is_shown_until_a_run_finds_it_gone() -> None:
    auditor = ScriptedAuditor(failed_audit("alice_01"), AuditReport(users=2, orders=5))
    schedule = AuditSchedule(auditor)
    assert schedule.last()["report"] is None

    await schedule.run_once()
    first = schedule.last()
    await schedule.run_once()
    second = schedule.last()

    assert first["report"]["passed"] is False
    assert [m["username"] for m in first["report"]["mismatches"]] == ["alice_01"]
    assert second["report"]["passed"] is True
    assert second["report"]["orders"] == 5
    assert second["at"] is not None
    assert auditor.allowed == [True, True]


async def test_a_failed_audit_run_is_shown_and_the_next_one_clears_it() -> None:
    schedule = AuditSchedule(ScriptedAuditor(TimeoutError("endpoint"), AuditReport(users=1)))

    await schedule.run_once()
    broken = schedule.last()
    await schedule.run_once()

    assert broken["error"] == "TimeoutError: endpoint"
    assert broken["report"] is None
    assert schedule.last()["error"] is None
    assert schedule.last()["report"]["users"] == 1


@pytest.mark.parametrize("seconds", [0.0, 0.4])
def test_the_current_minute_counts_at_least_one_second(seconds: float) -> None:
    at = datetime(2026, 11, 28, 12, 14, 0, int(seconds * 1e6), tzinfo=UTC)
    shown = throughput([rate_row("2026-11-28T12:14", "MARKET_BUY", "completed", 3)], at)

    assert shown["by_type"]["MARKET_BUY"][-1] == 3.0


def test_every_file_the_page_loads_is_in_the_package() -> None:
    static = static_folder()
    page = (static / "index.html").read_text()
    loaded = re.findall(r'(?:src|href)="/static/([^"]+)"', page)

    assert "vendor/uPlot.iife.min.js" in loaded
    assert [name for name in loaded if not (static / name).is_file()] == []
    assert "MIT" in (static / "vendor" / "uPlot.LICENSE").read_text()
