"""The command line as a user meets it: create a user, list an asset, deposit, buy and
wait, read balances, orders, the portfolio and the event stream; the worker started with
`python -m workers.order_worker` and stopped with SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal

import pytest

from order_processor.security.tokens import TokenManager
from tests.e2e.harness import Harness
from tests.support import run_cli


@pytest.mark.timeout(300)  # some twenty CLI processes, each a cold start: ~2 min on 2 busy cores
async def test_a_user_trades_through_the_cli(harness: Harness) -> None:
    env = {
        k: v for k, v in harness.worker_environment().items() if k.startswith(("AWS_", "ORDER_"))
    }

    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env=env, stdin=stdin)

    created = cli(
        "users", "create", "Erin_Trader", "--email", "erin@example.com", stdin="Sup3r!secret\n"
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["username"] == "erin_trader"
    assert "Sup3r!secret" not in created.stdout
    assert cli("assets", "add", "SOL", "--name", "Solana", "--price", "150").returncode == 0
    unapplied = cli("price", "SOL", "130", "--wait-seconds", "1")  # no matcher yet
    assert unapplied.returncode == 1
    assert "not applied within 1 s: is the limit matcher running?" in unapplied.stderr
    matcher = harness.start_worker(burst=False, kind="limit-matcher")
    try:
        priced = cli("price", "SOL", "125.5")  # waits until the matcher applied it
    finally:
        matcher.send_signal(signal.SIGTERM)
        assert matcher.wait(60) == 0
    assert priced.returncode == 0, priced.stderr
    assert json.loads(priced.stdout)["price"] == "125.50000000"
    worker = subprocess.Popen(
        [sys.executable, "-m", "workers.order_worker", "--concurrency", "4"],
        env=harness.worker_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert cli("deposit", "erin_trader", "500").returncode == 0
        bought = cli("buy", "erin_trader", "SOL", "2", "--wait")
        rejected = cli("withdraw", "erin_trader", "10000")
        sold = cli("sell", "erin_trader", "SOL", "0.5", "--wait", "--order-id", "erin-sell-1")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0

    assert bought.returncode == 0, bought.stderr
    order_id = bought.stdout.splitlines()[0]
    assert json.loads("\n".join(bought.stdout.splitlines()[1:]))["total_amount"] == "251.00"
    assert sold.returncode == 0, sold.stderr
    assert rejected.returncode == 0  # sending succeeds; the worker rejects it (see the events)
    balance = json.loads(cli("balance", "erin_trader").stdout)
    assert [(b["currency"], b["available"]) for b in balance["balances"]] == [
        ("USD", str(Decimal("500") - Decimal("251.00") + Decimal("62.75")))
    ]
    portfolio = json.loads(cli("portfolio", "erin_trader").stdout)
    assert [(h["asset_id"], h["quantity"], h["market_value"]) for h in portfolio["holdings"]] == [
        ("SOL", "1.5", "188.25")
    ]
    listed = json.loads(cli("orders", "list", "erin_trader").stdout)
    assert [o["order_id"] for o in listed["orders"]] == ["erin-sell-1", order_id]
    shown = json.loads(cli("orders", "show", order_id).stdout)
    assert (shown["status"], shown["price"]) == ("COMPLETED", "125.50000000")
    tail = cli("events", "tail", "--seconds", "3")
    events = [json.loads(line) for line in tail.stdout.splitlines()]
    kinds = [e["event_type"] for e in events]
    assert kinds.count("order.completed") == 2
    assert "balance.deposited" in kinds
    withdraw_rejection = next(e for e in events if e["event_type"] == "command.rejected")
    assert withdraw_rejection["data"]["reason"] == "LIMIT_EXCEEDED"


async def test_token_and_schema_commands(harness: Harness) -> None:
    env = {
        k: v for k, v in harness.worker_environment().items() if k.startswith(("AWS_", "ORDER_"))
    }

    token = run_cli("token", "Erin_Trader", "--role", "service", env=env).stdout.strip()
    too_long = run_cli("token", "erin_trader", "--minutes", "61", env=env)
    too_long_service = run_cli("token", "payments", "--role", "service", "--minutes", "6", env=env)
    hour = run_cli("token", "erin_trader", "--minutes", "60", env=env)
    assert (too_long.returncode, too_long_service.returncode, hour.returncode) == (2, 2, 0)
    assert "lives at most 1:00:00" in too_long.stderr, too_long.stderr
    schema = json.loads(run_cli("schema", env=env).stdout)

    assert harness.settings.jwt_secret is not None
    claims = TokenManager(harness.settings.jwt_secret.get_secret_value()).verify_access_token(token)
    assert (claims.subject, claims.role) == ("erin_trader", "service")
    command_types = set(schema["commands"]["discriminator"]["mapping"])
    assert command_types == {
        "PlaceOrder",
        "CancelOrder",
        "ExecuteOrder",
        "ExpireOrder",
        "ResumeOrder",
        "Deposit",
        "Withdraw",
        "UpdatePrice",
        "UpdateRate",
        "Convert",
    }
    assert schema["events"]["properties"]["event_type"]["$ref"].endswith("EventType")
    assert "order.completed" in schema["events"]["$defs"]["EventType"]["enum"]


async def test_limit_orders_through_the_cli(harness: Harness) -> None:
    env = {
        k: v for k, v in harness.worker_environment().items() if k.startswith(("AWS_", "ORDER_"))
    }
    await harness.create_user("lima_user", usd="1000")
    await harness.add_asset("XRP", "2")

    placed = run_cli(
        "buy", "lima_user", "XRP", "100", "--limit", "1.5", "--expires-in", "2h", env=env
    )
    assert placed.returncode == 0, placed.stderr
    order_id = placed.stdout.strip()
    assert await harness.run_worker() == 0, harness.worker_output()
    book = json.loads(run_cli("orders", "book", "xrp", env=env).stdout)
    status = run_cli("status", env=env).stdout
    cancelled = run_cli("cancel", order_id, env=env)
    assert await harness.run_worker() == 0, harness.worker_output()
    bad = run_cli("buy", "lima_user", "XRP", "1", "--expires-in", "2h", env=env)

    assert book == {
        "asset_id": "XRP",
        "bids": [
            {
                "order_id": order_id,
                "username": "lima_user",
                "limit_price": "1.50000000",
                "quantity": "100",
            }
        ],
        "asks": [],
        "stops": [],
    }
    assert "open limit orders: XRP 1 bids/0 asks" in status
    assert "orders by status: QUEUED 1" in status
    assert cancelled.returncode == 0, cancelled.stderr
    order = await harness.order(order_id)
    assert order.status.value == "CANCELLED"
    assert order.expires_at is not None
    assert (
        timedelta(hours=1, minutes=59) < order.expires_at - order.created_at <= timedelta(hours=2)
    )
    assert await harness.available("lima_user") == Decimal("1000.00")
    assert bad.returncode == 2
    assert "--expires-in needs --limit" in bad.stderr
