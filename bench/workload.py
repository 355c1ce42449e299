"""Deployments, seeding, worker processes and the event follower for the benchmark."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from order_processor.aws import sync_clients
from order_processor.bootstrap import AwsClients, get_asset_dao, open_clients
from order_processor.config import Settings
from order_processor.deployment.emulator import free_port
from order_processor.deployment.provision import Provisioner
from order_processor.domain.assets import AssetCreate
from order_processor.domain.commands import AnyCommand, Convert, PlaceOrder
from order_processor.domain.events import Event, EventType
from order_processor.domain.orders import OrderCreate, OrderType
from order_processor.messaging.producer import CommandFactory, Producer
from order_processor.security.tokens import TokenManager, TokenPolicy
from order_processor.store import keys
from order_processor.store.dynamo import to_item

SECRET = "bench-secret-" + "b" * 32
TERMINAL = {"order.completed", "order.failed", "order.cancelled", "order.expired"}
# Events that answer a command by its id, and the field of their data that holds it.
BY_COMMAND = {
    EventType.BALANCE_CONVERTED: "conversion_id",
    EventType.COMMAND_REJECTED: "command_id",
}
PRICE = Decimal("10")
NO_LOGIN = "!"  # a password hash no password matches


def bench_settings(endpoint: str) -> Settings:
    return Settings(
        endpoint_url=endpoint,
        prefix=f"b{uuid.uuid4().hex[:10]}",
        jwt_secret=SECRET,
    )


def provision(settings: Settings) -> None:
    clients = sync_clients(settings, "dynamodb", "sqs", "sns")
    Provisioner(*clients).apply(settings.resources())


async def seed_users(
    clients: AwsClients, usernames: list[str], usd: Decimal, *, password_hash: str = NO_LOGIN
) -> None:
    """Users with a balance (and its DEPOSIT record, so the ledger stays whole), written
    straight to the table: seeding is not what is measured."""
    table = clients.resources.users_table
    items = []
    for name in usernames:
        items.append(
            {
                **keys.user_key(name),
                **to_item(
                    {
                        "username": name,
                        "email": f"{name}@bench.example",
                        "first_name": "B",
                        "last_name": "U",
                        "role": "customer",
                        "is_active": True,
                        "password_hash": password_hash,
                        "created_at": "2026-01-01T00:00:00+00:00",
                        "updated_at": "2026-01-01T00:00:00+00:00",
                    }
                ),
            }
        )
        items.append(
            {
                **keys.balance_key(name),
                **to_item(
                    {
                        "username": name,
                        "available": usd,
                        "held": Decimal("0.00"),
                        "updated_at": "2026-01-01T00:00:00+00:00",
                    }
                ),
            }
        )
        items.append(
            {
                **keys.transaction_key(name, f"seed-{name}"),
                **to_item(
                    {
                        "transaction_id": f"seed-{name}",
                        "username": name,
                        "transaction_type": "DEPOSIT",
                        "amount": usd,
                        "status": "COMPLETED",
                        "reference_id": None,
                        "description": "bench seed",
                        "created_at": "2026-01-01T00:00:00+00:00",
                        "updated_at": "2026-01-01T00:00:00+00:00",
                    }
                ),
            }
        )
    for start in range(0, len(items), 25):
        request = {table: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]}
        while request:
            response = await clients.dynamodb.batch_write_item(RequestItems=request)
            request = response.get("UnprocessedItems") or {}
    try:
        await get_asset_dao(clients).create_asset(
            AssetCreate(asset_id="COIN", name="Coin", price=PRICE)
        )
    except Exception:
        pass


@dataclass
class Follower:
    """The time the answer arrived: an order's terminal event by order id; a
    conversion's `balance.converted`, or any command's rejection, by command id (those
    rejected also in `rejected`)."""

    final_at: dict[str, float] = field(default_factory=dict)
    rejected: set[str] = field(default_factory=set)

    async def run(self, clients: AwsClients, url: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            response = await clients.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            messages = response.get("Messages", [])
            now = time.monotonic()
            for message in messages:
                try:
                    event = Event.model_validate_json(message["Body"])
                except ValueError:
                    continue  # the ceiling's and the baseline's stand-in events
                if event.event_type.value in TERMINAL and event.order_id:
                    self.final_at.setdefault(event.order_id, now)
                elif event.event_type in BY_COMMAND:
                    command_id = str(event.data.get(BY_COMMAND[event.event_type]))
                    self.final_at.setdefault(command_id, now)
                    if event.event_type is EventType.COMMAND_REJECTED:
                        self.rejected.add(command_id)
            if messages:
                await clients.sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                    ],
                )


@dataclass
class Bench:
    settings: Settings
    clients: AwsClients
    commands_url: str
    status_url: str
    tokens: TokenManager
    follower: Follower = field(default_factory=Follower)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def orders(self, usernames: list[str], count: int, quantity: str = "1") -> list[PlaceOrder]:
        factory = CommandFactory(self.tokens)
        token = {u: self.tokens.create_access_token(u) for u in set(usernames)}
        request = OrderCreate(
            order_type=OrderType.MARKET_BUY, asset_id="COIN", quantity=Decimal(quantity)
        )
        return [
            factory.place_order(
                usernames[n % len(usernames)], request, token=token[usernames[n % len(usernames)]]
            )
            for n in range(count)
        ]

    async def send(self, commands: list[AnyCommand], rate: float | None = None) -> dict[str, float]:
        """Send (at `rate` per second if given); returns the send time of each order (by
        order id) and of each conversion (by command id)."""
        producer = Producer(self.clients.sqs, self.commands_url, fifo=True)
        sent: dict[str, float] = {}
        started = time.monotonic()
        for start in range(0, len(commands), 10):
            chunk = commands[start : start + 10]
            if rate:
                delay = started + start / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            now = time.monotonic()
            await producer.send_batch(chunk)
            sent.update({c.payload.order_id: now for c in chunk if isinstance(c, PlaceOrder)})
            sent.update({c.command_id: now for c in chunk if isinstance(c, Convert)})
        return sent

    async def wait_final(self, order_ids: set[str], seconds: float = 600) -> float:
        deadline = time.monotonic() + seconds
        while not order_ids <= self.follower.final_at.keys():
            if time.monotonic() > deadline:
                missing = len(order_ids - self.follower.final_at.keys())
                raise TimeoutError(f"{missing} orders not final after {seconds} s")
            await asyncio.sleep(0.05)
        return max(self.follower.final_at[o] for o in order_ids)


@asynccontextmanager
async def bench_deployment(endpoint: str, *, follow: bool = True) -> AsyncIterator[Bench]:
    """A fresh deployment; `follow`: a follower reads the events (for latencies), which
    costs the emulator a receive and a delete per ten events."""
    settings = bench_settings(endpoint)
    provision(settings)
    async with open_clients(settings) as clients:
        resources = settings.resources()
        urls = [
            (await clients.sqs.get_queue_url(QueueName=n))["QueueUrl"]
            for n in (resources.commands_queue.name, resources.order_status_queue.name)
        ]
        # Tokens as long-lived as the workers accept: a backlog waits on the queue.
        tokens = TokenManager(SECRET, policy=TokenPolicy(customer_lifetime=timedelta(hours=1)))
        bench = Bench(settings, clients, urls[0], urls[1], tokens)
        if follow:
            bench._task = asyncio.create_task(bench.follower.run(clients, urls[1], bench._stop))
        try:
            yield bench
        finally:
            bench._stop.set()
            if bench._task is not None:
                await bench._task


@dataclass
class Workers:
    processes: list[subprocess.Popen[bytes]]
    ports: list[int]

    def wait_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        for port in self.ports:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def metrics(self) -> list[str]:
        texts = []
        for port in self.ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                texts.append(response.read().decode())
        return texts

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def start_workers(settings: Settings, count: int, concurrency: int) -> Workers:
    assert settings.endpoint_url is not None
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ORDER_PROCESSOR_")}
    environment.update(settings.to_env())
    ports = [free_port() for _ in range(count)]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workers.order_worker",
                "--concurrency",
                str(concurrency),
                "--metrics-port",
                str(port),
            ],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    workers = Workers(processes, ports)
    deadline = time.monotonic() + 60
    for port in ports:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                workers.stop()
                raise TimeoutError("workers did not become ready")
            time.sleep(0.1)
    return workers
