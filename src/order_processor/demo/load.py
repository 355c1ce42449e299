"""`make run`: the whole system on one machine, under a mixed load, then its audit.

Seeds assets and users, starts two order workers, the limit matcher, the expiry sweeper
and the analytics worker as separate processes (demo.programs), sends the exchange rates
of EUR, GBP and JPY and funds users in them, sends deposits, withdrawals, conversions,
market, limit, stop, take-profit and trailing stop orders and cancels at a steady pace
while a random-walk feed moves prices and rates (demo.currencies), follows every status
event, closes the book (cancels what is still QUEUED), waits until every order is final,
then prints a summary, the ledger audit, and the analytics views checked against their
rebuild from the orders table. Ctrl-C (SIGINT) or SIGTERM stop it cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from order_processor.bootstrap import (
    AwsClients,
    get_asset_dao,
    get_order_dao,
    get_rate_store,
    get_token_manager,
    get_user_dao,
)
from order_processor.config import QueueKind, Settings
from order_processor.demo.currencies import RATE_EVERY_SECONDS, CurrencyDesk, quote_of
from order_processor.demo.feeds import random_walk
from order_processor.demo.gateway import GatewayTraders, create_users, trading_over_http
from order_processor.demo.programs import Programs
from order_processor.demo.tally import Tally
from order_processor.domain.assets import AssetCreate
from order_processor.domain.base import utc_now
from order_processor.domain.commands import AnyCommand, PlaceOrder, UpdateRate
from order_processor.domain.orders import OrderCreate, OrderType
from order_processor.exceptions import EntityAlreadyExistsException
from order_processor.messaging.producer import CommandFactory, Producer

ASSETS = {
    "BTC": Decimal("60000"),
    "ETH": Decimal("3000"),
    "SOL": Decimal("150"),
    "ADA": Decimal("0.5"),
    "ETHEUR": Decimal("2765"),  # in EUR (QUOTED)
}
CONDITIONAL_TYPES = [kind for kind in OrderType if kind.is_conditional]


@dataclass(frozen=True)
class DemoPlan:
    users: int = 20
    orders: int = 600
    seconds: float = 40.0
    seed: int = 7


class Demo:
    def __init__(self, settings: Settings, plan: DemoPlan, clients: AwsClients) -> None:
        self.settings = settings
        self.plan = plan
        self.clients = clients
        self.factory = CommandFactory(get_token_manager(settings))
        self.random = random.Random(plan.seed)  # noqa: S311 - a simulation
        self.tally = Tally()
        self.prices = dict(ASSETS)
        self.stopping = asyncio.Event()
        self.programs = Programs()
        self.commands: Producer | None = None
        self.users = [f"demo_user_{n:03d}" for n in range(plan.users)]
        self.fx = CurrencyDesk(self.factory, self.users, self.random, seed=plan.seed)
        self.feed: Producer | None = None
        self.traders = GatewayTraders(self.programs.gateway_url, trading_over_http(self.users))

    # setting up

    async def seed(self) -> None:
        assets = get_asset_dao(self.clients)
        for asset_id, price in ASSETS.items():
            quote = quote_of(asset_id)
            try:
                await assets.create_asset(
                    AssetCreate(asset_id=asset_id, name=asset_id, price=price, quote_currency=quote)
                )
            except EntityAlreadyExistsException:
                self.prices[asset_id] = (await assets.get_asset(asset_id)).price
        await create_users(get_user_dao(self.clients), self.users)
        await self.traders.open()
        await self.send([self.factory.deposit(u, "5000") for u in self.users], timed=False)
        await self.wait_for_rates(await self.send_rates())
        await self.send(self.fx.funding(), timed=False)
        # Everyone starts with a little of every asset, so sells have something to sell;
        # an asset quoted in another currency than theirs paid from their own.
        await self.send(
            [
                self.factory.place_order(
                    u,
                    OrderCreate(
                        order_type=OrderType.MARKET_BUY,
                        asset_id=a,
                        quantity=self._quantity(a, Decimal(400)),
                        pay_currency=self.fx.pay_in(u, a),
                    ),
                )
                for u in self.users
                for a in ASSETS
            ],
            timed=False,
        )

    # the load

    async def send(self, commands: Sequence[AnyCommand], *, timed: bool = True) -> list[AnyCommand]:
        """`timed`: the load's commands; the seed's and the closing cancels are counted,
        never timed. The gateway traders' orders go over HTTP (demo.gateway), the rest to
        the queue; the commands as sent (an order over HTTP has the gateway's id)."""
        over_http: list[AnyCommand] = []
        direct: list[AnyCommand] = []
        for c in commands:
            http = isinstance(c, PlaceOrder) and self.traders.trades(c.username)
            (over_http if http else direct).append(c)
        if over_http:
            began = time.monotonic()
            answers = await asyncio.gather(
                *(self.traders.place(c) for c in over_http if isinstance(c, PlaceOrder)),
                return_exceptions=True,
            )
            over_http = [a for a in answers if isinstance(a, PlaceOrder)]
            self.tally.sent(over_http, timed=timed, now=began)
            failed = [a for a in answers if isinstance(a, BaseException)]
            if failed and not self.stopping.is_set():  # a Ctrl-C may have stopped the gateway
                raise failed[0]
        await self._to_queue(direct, timed=timed)
        return [*over_http, *direct]

    async def _to_queue(self, commands: Sequence[AnyCommand], *, timed: bool) -> None:
        if not commands:
            return
        if self.commands is None:  # resolved once, not for every batch
            url = await self.clients.queue_url(self.settings.resources().commands_queue.name)
            fifo = self.settings.queue_kind is QueueKind.FIFO
            self.commands = Producer(self.clients.sqs, url, fifo=fifo)
        self.tally.sent(list(commands), timed=timed)
        await self.commands.send_batch(commands)

    def next_command(self, placed: dict[str, list[str]]) -> AnyCommand:
        user = self.random.choice(self.users)
        roll = self.random.random()
        if roll < 0.05:
            return self.fx.deposit(user, Decimal(self.random.randint(100, 2000)))
        if roll < 0.10:
            return self.fx.withdraw(user, Decimal(self.random.randint(10, 200)))
        if roll < 0.15:
            return self.fx.convert(user, Decimal(self.random.randint(50, 500)))
        if roll < 0.20 and placed[user]:
            return self.factory.cancel(user, self.random.choice(placed[user]))
        # A resting order holds the asset's quote currency: only in one the user holds.
        rests = roll >= 0.50
        asset = self.random.choice([a for a in ASSETS if not rests or self.fx.holds(user, a)])
        price = self.prices[asset]
        quantity = self._quantity(asset, Decimal(self.random.randint(20, 400)))
        side = self.random.choice(["buy", "buy", "sell"])
        # Market orders keep their 30 % of the mix; conversions came out of the others'.
        if not rests:
            buy = side == "buy"
            request = OrderCreate(
                order_type=OrderType.MARKET_BUY if buy else OrderType.MARKET_SELL,
                asset_id=asset,
                quantity=quantity,
                pay_currency=self.fx.pay_in(user, asset) if buy else None,
            )
        elif roll < 0.75:
            request = self._conditional(asset, price, quantity)
        else:
            move = Decimal(self.random.randint(-300, 100)) / 10000
            limit = (price * (1 + move if side == "buy" else 1 - move)).quantize(
                Decimal("0.00000001")
            )
            expires = None if self.random.random() < 0.8 else Decimal(self.random.randint(5, 30))
            request = OrderCreate(
                order_type=OrderType.LIMIT_BUY if side == "buy" else OrderType.LIMIT_SELL,
                asset_id=asset,
                quantity=quantity,
                limit_price=limit,
                expires_at=None if expires is None else _in_seconds(expires),
            )
        return self.factory.place_order(user, request)

    def _conditional(self, asset: str, price: Decimal, quantity: Decimal) -> OrderCreate:
        """A stop, take-profit or trailing stop of either side, its trigger 0.2 to 2 %
        from the price, so that the random walk fires some and leaves others waiting."""
        kind = self.random.choice(CONDITIONAL_TYPES)
        away = Decimal(self.random.randint(20, 200)) / 10000
        fields: dict[str, object] = {}
        if kind.is_trailing:
            fields["trail_percent"] = (away * 100).quantize(Decimal("0.01"))
        else:
            up = kind.triggers_on_rise
            fields["stop_price"] = (price * (1 + away if up else 1 - away)).quantize(
                Decimal("0.00000001")
            )
        return OrderCreate.model_validate(
            {"order_type": kind, "asset_id": asset, "quantity": quantity} | fields
        )

    def _quantity(self, asset: str, usd: Decimal) -> Decimal:
        return (usd / self.prices[asset]).quantize(Decimal("0.0001"))

    async def run_load(self) -> None:
        placed: dict[str, list[str]] = {u: [] for u in self.users}
        pace = self.plan.seconds / max(1, self.plan.orders)
        started = time.monotonic()
        sent = 0
        while sent < self.plan.orders and not self.stopping.is_set():
            due = min(self.plan.orders, int((time.monotonic() - started) / pace) + 1)
            batch = [self.next_command(placed) for _ in range(max(0, min(10, due - sent)))]
            # A resting order may be cancelled once it was sent (with its gateway id).
            for command in await self.send(batch):
                if isinstance(command, PlaceOrder) and command.payload.order_type.rests:
                    placed[command.username].append(command.payload.order_id)
            sent += len(batch)
            await asyncio.sleep(min(pace * 10, 0.5))

    async def run_feed(self) -> None:
        """Prices every second, rates every RATE_EVERY_SECONDS."""
        walk = random_walk(self.prices, step_fraction=Decimal("0.01"), seed=self.plan.seed)
        rates_sent = time.monotonic()
        while not self.stopping.is_set():
            self.prices = next(walk)
            await self.send_feed([self.factory.update_price(a, p) for a, p in self.prices.items()])
            if time.monotonic() - rates_sent >= RATE_EVERY_SECONDS:
                rates_sent = time.monotonic()
                await self.send_rates()
            await _sleep_or_stop(self.stopping, 1.0)

    async def send_rates(self) -> list[UpdateRate]:
        updates = self.fx.rate_updates()
        await self.send_feed(updates)
        return updates

    async def send_feed(self, updates: Sequence[AnyCommand]) -> None:
        """To the price-updates queue, which the limit matcher reads."""
        if self.feed is None:
            queue = self.settings.resources().price_updates_queue.name
            self.feed = Producer(self.clients.sqs, await self.clients.queue_url(queue), fifo=False)
        await self.feed.send_batch(updates)

    async def wait_for_rates(self, updates: Sequence[UpdateRate], limit: float = 30) -> None:
        """Until the matcher has stored these rates or newer ones: a deposit in EUR with
        no EUR rate is refused FX_RATE_MISSING, with one from a run long ago FX_RATE_STALE."""
        store = get_rate_store(self.clients, self.settings)
        deadline = time.monotonic() + limit
        while True:
            stored = await store.rates()
            if all(
                u.payload.currency in stored and stored[u.payload.currency].as_of >= u.issued_at
                for u in updates
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the limit matcher stored no new rates in {limit:.0f} s")
            await asyncio.sleep(0.2)

    async def close_book(self) -> None:
        """End of the trading day: cancel every limit order still QUEUED."""
        orders = get_order_dao(self.clients)
        cancels = []
        for order_id in sorted(self.tally.queued):
            order = await orders.get_order(order_id)
            cancels.append(self.factory.cancel(order.username, order_id))
        await self.send(cancels, timed=False)

    async def progress(self) -> None:
        while not self.stopping.is_set():
            tally = self.tally
            print(
                f"  sent {sum(tally.commands.values()):5d} commands | orders final "
                f"{len(tally.final_at):5d} open {tally.open_orders:4d} "
                f"queued {len(tally.queued):4d} "
                f"| rejected {sum(tally.rejected.values()):3d}",
                flush=True,
            )
            await _sleep_or_stop(self.stopping, 2.0)

    async def wait_until_final(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self.tally.open_orders > 0 and time.monotonic() < deadline:
            await _sleep_or_stop(self.stopping, 0.5)
            if self.stopping.is_set():
                break
        return self.tally.open_orders == 0


def _in_seconds(seconds: Decimal) -> datetime:
    return utc_now() + timedelta(seconds=float(seconds))


async def _sleep_or_stop(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
