"""`order-processor dashboard` in a real browser: real workers fill the views, the page is
loaded in headless Chromium, and what it shows is what the CLI prints at the same moment
(after the load, with the analytics queue drained, so that both are stable)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from order_processor.bootstrap import get_rate_store
from order_processor.config import Settings
from order_processor.domain.base import utc_now
from order_processor.domain.orders import OrderCreate, OrderType
from tests.browser import dump_dom, shown_values
from tests.e2e.harness import Harness
from tests.support import CLI, cli_env, run_cli


@contextlib.contextmanager
def running_dashboard(settings: Settings) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`order-processor dashboard --port 0` as a process: its URL, and the process. Its
    first audit runs as it starts: started after the trading, it audits the final state."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ORDER_PROCESSOR_")}
    with subprocess.Popen(
        [CLI, "dashboard", "--port", "0"],
        env=environment | cli_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("dashboard: http://127.0.0.1:"), line + process.stdout.read()
            yield line.split()[1], process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            process.communicate(timeout=20)


def cli_json(settings: Settings, *arguments: str) -> Any:
    result = run_cli(*arguments, "--output", "json", env=cli_env(settings), timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def snapshot(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "api/snapshot", timeout=30) as answer:
        document: dict[str, Any] = json.load(answer)
    return document


def audited_snapshot(url: str, seconds: float = 30) -> dict[str, Any]:
    """The snapshot once the dashboard's first audit has finished."""
    deadline = time.monotonic() + seconds
    while (document := snapshot(url))["audit"]["report"] is None:
        assert time.monotonic() < deadline, document["audit"]
        time.sleep(0.2)
    return document


async def trade(harness: Harness) -> int:
    """Market orders that complete and one that fails, a limit bid that rests and a stop
    that waits; a fresh euro rate and a stale yen one; euros deposited, bought and spent
    on an asset quoted in euros (once paid in dollars); the order worker and the analytics
    worker (real processes) until both queues are drained. Returns the number of final
    orders."""
    await harness.add_asset("BTC", "50000")
    await harness.add_asset("BTCEUR", "46000", quote="EUR")
    rates = get_rate_store(harness.clients, harness.settings)
    await rates.change_rate("EUR", "1.08", as_of=utc_now(), command_id="eur-1")
    stale = utc_now() - harness.settings.fx_max_age - timedelta(minutes=1)
    await rates.change_rate("JPY", "0.0067", as_of=stale, command_id="jpy-1")
    for user, usd in (("dash_alice", "20000"), ("dash_bob", "5000")):
        await harness.create_user(user, usd=usd)
    await harness.give_asset("dash_bob", "BTC", "0.05")
    stop = OrderCreate(
        order_type=OrderType.STOP_SELL, asset_id="BTC", quantity="0.01", stop_price="40000"
    )
    paid_in = OrderCreate(
        order_type=OrderType.MARKET_BUY, asset_id="BTCEUR", quantity="0.005", pay_currency="USD"
    )
    await harness.send(
        harness.market("dash_alice", "buy", "BTC", "0.2"),
        harness.market("dash_alice", "buy", "BTC", "0.1"),
        harness.market("dash_bob", "buy", "BTC", "0.02"),
        harness.market("dash_bob", "sell", "BTC", "0.03"),
        harness.market("dash_bob", "sell", "BTC", "5"),  # more than bob has: FAILED
        harness.limit("dash_alice", "buy", "BTC", "0.1", "30000"),
        harness.factory.place_order("dash_bob", stop),
        harness.factory.deposit("dash_alice", "1000", currency="EUR"),
        harness.market("dash_alice", "buy", "BTCEUR", "0.01"),  # 460.00 EUR
        harness.factory.convert("dash_bob", "500", "USD", "EUR"),  # 460.64 EUR
        harness.factory.place_order("dash_bob", paid_in),  # 230.00 EUR for 249.65 USD
    )
    assert await harness.run_worker() == 0, harness.worker_output()
    assert await harness.run_worker(kind="analytics") == 0, harness.worker_output()
    return 7


