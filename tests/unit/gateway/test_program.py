"""The gateway program's wiring: its limits from the settings, its key, its refusals of a
configuration it cannot run with (before it connects to anything)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from order_processor.bootstrap.gateway import (
    gateway_limits,
    gateway_secret,
    listening_socket,
    server_for,
)
from order_processor.cli import main
from order_processor.config import ConfigError, Settings
from tests.unit.gateway.conftest import build_world

SECRET = "gateway-program-tests-secret-32-bytes-long"


def test_the_limits_are_the_settings() -> None:
    settings = Settings.from_env(
        {
            "ORDER_PROCESSOR_GATEWAY_MAX_BODY_BYTES": "4096",
            "ORDER_PROCESSOR_GATEWAY_LOGIN_ATTEMPTS": "3",
            "ORDER_PROCESSOR_GATEWAY_STREAMS_PER_ADDRESS": "7",
        }
    )

    limits = gateway_limits(settings)

    assert (limits.max_body_bytes, limits.login_attempts, limits.streams_per_address) == (
        4096,
        3,
        7,
    )
    assert (limits.login_lockout_seconds, limits.rate_per_user) == (900, 20.0)


def test_every_replica_derives_the_same_key_and_it_is_not_the_jwt_secret() -> None:
    one = gateway_secret(Settings(jwt_secret=SECRET))
    two = gateway_secret(Settings(jwt_secret=SECRET))
    other = gateway_secret(Settings(jwt_secret=SECRET + "!"))

    assert one == two != other
    assert SECRET.encode() not in one


def test_without_the_jwt_secret_the_gateway_refuses_to_start(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ORDER_PROCESSOR_JWT_SECRET", raising=False)

    assert main(["gateway"]) == 2
    assert "ORDER_PROCESSOR_JWT_SECRET is required" in capsys.readouterr().err


def test_a_port_out_of_range_is_refused_naming_the_option(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDER_PROCESSOR_JWT_SECRET", SECRET)

    with pytest.raises(SystemExit) as exited:
        main(["gateway", "--port", "70000"])

    assert exited.value.code == 2
    assert "argument --port: '70000' is not a port (0 to 65535)" in capsys.readouterr().err


def test_a_port_taken_is_refused_naming_the_settings() -> None:
    taken = listening_socket("127.0.0.1", 0)
    try:
        with pytest.raises(ConfigError, match="ORDER_PROCESSOR_GATEWAY_PORT"):
            listening_socket("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()


async def test_a_connection_to_the_gateway_sends_each_write_at_once() -> None:
    """Nagle's algorithm off on every accepted connection: with it on, a response's body
    waited ~40 ms behind its headers for the client's delayed ACK."""
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(connected, sock=listening_socket("127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    async with server:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        nodelay = await asyncio.wait_for(accepted, 5)
        writer.close()

    assert nodelay != 0


def test_forwarded_addresses_are_taken_only_from_the_trusted_proxies() -> None:
    app = build_world()[0].app
    direct = server_for(app, Settings()).config
    proxied = server_for(app, Settings(gateway_trusted_proxies="10.0.0.0/8")).config

    assert direct.proxy_headers is False
    assert (proxied.proxy_headers, proxied.forwarded_allow_ips) == (True, "10.0.0.0/8")
