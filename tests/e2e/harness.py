"""Drive a deployment as users and operators do: seed through the DAOs, send commands
through SQS, run real worker processes, read events from the order-status queue."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bcrypt

from order_processor.bootstrap import (
    AwsClients,
    get_asset_dao,
    get_asset_transaction_dao,
    get_balance_dao,
    get_order_dao,
    get_token_manager,
    get_user_dao,
)
from order_processor.bootstrap.clients import get_rate_store
from order_processor.config import QueueKind, Settings
from order_processor.domain.assets import AssetCreate, AssetTransactionCreate, AssetTransactionType
from order_processor.domain.balances import BalanceTransactionCreate, TransactionType
from order_processor.domain.base import new_id, utc_now
from order_processor.domain.commands import (
    AnyCommand,
    PlaceOrder,
    ServiceName,
    UpdatePrice,
    UpdateRate,
)
from order_processor.domain.events import Event, EventType
from order_processor.domain.money import buy_cost, sell_proceeds
from order_processor.domain.orders import Order, OrderCreate, OrderStatus, OrderType
from order_processor.domain.ports import LedgerWrite
from order_processor.domain.steps import Step
from order_processor.domain.users import UserCreate
from order_processor.messaging.producer import C, CommandFactory, Producer, signed_by
from order_processor.saga.decision import moved
from order_processor.saga.records import Records, debit, hold, joined, release
from order_processor.security.tokens import TokenManager
from order_processor.store import keys
from order_processor.store.dynamo import from_item
from order_processor.store.ledger import DynamoLedger
from tests.support import CLI

if TYPE_CHECKING:
    from types_aiobotocore_sqs.literals import QueueAttributeNameType

# An order that must come due is given an expiry DUE_IN from now, and the programs that
# should find it due run their clocks AHEAD (the sweeper's --now, the worker's clock-ahead
# fault hook) instead of the test waiting in real time: placing it never races its
# expiry, however slow the machine, and the verdict never depends on the machine's speed.
DUE_IN = timedelta(hours=1)
AHEAD = timedelta(hours=2)


@dataclass
class Harness:
    settings: Settings
    clients: AwsClients
    queue_url: str
    status_url: str
    tokens: TokenManager
    events: list[Event] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    # What every program process runs with on top of the deployment's settings: the fault
    # proxy's endpoint, an assumed role (the harness itself talks to the emulator directly).
    program_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    async def start(cls, settings: Settings, clients: AwsClients) -> Harness:
        resources = settings.resources()
        urls = [
            (await clients.sqs.get_queue_url(QueueName=name))["QueueUrl"]
            for name in (resources.commands_queue.name, resources.order_status_queue.name)
        ]
        return cls(settings, clients, urls[0], urls[1], get_token_manager(settings))

    # seeding

    async def create_user(
        self, username: str, usd: str | None = None, *, password: str | None = None
    ) -> None:
        """A user; with `password`, one who can log in (at bcrypt's lowest cost: tests)."""
        hashed = "not-used-here"
        if password is not None:
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
        await get_user_dao(self.clients).create_user(
            UserCreate(
                username=username, email=f"{username}@example.com", first_name="T", last_name="U"
            ),
            password_hash=hashed,
        )
        if usd:  # the balance opened with the user
            await self.fund(username, usd)

    async def fund(self, username: str, amount: str, currency: str = "USD") -> None:
        """Cash through a recorded deposit (another currency's balance opens with it)."""
        await get_balance_dao(self.clients).update_balance(
            BalanceTransactionCreate(
                username=username,
                transaction_type=TransactionType.DEPOSIT,
                currency=currency,
                amount=amount,
            )
        )

    async def add_asset(
        self,
        asset_id: str,
        price: str,
        *,
        active: bool = True,
        precision: int = 8,
        quote: str = "USD",
    ) -> None:
        """An asset priced in `quote` (its orders hold and pay in it)."""
        assets = get_asset_dao(self.clients)
        await assets.create_asset(
            AssetCreate(
                asset_id=asset_id,
                name=asset_id,
                price=price,
                precision=precision,
                quote_currency=quote,
            )
        )
        if not active:
            await assets.deactivate_asset(asset_id)

    async def give_asset(self, username: str, asset_id: str, quantity: str) -> None:
        """Holdings through a recorded BUY, so the asset ledger stays whole."""
        await get_asset_transaction_dao(self.clients).create_asset_transaction(
            AssetTransactionCreate(
                username=username,
                asset_id=asset_id,
                transaction_type=AssetTransactionType.BUY,
                quantity=quantity,
                price="1",
                total_amount="0",
            )
        )

    # commands

    @property
    def factory(self) -> CommandFactory:
        return CommandFactory(self.tokens)

    def market(
        self, username: str, side: str, asset_id: str, quantity: str, **kw: Any
    ) -> PlaceOrder:
        kind = OrderType.MARKET_BUY if side == "buy" else OrderType.MARKET_SELL
        return self.factory.place_order(
            username, OrderCreate(order_type=kind, asset_id=asset_id, quantity=quantity), **kw
        )

    def limit(
        self,
        username: str,
        side: str,
        asset_id: str,
        quantity: str,
        limit: str,
        order_id: str | None = None,
        **fields: Any,
    ) -> PlaceOrder:
        kind = OrderType.LIMIT_BUY if side == "buy" else OrderType.LIMIT_SELL
        request = OrderCreate.model_validate(
            {
                "order_type": kind,
                "asset_id": asset_id,
                "quantity": quantity,
                "limit_price": limit,
                **fields,
            }
        )
        return self.factory.place_order(username, request, order_id=order_id)

    async def send_prices(self, *prices: tuple[str, str]) -> list[UpdatePrice]:
        """UpdatePrice commands onto the price-updates queue, as the feed sends them."""
        updates = [self.factory.update_price(asset_id, price) for asset_id, price in prices]
        await self._to_price_updates(updates)
        return updates

    async def send_rates(self, *rates: tuple[str, str]) -> list[UpdateRate]:
        """UpdateRate commands (currency, rate) onto the price-updates queue, as the feed
        sends them."""
        updates = [self.factory.update_rate(currency, rate) for currency, rate in rates]
        await self._to_price_updates(updates)
        return updates

    async def _to_price_updates(self, updates: Sequence[UpdatePrice | UpdateRate]) -> None:
        url = (
            await self.clients.sqs.get_queue_url(
                QueueName=self.settings.resources().price_updates_queue.name
            )
        )["QueueUrl"]
        await Producer(self.clients.sqs, url, fifo=False).send_batch(list(updates))

    async def set_rates(self, *rates: tuple[str, str]) -> None:
        """Rates (currency, rate) stored as the matcher stores an UpdateRate's, observed
        now: no matcher to run."""
        store = get_rate_store(self.clients, self.settings)
        for currency, rate in rates:
            await store.change_rate(currency, rate, as_of=utc_now(), command_id=new_id())

    async def settle(self, **worker: Any) -> None:
        """Run the matcher, then the order worker (with `worker`'s options), each until its
        queue is empty."""
        assert await self.run_worker(kind="limit-matcher") == 0, self.worker_output()
        assert await self.run_worker(**worker) == 0, self.worker_output()

    async def send(self, *commands: AnyCommand) -> None:
        fifo = self.settings.queue_kind is QueueKind.FIFO
        await Producer(self.clients.sqs, self.queue_url, fifo=fifo).send_batch(list(commands))

    async def send_raw(self, body: str, group: str = "raw", dedup: str | None = None) -> None:
        extra: dict[str, Any] = {}
        if self.settings.queue_kind is QueueKind.FIFO:
            extra = {
                "MessageGroupId": group,
                "MessageDeduplicationId": dedup or os.urandom(8).hex(),
            }
        await self.clients.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body, **extra)

    # workers

    def worker_environment(
        self, fault: str | None = None, env: dict[str, str] | None = None
    ) -> dict[str, str]:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("ORDER_PROCESSOR_")}
        environment.update(self.settings.to_env())
        environment.update(self.program_env)
        if fault:
            environment["ORDER_PROCESSOR_FAULT"] = fault
        environment.update(env or {})
        return environment

    def start_worker(
        self,
        *,
        burst: bool = True,
        fault: str | None = None,
        concurrency: int = 16,
        kind: str = "orders",
        extra: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        ahead: timedelta | None = None,
    ) -> subprocess.Popen[bytes]:
        """A worker process; `ahead`: its clock that far ahead of the machine's."""
        log = tempfile.NamedTemporaryFile(prefix="worker-", suffix=".log", delete=False)  # noqa: SIM115
        self.logs.append(Path(log.name))
        consumes = kind != "expiry-sweeper"  # the sweeper has no queue to drain
        arguments = [CLI, "worker", kind, *extra]
        if consumes:
            arguments += ["--concurrency", str(concurrency), *(["--burst"] if burst else [])]
        clock = f"clock-ahead={ahead.total_seconds():g}" if ahead else None
        faults = ",".join(spec for spec in (fault, clock) if spec)
        return subprocess.Popen(
            arguments,
            env=self.worker_environment(faults or None, env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    async def wait(self, process: subprocess.Popen[bytes], seconds: float = 120) -> int:
        try:
            return await asyncio.to_thread(process.wait, seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(
                f"worker still running after {seconds} s:\n{self.worker_output()}"
            ) from None

    async def run_worker(self, **options: Any) -> int:
        return await self.wait(self.start_worker(**options))

    async def sweep(self, *extra: str, recovery_age: int = 300) -> None:
        """One sweep (expiry and recovery) of the sweeper program."""
        environment = {"ORDER_PROCESSOR_RECOVERY_AGE_SECONDS": str(recovery_age)}
        code = await self.run_worker(
            kind="expiry-sweeper", extra=("--once", *extra), env=environment
        )
        assert code == 0, self.worker_output()

    async def sweep_ahead(self, ahead: timedelta = AHEAD) -> None:
        """One sweep at the machine's time plus `ahead` (the sweeper's --now)."""
        await self.sweep("--now", (utc_now() + ahead).isoformat())

    async def lose_commands(self) -> None:
        """Every message on the commands queue gone, in flight or not: what a purged DLQ or
        an operator's mistake leaves behind."""
        await self.clients.sqs.purge_queue(QueueUrl=self.queue_url)

    async def strand(
        self, command: PlaceOrder, status: OrderStatus, price: str | None = None
    ) -> Order:
        """The order as a v1 worker that died mid-saga left it (v2 never stores these
        states): PENDING (accepted, nothing moved) or PROCESSING (debited at `price`, or
        the inventory's, and not credited); written through the store, fenced."""
        resources = self.settings.resources()
        ledger = DynamoLedger(
            self.clients.dynamodb,
            resources.users_table,
            resources.orders_table,
            resources.inventory_table,
        )
        payload = command.payload
        snapshot = await ledger.read(
            command.username, order_id=payload.order_id, asset_id=payload.asset_id
        )
        at = utc_now()
        order = Order.place(command.username, payload, order_id=payload.order_id).evolve(
            step=Step.ACCEPTED,
            sequence=1,
            created_at=at,
            updated_at=at,
            expires_at=at + timedelta(days=30) if payload.order_type.is_limit else None,
        )
        records: Records = ((), ())
        if status is OrderStatus.PROCESSING:
            assert snapshot.asset is not None
            order, records = _debited(order, Decimal(price) if price else snapshot.asset.price)
        write = LedgerWrite(
            username=command.username,
            fence=snapshot.fence,
            at=at,
            step=order.step or Step.ACCEPTED,
            order=order,
            cash=records[0],
            assets=records[1],
        )
        await ledger.write(write)
        return order

    async def dead_letters(self) -> int:
        """Messages in the commands queue's DLQ (visible or not)."""
        dead_letter = self.settings.resources().commands_queue.dead_letter
        assert dead_letter is not None
        url = (await self.clients.sqs.get_queue_url(QueueName=dead_letter.name))["QueueUrl"]
        names: list[QueueAttributeNameType] = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
        ]
        attributes = await self.clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)
        return sum(int(attributes["Attributes"][name]) for name in names)

    def signed(self, service: ServiceName, command: C) -> C:
        """`command` as that service sends it: with a token minted for it alone."""
        return signed_by(self.tokens, service, command)

    def worker_output(self) -> str:
        return "\n".join(path.read_text(errors="replace")[-4000:] for path in self.logs)

    # observing

    async def collect_events(
        self, done: Callable[[list[Event]], bool], seconds: float = 30
    ) -> list[Event]:
        """Long-poll the order-status queue until `done(events)` or the deadline (SNS
        delivers asynchronously: never a fixed sleep)."""
        deadline = time.monotonic() + seconds
        while not done(self.events):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"events incomplete after {seconds} s: {[e.event_type for e in self.events]}"
                )
            response = await self.clients.sqs.receive_message(
                QueueUrl=self.status_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            for message in response.get("Messages", []):
                self.events.append(Event.model_validate_json(message["Body"]))
                await self.clients.sqs.delete_message(
                    QueueUrl=self.status_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return self.events

    def of_type(self, kind: EventType) -> list[Event]:
        return [e for e in self.events if e.event_type is kind]

    async def order(self, order_id: str) -> Order:
        return await get_order_dao(self.clients).get_order(order_id)

    async def available(self, username: str) -> Decimal:
        return (await get_balance_dao(self.clients).get_balance(username)).available

    async def cash(self, username: str, currency: str) -> tuple[Decimal, Decimal]:
        """The user's (available, held) in `currency`, read raw; zeros when it never opened."""
        item = await self._users_item(keys.balance_key(username, currency))
        return Decimal(item.get("available", 0)), Decimal(item.get("held", 0))

    async def liquidity(self, username: str, currency: str) -> Decimal:
        """The exchange's liquidity part in `currency` kept with the user, read raw."""
        item = await self._users_item(keys.liquidity_key(username, currency))
        return Decimal(item.get("amount", 0))

    async def _users_item(self, key: dict[str, Any]) -> dict[str, Any]:
        answer = await self.clients.dynamodb.get_item(
            TableName=self.clients.resources.users_table, Key=key, ConsistentRead=True
        )
        return from_item(answer.get("Item", {}))


def _debited(accepted: Order, price: Decimal) -> tuple[Order, Records]:
    """v1's states up to the debit: a limit order held, then released and paid."""
    at = accepted.updated_at
    rounding = buy_cost if accepted.order_type.is_buy else sell_proceeds
    amount = rounding(accepted.quantity, price)
    base = accepted
    if accepted.order_type.is_limit:
        base = moved(accepted, at, Step.HELD, status=OrderStatus.QUEUED)
    processing = moved(
        base, at, Step.DEBITED, status=OrderStatus.PROCESSING, price=price, total_amount=amount
    )
    if not accepted.order_type.is_limit:
        return processing, debit(processing)
    return processing, joined(hold(processing), release(processing), debit(processing))
