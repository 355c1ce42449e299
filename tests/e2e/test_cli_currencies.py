"""Currencies through the command line, as a user and an operator meet them: rates from
the ECB's recorded file and from `rate`, deposits in euros and yen, conversions waited
for, a conversion refused for a stale rate, the rates listed, and every balance with a
total in euros; the limit matcher and the order worker running as programs."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from order_processor.bootstrap import get_asset_dao, get_rate_store
from order_processor.domain.assets import AssetCreate
from order_processor.domain.events import EventType
from order_processor.domain.fx import ExchangeRate, quote
from order_processor.domain.valuation import valued_in
from tests.e2e.harness import Harness
from tests.support import run_cli

ECB_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "eurofxref-daily.xml"
ECB_DAY = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.mark.timeout(180)  # a dozen cold CLI starts beside two programs
async def test_a_user_funds_converts_and_values_in_several_currencies(harness: Harness) -> None:
    env = {
        k: v for k, v in harness.worker_environment().items() if k.startswith(("AWS_", "ORDER_"))
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env=env)

    await harness.create_user("fx_trader")
    await get_asset_dao(harness.clients).create_asset(
        AssetCreate(asset_id="BTCEUR", name="Bitcoin in euros", price="60000", quote_currency="EUR")
    )
    await harness.give_asset("fx_trader", "BTCEUR", "0.01")
    matcher = harness.start_worker(burst=False, kind="limit-matcher")
    worker = harness.start_worker(burst=False, concurrency=4)
    try:
        fed = cli("fx", "--source", f"ecb:{ECB_FILE}", "--ticks", "1")
        euro = cli("rate", "EUR", "1.08", "--wait-seconds", "60")
        await ecb_rate_stored(harness, "GBP")
        # (Each CLI run is a cold start: what the CLI itself need not show goes directly.)
        await harness.set_rates(("JPY", "0.0067"))
        await harness.fund("fx_trader", "20000", "JPY")
        deposits = [cli("deposit", "fx_trader", "1000", "--currency", "eur")]
        to_dollars = cli("convert", "fx_trader", "500", "EUR", "USD", "--wait")
        to_yen = cli("convert", "fx_trader", "100", "USD", "JPY", "--wait")
        stale = cli("convert", "fx_trader", "10", "GBP", "USD", "--wait")
        listed = cli("rates", "--output", "json")
        balance = cli("balance", "fx_trader", "--in", "EUR")
        portfolio = cli("portfolio", "fx_trader", "--in", "EUR")
    finally:
        for program in (matcher, worker):
            program.send_signal(signal.SIGTERM)
        assert (matcher.wait(60), worker.wait(60)) == (0, 0), harness.worker_output()

    assert fed.returncode == 0, fed.stderr
    assert json.loads(fed.stdout) == {
        "EUR": "1.0842000000",
        "GBP": "1.2920216886",
        "JPY": "0.0066568429",
        "CHF": "1.1519337017",
    }
    assert euro.returncode == 0, euro.stderr
    assert json.loads(euro.stdout)["rate"] == "1.0800000000"
    assert all(d.returncode == 0 for d in deposits), [d.stderr for d in deposits]

    # What the conversions must have given, by domain.fx at the rates just set.
    now, spread, day = datetime.now(UTC), harness.settings.fx_spread_percent, timedelta(days=1)
    fresh = {
        code: ExchangeRate(currency=code, rate=rate, as_of=now)
        for code, rate in (("EUR", "1.08"), ("JPY", "0.0067"))
    }
    dollars = quote(fresh, "EUR", "USD", spread_percent=spread, now=now, max_age=day)
    yen_terms = quote(fresh, "USD", "JPY", spread_percent=spread, now=now, max_age=day)
    assert dollars.bought_for(Decimal("500.00")) == Decimal("537.30")
    assert yen_terms.bought_for(Decimal("100.00")) == Decimal("14850")

    assert to_dollars.returncode == 0, to_dollars.stderr
    command_id, *document = to_dollars.stdout.splitlines()
    converted = json.loads("\n".join(document))
    assert converted == {
        "conversion_id": command_id,
        "sell": "EUR",
        "sold": "500.00",
        "buy": "USD",
        "bought": "537.30",
        "rate": format(dollars.rate, "f"),
        "spread_percent": "0.50",
    }
    assert to_yen.returncode == 0, to_yen.stderr
    assert json.loads("\n".join(to_yen.stdout.splitlines()[1:]))["bought"] == "14850"

    assert stale.returncode == 1
    assert stale.stderr.startswith(
        "order-processor: FX_RATE_STALE: the GBP rate is from 2026-12-04T12:00:00+00:00, "
        "older than 300 s"
    ), stale.stderr

    rates = {r["currency"]: r for r in json.loads(listed.stdout)["rates"]}
    assert (rates["EUR"]["rate"], rates["EUR"]["stale"]) == ("1.0800000000", False)
    assert (rates["GBP"]["as_of"], rates["GBP"]["stale"]) == ("2026-12-04T12:00:00+00:00", True)
    assert rates["GBP"]["age_seconds"] >= (now - ECB_DAY).total_seconds() - 60

    assert balance.returncode == 0, balance.stderr
    shown = json.loads(balance.stdout)
    held = {b["currency"]: (b["available"], b["held"], b["total"]) for b in shown["balances"]}
    assert held == {
        "EUR": ("500.00", "0.00", "500.00"),
        "JPY": ("34850", "0", "34850"),
        "USD": ("437.30", "0.00", "437.30"),
    }
    amounts = [("EUR", Decimal("500.00")), ("JPY", Decimal("34850")), ("USD", Decimal("437.30"))]
    in_euros = valued_in(amounts, "EUR", fresh, now=now, max_age=day)
    assert shown["valued_in"]["currency"] == "EUR"
    assert shown["valued_in"]["total"] == format(in_euros.total, "f") == "1121.11"
    assert datetime.fromisoformat(shown["valued_in"]["at_rates_as_of"]) <= now
    # The portfolio adds the holding, valued in its quote currency: 0.01 x 60,000 EUR.
    assert portfolio.returncode == 0, portfolio.stderr
    everything = valued_in([*amounts, ("EUR", Decimal("600"))], "EUR", fresh, now=now, max_age=day)
    holdings = json.loads(portfolio.stdout)
    assert [(h["asset_id"], h["quote_currency"]) for h in holdings["holdings"]] == [
        ("BTCEUR", "EUR")
    ]
    assert holdings["valued_in"]["total"] == format(everything.total, "f") == "1721.11"

    # `convert --wait` only looked: a follower of the order-status queue gets every answer.
    answers = (EventType.BALANCE_CONVERTED, EventType.COMMAND_REJECTED)
    events = await harness.collect_events(
        lambda seen: sum(e.event_type in answers for e in seen) >= 3
    )
    assert sorted(
        (e.event_type.value, e.data.get("bought") or e.data.get("reason"))
        for e in events
        if e.event_type in answers
    ) == [
        ("balance.converted", "14850"),
        ("balance.converted", "537.30"),
        ("command.rejected", "FX_RATE_STALE"),
    ]


async def ecb_rate_stored(harness: Harness, currency: str, seconds: float = 30) -> None:
    """The feed's updates are applied in any order: wait for the one a test relies on."""
    store = get_rate_store(harness.clients, harness.settings)
    deadline = time.monotonic() + seconds
    while (stored := (await store.rates()).get(currency)) is None or stored.as_of != ECB_DAY:
        assert time.monotonic() < deadline, f"no {currency} rate from the ECB's file"
        await asyncio.sleep(0.2)
