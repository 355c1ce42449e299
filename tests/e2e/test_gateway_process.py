"""The gateway program against the emulator: started as `order-processor gateway`, ready
while its Redis is away (reported, not required), a login, an order placed over HTTP and
read back from DynamoDB once a worker ran it, and SIGTERM: exit 0."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import bcrypt
import httpx

from order_processor.bootstrap import get_user_dao
from order_processor.domain.users import UserCreate
from tests.e2e.harness import Harness
from tests.support import CLI

PASSWORD = "Corr3ct-horse!"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def ready(
    client: httpx.AsyncClient, url: str, process: subprocess.Popen[bytes]
) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the gateway exited"
        try:
            answer = await client.get(url)
            if answer.status_code == 200:
                body: dict[str, object] = answer.json()
                return body
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("the gateway never became ready")


async def test_the_gateway_serves_while_redis_is_away_and_stops_on_sigterm(
    harness: Harness,
) -> None:
    await harness.add_asset("BTC", "100")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    request = UserCreate(
        username="http_trader", email="h@example.com", first_name="H", last_name="T"
    )
    await get_user_dao(harness.clients).create_user(request, password_hash=hashed)
    await harness.fund("http_trader", "500")
    port, metrics_port, closed = free_port(), free_port(), free_port()
    output = tempfile.NamedTemporaryFile(prefix="gateway-", suffix=".log", delete=False)  # noqa: SIM115
    harness.logs.append(Path(output.name))
    environment = harness.worker_environment(env={"REDIS_URL": f"redis://127.0.0.1:{closed}/0"})
    process = subprocess.Popen(
        [CLI, "gateway", "--port", str(port), "--metrics-port", str(metrics_port)],
        env=environment,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            readiness = await ready(client, f"http://127.0.0.1:{metrics_port}/readyz", process)
            checks = readiness["checks"]
            assert isinstance(checks, list)
            redis = [c for c in checks if c["name"] == "read model (redis)"]
            assert redis[0]["ok"] is False
            assert redis[0]["required"] is False

            session = await client.post(
                f"{base}/v1/sessions", json={"username": "http_trader", "password": PASSWORD}
            )
            assert session.status_code == 200, session.text
            auth = {"Authorization": f"Bearer {session.json()['access_token']}"}
            placed = await client.post(
                f"{base}/v1/orders",
                json={"order_type": "MARKET_BUY", "asset_id": "BTC", "quantity": "2"},
                headers={**auth, "Idempotency-Key": "first-http-order"},
            )
            assert placed.status_code == 202, placed.text
            assert await harness.run_worker() == 0, harness.worker_output()

            order = await client.get(f"{base}{placed.headers['location']}", headers=auth)
            balances = await client.get(f"{base}/v1/balances", headers=auth)
            stream = await client.get(f"{base}/v1/stream", headers=auth)
    finally:
        process.send_signal(signal.SIGTERM)
        code = await harness.wait(process, 30)

    assert order.json()["status"] == "COMPLETED"
    assert Decimal(order.json()["total_amount"]) == Decimal("200.00")
    assert balances.json()["balances"] == [
        {"currency": "USD", "available": "300.00", "held": "0.00"}
    ]
    assert "event: unavailable" in stream.text
    printed = harness.worker_output()
    assert code == 0, printed
    assert "gateway stopped" in printed
