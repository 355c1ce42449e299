"""The gateway program: `order-processor gateway` and `python -m workers.gateway`.

The same lifecycle as the workers (`compose.operated`: JSON logs, metrics, `/livez` and
`/readyz` on the metrics port, a start-up that waits while AWS is away), with uvicorn run
in it programmatically: the program keeps the stop signals (uvicorn's own handlers are
not installed), and on SIGTERM or SIGINT it stops answering ready, ends every event
stream, stops accepting, lets the requests in flight finish within the shutdown grace and
exits 0. Readiness checks the tables and the commands queue; Redis is reported but never
makes the gateway unready (reads fall back to DynamoDB)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import logging
import socket
import sys
from collections.abc import AsyncIterator, Generator, Sequence

import uvicorn
from fastapi import FastAPI

from order_processor.bootstrap.arguments import add_gateway_arguments
from order_processor.bootstrap.cache import open_read_model
from order_processor.bootstrap.clients import (
    AwsClients,
    get_asset_balance_dao,
    get_asset_dao,
    get_balance_dao,
    get_order_dao,
    get_token_manager,
    get_user_dao,
)
from order_processor.bootstrap.compose import operated
from order_processor.bootstrap.runtime import (
    Lifecycle,
    configure_logging,
    reachable,
    stopped_on,
    supervised,
)
from order_processor.config import ConfigError, QueueKind, Settings
from order_processor.domain.ports import MetricsSink
from order_processor.gateway.app import create_app
from order_processor.gateway.deps import Gateway
from order_processor.gateway.dynamo import DynamoGatewayReads
from order_processor.gateway.limits import GatewayLimits
from order_processor.gateway.memory import MemoryAttempts, MemoryReceipts
from order_processor.gateway.ports import Attempts, Receipts
from order_processor.gateway.shared import RedisAttempts, RedisReceipts
from order_processor.messaging.producer import Producer
from order_processor.observability import GATEWAY, Check
from order_processor.readmodel.memory import MemoryReadModel
from order_processor.readmodel.ports import ReadModel
from order_processor.readmodel.redis import RedisReadModel
from order_processor.security.audit import AuditLogger
from order_processor.security.passwords import PasswordManager

log = logging.getLogger(__name__)
PROG = "order-processor gateway"


def gateway_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workers.gateway", description="the HTTP API for end users"
    )
    add_gateway_arguments(parser)
    return parser


def main(argv: Sequence[str]) -> int:
    """`python -m workers.gateway [options]`: the settings from the environment."""
    args = gateway_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    return run_gateway(args, settings)


def run_gateway(args: argparse.Namespace, settings: Settings) -> int:
    """Until SIGTERM/SIGINT; 2 for a configuration it cannot run with."""
    given = {
        "gateway_host": args.host,
        "gateway_port": args.port,
        "metrics_port": args.metrics_port,
    }
    try:
        settings = settings.overridden({k: v for k, v in given.items() if v is not None})
        get_token_manager(settings)  # fail before connecting if the secret is missing
        configure_logging(settings)
        asyncio.run(supervised(lambda life: serve_gateway(settings, life)))
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    return 0


def gateway_limits(settings: Settings) -> GatewayLimits:
    return GatewayLimits(
        max_body_bytes=settings.gateway_max_body_bytes,
        login_attempts=settings.gateway_login_attempts,
        login_attempts_per_address=settings.gateway_login_attempts_per_address,
        login_lockout_seconds=settings.gateway_login_lockout_seconds,
        rate_per_user=settings.gateway_rate_per_user,
        burst_per_user=settings.gateway_burst_per_user,
        rate_per_address=settings.gateway_rate_per_address,
        burst_per_address=settings.gateway_burst_per_address,
        streams_per_user=settings.gateway_streams_per_user,
        streams_per_address=settings.gateway_streams_per_address,
    )


def gateway_secret(settings: Settings) -> bytes:
    """The key of the order ids and cursors, derived from the JWT secret (every replica
    derives the same one; it is never the JWT key itself)."""
    assert settings.jwt_secret is not None
    key = settings.jwt_secret.get_secret_value().encode()
    return hmac.new(key, b"order-processor gateway: order ids and cursors", hashlib.sha256).digest()


def build_gateway(
    settings: Settings,
    clients: AwsClients,
    commands_url: str,
    model: ReadModel,
    metrics: MetricsSink,
) -> Gateway:
    """The gateway over the deployment; with the read model in Redis, failed logins and
    Idempotency-Key receipts are kept there too, shared by every replica."""
    reads = DynamoGatewayReads(
        users=get_user_dao(clients),
        orders_dao=get_order_dao(clients),
        balances_dao=get_balance_dao(clients),
        asset_balances=get_asset_balance_dao(clients),
        assets=get_asset_dao(clients),
        passwords=PasswordManager(),
    )
    fifo = settings.queue_kind is QueueKind.FIFO
    limits = gateway_limits(settings)
    attempts: Attempts | None = None  # None: per replica (Gateway.login_attempts)
    receipts: Receipts = MemoryReceipts()
    if isinstance(model, RedisReadModel):
        prefix = f"{settings.prefix}:gateway"
        attempts = RedisAttempts(
            model.redis,
            prefix,
            limits.login_attempts,
            limits.login_lockout_seconds,
            MemoryAttempts(limits.login_attempts, limits.login_lockout_seconds),
            model.pause,
        )
        receipts = RedisReceipts(model.redis, prefix, fallback=receipts, pause=model.pause)
    return Gateway(
        reads=reads,
        commands=Producer(clients.sqs, commands_url, fifo=fifo),
        read_model=model,
        tokens=get_token_manager(settings),
        secret=gateway_secret(settings),
        limits=limits,
        audit=AuditLogger(),
        metrics=metrics,
        attempts=attempts,
        receipts=receipts,
    )


@contextlib.asynccontextmanager
async def read_model_of(settings: Settings) -> AsyncIterator[ReadModel]:
    """Redis from REDIS_URL; without it, no read model: every read goes to DynamoDB and
    the stream answers that it is unavailable."""
    if settings.redis_url is None:
        log.warning("REDIS_URL is not set: reads go to DynamoDB, the event stream is off")
        yield MemoryReadModel(available=False)
        return
    async with open_read_model(settings) as model:
        yield model


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the program's lifecycle has the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def server_for(app: FastAPI, settings: Settings) -> uvicorn.Server:
    """uvicorn as the program runs it: no logging of its own (the program's JSON logs), no
    access log (the gateway writes its own), the shutdown grace for requests in flight,
    X-Forwarded-For only from the trusted proxies."""
    proxies = settings.gateway_trusted_proxies
    config = uvicorn.Config(
        app,
        proxy_headers=proxies is not None,
        forwarded_allow_ips=proxies or "",
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        timeout_keep_alive=5,
    )
    return _Server(config)


def listening_socket(host: str, port: int) -> socket.socket:
    """Made with its protocol named: asyncio turns Nagle's algorithm off (TCP_NODELAY) only
    on a connection whose socket says IPPROTO_TCP, and with it on a response written in two
    parts (headers, then body) waited ~40 ms for the client's delayed ACK."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} "
            "(ORDER_PROCESSOR_GATEWAY_HOST, ORDER_PROCESSOR_GATEWAY_PORT)"
        ) from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def serve_gateway(settings: Settings, life: Lifecycle) -> None:
    async with operated("gateway", settings, GATEWAY, life) as program:
        clients = program.clients
        commands_url = await reachable(clients.queue_url, clients.resources.commands_queue.name)
        async with read_model_of(settings) as model:
            redis = Check("read model (redis)", model.ping, required=False)
            program.readiness.checks = [*program.readiness.checks, redis]
            app = create_app(build_gateway(settings, clients, commands_url, model, program.metrics))
            dispatcher = app.state.runtime.dispatcher
            program.metrics.gauge("gateway_streams_open", dispatcher.open_streams)
            sock = listening_socket(settings.gateway_host, settings.gateway_port)
            server = server_for(app, settings)
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            await _started(server, serving)
            host, port = sock.getsockname()[:2]
            log.info("gateway listening on %s:%d", host, port, extra={"port": port})
            program.ready()
            async with stopped_on(life.stopping, lambda: None, program.readiness):
                stopping = asyncio.create_task(life.stopping.wait())
                await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                await dispatcher.stop()  # every stream ends: the connections can close
                server.should_exit = True
                await serving
            log.info("gateway stopped")


async def _started(server: uvicorn.Server, serving: asyncio.Task[None]) -> None:
    while not server.started:
        if serving.done():
            serving.result()
            raise ConfigError("the gateway's server stopped while starting")
        await asyncio.sleep(0.05)
