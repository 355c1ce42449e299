"""`make run` at a small size: its summary and audit, checked against the tables; and
Ctrl-C during it: no process left behind, no order lost."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator

import pytest

from order_processor.config import Settings
from order_processor.domain.events import Event, EventType
from tests.e2e.conftest import deployment_settings
from tests.support import CLI, Clients, destroy, run_cli


@pytest.fixture
def demo_deployment(aws_endpoint: str) -> Iterator[Settings]:
    settings = deployment_settings(aws_endpoint)
    try:
        yield settings
    finally:
        destroy(settings)


def expired_on_arrival(settings: Settings) -> int:
    """Orders rejected ALREADY_EXPIRED, from the order-status queue (what the demo's own
    follower has not read): one event per command, however many copies were delivered."""
    clients = Clients(settings)
    url = clients.queue_url(settings.resources().order_status_queue.name)
    rejected: set[str] = set()
    while True:
        messages = clients.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        if not messages:
            return len(rejected)
        for message in messages:
            event = Event.model_validate_json(message["Body"])
            if (
                event.event_type is EventType.COMMAND_REJECTED
                and event.data.get("reason") == "ALREADY_EXPIRED"
            ):
                rejected.add(event.event_id)
        clients.sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )


def environment(settings: Settings) -> dict[str, str]:
    assert settings.endpoint_url is not None
    return {"AWS_ENDPOINT_URL": settings.endpoint_url, "ORDER_PROCESSOR_PREFIX": settings.prefix}


def count_orders(settings: Settings) -> int:
    dynamodb = Clients(settings).dynamodb
    total: int = 0
    arguments: dict[str, object] = {
        "TableName": settings.resources().orders_table,
        "Select": "COUNT",
    }
    while True:
        page = dynamodb.scan(**arguments)
        total += int(page["Count"])
        if "LastEvaluatedKey" not in page:
            return total
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_the_demo_runs_a_mixed_load_and_its_audit_passes(demo_deployment: Settings) -> None:
    result = run_cli(
        "demo",
        "--users",
        "4",
        "--orders",
        "40",
        "--seconds",
        "4",
        env=environment(demo_deployment),
        timeout=240,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"audit PASSED: 4 users, \d+ orders, \d+ transactions checked", out)
    assert "dead letters: 0" in out
    placed = int(re.search(r"^commands sent: .*\b(\d+) PlaceOrder\b", out, re.M).group(1))  # type: ignore[union-attr]
    table_total = sum(
        int(line.split()[-1])
        for line in out.splitlines()
        if re.match(r"^(MARKET|LIMIT|STOP|TAKE_PROFIT|TRAILING_STOP)_(BUY|SELL) ", line)
    )
    assert placed == table_total == count_orders(demo_deployment)
    assert "QUEUED" not in out.split("orders ", 1)[1].splitlines()[0]  # every order final
    assert re.search(r"throughput: [\d.]+ orders/s", out)
    assert re.search(r"market order latency, command sent to final event: p50 \d+ ms", out)
    # Each kind of the load timed to its answer (tests/unit/test_demo_tally.py: how).
    assert re.search(r"^  market order: \d+ answered, p50 \d+ ms, p95 \d+ ms", out, re.M)
    # The matcher stored the feed's rates; one user each funded in EUR, GBP and JPY.
    assert re.search(
        r"^exchange rates at the close, USD per unit: "
        r"EUR 1\.\d+, GBP 1\.\d+, JPY 0\.00\d+ \(\d+ updates sent\)$",
        out,
        re.M,
    )
    assert re.search(r"^  EUR: [1-9]\d* deposits? \([\d,]+\.\d\d EUR\)", out, re.M)
    assert re.search(r"^  GBP: [1-9]\d* deposits? \([\d,]+\.\d\d GBP\)", out, re.M)
    assert re.search(r"^  JPY: [1-9]\d* deposits? \([\d,]+ JPY\)", out, re.M)
    assert re.search(
        r"^       users hold [\d,]+ JPY \([\d,]+ JPY of it held for orders\); ", out, re.M
    )
    # Everyone bought a little of the asset quoted in EUR, the others paying from theirs.
    assert re.search(
        r"^ETHEUR, quoted in EUR: \d+ orders, [1-9]\d* filled for [\d,]+\.\d\d EUR; "
        r"[1-9]\d* market buys? paid from another currency \(",
        out,
        re.M,
    )
    assert "workers stopped" in out
    # The analytics worker counted every order the demo saw final, as the rebuild does.
    final = int(re.search(r"\((\d+) final in", out).group(1))  # type: ignore[union-attr]
    assert f"analytics: {final} final orders, fill ratio " in out
    assert "analytics: the views equal their rebuild from the orders table" in out
    # The dashboard is up from the start (on 8050, or a free port when that is taken).
    assert re.search(
        r"^dashboard: http://127\.0\.0\.1:\d+/ \(live while the demo runs\)$", out, re.M
    )
    # The load starts once every program answers ready, never during start-up.
    assert out.index("all programs ready in") < out.index("sending 40 commands")
    # One user in four (here demo_user_000) logged in and placed their orders over HTTP,
    # and their stream brought the final event of every one of them.
    assert re.search(r"^gateway: http://127\.0\.0\.1:\d+ ", out, re.M)
    over_http = re.search(
        r"^gateway: (\d+) of (\d+) orders placed over HTTP by 1 user \(POST /v1/orders p50",
        out,
        re.M,
    )
    assert over_http is not None, out
    assert 0 < int(over_http[1]) < int(over_http[2]) == placed
    heard = re.search(r"^  stream of demo_user_000: (\d+) of (\d+) final events heard", out, re.M)
    assert heard is not None, out
    # Every one heard (an order refused on arrival, ALREADY_EXPIRED on a slow machine, has
    # no final event and is not expected).
    assert heard[1] == heard[2]
    assert 0 < int(heard[2]) <= int(over_http[1])
    assert "stream listeners: every final event heard" in out


def test_ctrl_c_stops_everything_and_loses_no_order(demo_deployment: Settings) -> None:
    secret = {"ORDER_PROCESSOR_JWT_SECRET": "demo-secret-" + "z" * 32}
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDER_PROCESSOR_")}
    env.update(environment(demo_deployment), **secret)
    with subprocess.Popen(
        [CLI, "demo", "--users", "4", "--orders", "2000", "--seconds", "60"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as demo:
        assert demo.stdout is not None
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if (
                line.strip().startswith("sent")
                and "orders final" in line
                and int(line.split()[1]) > 50
            ):
                break
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=90)
        lines += rest.splitlines(keepends=True)
    out = "".join(lines)

    assert demo.returncode == 130, out
    pids = [int(p) for p in re.search(r"pids ([\d ]+)\)", out).group(1).split()]  # type: ignore[union-attr]
    # The demo waited for its workers: none may remain.
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    placed = int(re.search(r"\((\d+) orders\)", out).group(1))  # type: ignore[union-attr]

    # What the workers had not finished is still on the queue: drain it, then count. A
    # limit order whose own expiry (5 to 30 s ahead) passed before a worker saw it is
    # rejected ALREADY_EXPIRED and never stored: on a slow machine some are.
    drain_env = {**environment(demo_deployment), **secret}
    for kind in ("orders", "limit-matcher", "orders"):
        drained = run_cli("worker", kind, "--burst", env=drain_env, timeout=180)
        assert drained.returncode == 0, drained.stderr[-2000:]
    status = run_cli("status", env=drain_env).stdout  # where the rest is, if anywhere
    stored, expired = count_orders(demo_deployment), expired_on_arrival(demo_deployment)
    assert stored + expired == placed, out[-3000:] + status
    audit = run_cli("audit", env=drain_env, timeout=120)
    assert audit.returncode == 0, audit.stdout[-3000:]