async def test_the_page_shows_what_the_cli_prints(harness: Harness, deployment: Settings) -> None:
    finals = await trade(harness)
    with running_dashboard(deployment) as (url, _):
        served = audited_snapshot(url)
        analytics = cli_json(deployment, "analytics")
        status = cli_json(deployment, "status")
        rates = cli_json(deployment, "rates")
        audit = cli_json(deployment, "audit", "--allow-in-flight")
        shown = shown_values(dump_dom(url))

    # The snapshot is the CLI's documents (the dashboard leaves dead letters unread).
    assert analytics["orders"]["final"] == finals
    assert served["analytics"] == analytics
    assert served["status"] == status | {"dead_letters_by_type": None}
    assert served["audit"]["report"] == audit
    assert ageless(served["rates"]) == ageless(rates)
    # And the page shows them.
    orders = analytics["orders"]
    assert shown["final-orders"] == str(finals)
    assert shown["fill-ratio"] == orders["fill_ratio"] == "0.8571"
    assert {k: shown[f"final-status-{k}"] for k in orders["by_status"]} == {
        k: str(n) for k, n in orders["by_status"].items()
    }
    assert {k: shown[f"failure-{k}"] for k in orders["failures"]} == {
        k: str(n) for k, n in orders["failures"].items()
    }
    assert sum(orders["failures"].values()) == 1
    for kind in ("market", "resting"):
        for figure in ("samples", "p50", "p90", "p99"):
            value = analytics["latency_ms"][kind][figure]
            assert shown[f"latency-{kind}-{figure}"] == ("-" if value is None else str(value))
    top = analytics["users"][0]
    assert top["username"] == "dash_alice"
    assert shown["top-user-0-name"] == "dash_alice"
    assert shown["top-user-0-volume"] == top["volume_in_base"]
    assert shown["top-user-0-pnl"] == top["realised_pnl_in_base"]
    for queue in status["queues"]:
        for figure, value in (
            ("visible", queue["visible"]),
            ("dead-letters", queue["dead_letters"]),
        ):
            assert shown[f"queue-{queue['name']}-{figure}"] == (
                "-" if value is None else str(value)
            )
    dead = sum(q["dead_letters"] or 0 for q in status["queues"])
    assert shown["dead-letters-total"] == str(dead) == "0"
    assert {k: shown[f"table-status-{k}"] for k in status["orders_by_status"]} == {
        "COMPLETED": "6",
        "FAILED": "1",
        "QUEUED": "2",
    }
    assert shown["book-BTC-title"].endswith("1 bids, 0 asks, 1 waiting stops")
    # The rates, the stale one marked; the dollar volume (every fill), and its total.
    assert (shown["rate-EUR"], shown["rate-EUR-state"]) == ("1.0800000000", "fresh")
    assert shown["rate-JPY-state"] == "stale"
    assert shown["rate-GBP-state"] == "no rate"  # enabled, never sent
    # Alice bought 0.3 BTC, Bob 0.02 and sold 0.03, at 50000: 17500.00 USD.
    assert shown["currency-USD-volume"] == shown["currency-USD-volume-base"] == "17500"
    # Alice bought 0.01 BTCEUR, Bob 0.005, at 46000: 690.00 EUR, 745.20 USD at 1.08.
    assert shown["currency-EUR-volume"] == "690"
    assert shown["currency-EUR-volume-base"] == "745.2"
    assert shown["total-volume-base"] == "18245.2 USD"
    # Bob's two conversions of dollars into euros: one he asked for, one that paid.
    assert shown["conversion-USD-EUR-count"] == "2"
    assert shown["book-BTCEUR-title"].startswith("BTCEUR at 46000")
    # The audit per currency: each conserved, the exchange's liquidity the opposite of
    # what Bob converted.
    assert shown["audit-verdict"] == "PASSED"
    for code, balances, liquidity, flows in (
        # Alice 20000 - 15000; Bob 5000 - 1000 + 1500 - 500 - 249.65; 25000 - 14500 came in.
        ("USD", "9750.35", "749.65", "10500.00"),
        # Alice 1000 - 460.00; Bob 460.64 + 230.00 - 230.00; 1000 - 690.00 came in.
        ("EUR", "1000.64", "-690.64", "310.00"),
    ):
        line = audit["currencies"][code]
        assert (line["balances"], line["liquidity"], line["flows"]) == (balances, liquidity, flows)
        assert shown[f"audit-currency-{code}"] == (
            f"{code}: balances {balances} + liquidity {liquidity}, in less out {flows}: conserved"
        )
    assert shown["connection"] == "live"


def ageless(rates: dict[str, Any]) -> dict[str, Any]:
    """`rates --output json` but for the ages, which grow between two reads."""
    rows = [{k: v for k, v in row.items() if k != "age_seconds"} for row in rates["rates"]]
    return rates | {"rates": rows}


def test_the_dashboard_stops_cleanly_on_sigterm(deployment: Settings) -> None:
    with running_dashboard(deployment) as (url, process):
        with urllib.request.urlopen(url, timeout=10) as page:
            assert "uPlot" in page.read().decode()
        process.send_signal(signal.SIGTERM)

        assert process.wait(20) == 0
