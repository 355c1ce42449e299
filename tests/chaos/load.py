"""The load of a chaos run: a seeded plan of what traders do, and the sender that turns it
into commands on the queues while keeping a journal of exactly what was sent.

The plan is pure data drawn from one `random.Random(seed)`: the same seed gives the same
traders, listings, price path, rate path and commands (order ids included); only the
command ids and timestamps, minted when a command is sent, differ between runs.

Money comes in four currencies: traders start with USD and some EUR, GBP and JPY, deposit
and withdraw in each, and convert among them while the rates (against USD) walk. Two assets
are quoted in EUR and JPY (their orders hold and pay in it), and some market buys pay from
another currency than their asset's quote (`pay_currency`), some for more than it holds.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal
from functools import cached_property

from order_processor.domain.base import utc_now
from order_processor.domain.commands import AnyCommand, PlaceOrder
from order_processor.domain.currencies import minor_unit
from order_processor.domain.orders import OrderCreate, OrderType
from tests.e2e.harness import Harness

CENT = Decimal("0.01")
PRICE_STEP = Decimal("0.0001")
# (asset, price in its quote currency, precision, quote currency)
LISTINGS = (
    ("BTC", "50000", 8, "USD"),
    ("ETH", "3000", 6, "USD"),
    ("SOL", "150", 4, "USD"),
    ("DOGE", "0.25", 2, "USD"),
    ("ETHEUR", "2800", 6, "EUR"),
    ("SOLJPY", "22000", 4, "JPY"),
)
PRICE_TICK_SECONDS = 1.0
GAP_CHANCE = 0.04  # of a tick being a gap
DAILY_DEPOSIT_LIMIT = Decimal("10000.00")
DAILY_WITHDRAW_LIMIT = Decimal("5000.00")
# The currencies besides USD and their rates against it at the start (seeded as stored
# rates); then a walk of each, an UpdateRate every RATE_TICK_SECONDS.
STARTING_RATES = (("EUR", "1.0842"), ("GBP", "1.2710"), ("JPY", "0.0067"))
RATE_TICK_SECONDS = 2.0
RATE_STEP = Decimal("0.000001")
CASH = ("USD", *(c for c, _ in STARTING_RATES))
# A market buy paid in another currency than its asset's quote: how often, in what.
PAY_IN_SHARE = {"USD": 0.2, "EUR": 0.7, "JPY": 0.7}
PAY_IN = {"USD": ("EUR", "GBP", "JPY"), "EUR": ("USD", "GBP"), "JPY": ("USD", "EUR")}
OVER_THE_BALANCE = 0.25  # of those, sized 4,000 to 8,000 USD: mostly more than it holds


@dataclass(frozen=True)
class Listing:
    asset_id: str
    price: Decimal  # in its quote currency
    precision: int
    quote: str = "USD"


@dataclass(frozen=True)
class Trader:
    username: str
    usd: Decimal
    holdings: tuple[tuple[str, Decimal], ...]
    cash: tuple[tuple[str, Decimal], ...] = ()  # what they start with in other currencies


@dataclass(frozen=True)
class PlaceIntent:
    at: float
    username: str
    order_id: str
    order_type: OrderType
    asset_id: str
    quantity: Decimal
    limit_price: Decimal | None = None
    expires_in: float | None = None  # seconds after sending; None: the default 30 days
    stop_price: Decimal | None = None  # a stop's or a take-profit's trigger
    trail_amount: Decimal | None = None  # a trailing stop's trail: an amount ...
    trail_percent: Decimal | None = None  # ... or a percentage
    pay_currency: str | None = None  # a market buy paid from another currency's balance

    def request(self, quantity: Decimal | None = None) -> OrderCreate:
        expires = None
        if self.expires_in is not None:
            expires = utc_now() + timedelta(seconds=self.expires_in)
        return OrderCreate(
            order_type=self.order_type,
            asset_id=self.asset_id,
            quantity=quantity or self.quantity,
            limit_price=self.limit_price,
            stop_price=self.stop_price,
            trail_amount=self.trail_amount,
            trail_percent=self.trail_percent,
            expires_at=expires,
            pay_currency=self.pay_currency,
        )


@dataclass(frozen=True)
class CancelIntent:
    at: float
    username: str
    order_id: str


@dataclass(frozen=True)
class FundsIntent:
    at: float
    username: str
    key: str  # names the intent in the plan; the command id is minted when it is sent
    withdraw: bool
    amount: Decimal
    currency: str = "USD"


@dataclass(frozen=True)
class ConvertIntent:
    """Sell `amount` of `sell` for `buy` at the rate of the moment."""

    at: float
    username: str
    key: str
    sell: str
    buy: str
    amount: Decimal


@dataclass(frozen=True)
class PriceIntent:
    at: float
    asset_id: str
    price: Decimal


@dataclass(frozen=True)
class RateIntent:
    at: float
    currency: str
    rate: Decimal  # USD per unit


@dataclass(frozen=True)
class RepeatIntent:
    """The same command again. Exact: the same body under another FIFO deduplication id.
    Conflicting: the same order id with another quantity (must be rejected)."""

    at: float
    username: str
    key: str  # the order id, the funds or the conversion key repeated
    conflicting_quantity: Decimal | None = None


Intent = (
    PlaceIntent
    | CancelIntent
    | FundsIntent
    | ConvertIntent
    | PriceIntent
    | RateIntent
    | RepeatIntent
)


@dataclass(frozen=True)
class Plan:
    seed: int
    seconds: float
    listings: tuple[Listing, ...]
    traders: tuple[Trader, ...]
    intents: tuple[Intent, ...]  # in sending order
    rates: tuple[tuple[str, Decimal], ...] = ()  # each currency's starting rate

    def prices_of(self, asset_id: str) -> set[Decimal]:
        """Every price the asset can have had: its listing price and each update."""
        return self._prices.get(asset_id, set())

    def rates_of(self, currency: str) -> set[Decimal]:
        """Every rate the currency can have had (USD's is 1): its starting rate and each
        update."""
        return self._rates.get(currency, set())

    @cached_property
    def _prices(self) -> dict[str, set[Decimal]]:
        prices = {x.asset_id: {x.price} for x in self.listings}
        for move in (i for i in self.intents if isinstance(i, PriceIntent)):
            prices[move.asset_id].add(move.price)
        return prices

    @cached_property
    def _rates(self) -> dict[str, set[Decimal]]:
        rates = {c: {r} for c, r in self.rates} | {"USD": {Decimal(1)}}
        for move in (i for i in self.intents if isinstance(i, RateIntent)):
            rates[move.currency].add(move.rate)
        return rates


# --- the plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PricePath:
    """Each listing's random walk: one move per tick."""

    listings: dict[str, Listing]
    moves: dict[str, list[PriceIntent]]

    def price_at(self, asset_id: str, at: float) -> Decimal:
        price = self.listings[asset_id].price
        for move in self.moves[asset_id]:
            if move.at > at:
                break
            price = move.price
        return price


def make_plan(seed: int, users: int, commands: int, seconds: float) -> Plan:
    """`commands` orders, funds commands and conversions from `users` traders over
    `seconds`, plus the cancels, repeats, price moves and rate moves that follow."""
    rng = random.Random(seed)
    listings = tuple(
        Listing(a, _quantise(Decimal(p) * _factor(rng, 0.1), PRICE_STEP), k, q)
        for a, p, k, q in LISTINGS
    )
    rates = {c: _quantise(Decimal(r) * _factor(rng, 0.05), RATE_STEP) for c, r in STARTING_RATES}
    traders = tuple(_trader(rng, i, listings, rates) for i in range(users))
    path = _price_path(rng, listings, seconds)
    primary = [_primary(rng, n, seconds, traders, path, rates) for n in range(commands)]
    derived = [d for intent in primary for d in _derived(rng, intent)]
    moves = [move for moves in path.moves.values() for move in moves]
    rate_moves = _rate_path(rng, rates, seconds)
    intents = sorted([*primary, *derived, *moves, *rate_moves], key=lambda i: i.at)
    return Plan(seed, seconds, listings, traders, tuple(intents), tuple(rates.items()))


def _factor(rng: random.Random, spread: float) -> Decimal:
    return Decimal(str(round(1 + rng.uniform(-spread, spread), 4)))


def _quantise(value: Decimal, step: Decimal) -> Decimal:
    return value.quantize(step, rounding=ROUND_DOWN)


def _money(rng: random.Random, low: float, high: float) -> Decimal:
    return _quantise(Decimal(str(rng.uniform(low, high))), CENT)


def _in(usd: Decimal, currency: str, rates: dict[str, Decimal]) -> Decimal:
    """An amount worth about `usd` in `currency` at its starting rate: rounded down to
    its minor unit, at least one."""
    unit = minor_unit(currency)
    if currency == "USD":
        return max(_quantise(usd, unit), unit)
    return max(_quantise(usd / rates[currency], unit), unit)


def _trader(
    rng: random.Random, index: int, listings: tuple[Listing, ...], rates: dict[str, Decimal]
) -> Trader:
    holdings = tuple(
        (x.asset_id, _quantity(_in(_money(rng, 300, 2500), x.quote, rates), x))
        for x in listings
        if rng.random() < 0.8
    )
    cash = tuple((c, _in(_money(rng, 500, 3000), c, rates)) for c in rates if rng.random() < 0.6)
    return Trader(f"trader_{index:02d}", _money(rng, 2000, 8000), holdings, cash)


def _quantity(value: Decimal, listing: Listing, price: Decimal | None = None) -> Decimal:
    step = Decimal(1).scaleb(-listing.precision)
    return max(_quantise(value / (price or listing.price), step), step)


def _price_path(rng: random.Random, listings: tuple[Listing, ...], seconds: float) -> PricePath:
    """A random walk per asset, one move per tick over the whole load; now and then a gap
    of 6 to 10 % (a stop buy then pays more than it held, topping its hold up)."""
    moves: dict[str, list[PriceIntent]] = {}
    ticks = int(seconds / PRICE_TICK_SECONDS)
    for listing in listings:
        price, walk = listing.price, []
        for tick in range(1, ticks + 1):
            factor = _factor(rng, 0.025)
            if rng.random() < GAP_CHANCE:
                gap = Decimal(str(round(rng.uniform(0.06, 0.10), 4)))
                factor = 1 + gap if rng.random() < 0.5 else 1 - gap
            price = max(_quantise(price * factor, PRICE_STEP), PRICE_STEP)
            walk.append(PriceIntent(tick * PRICE_TICK_SECONDS, listing.asset_id, price))
        moves[listing.asset_id] = walk
    return PricePath({x.asset_id: x for x in listings}, moves)


def _rate_path(rng: random.Random, rates: dict[str, Decimal], seconds: float) -> list[RateIntent]:
    """A walk of each currency's rate, up to 0.4 % a tick: conversions meet many rates,
    each fresh (a rate is never older than a tick or two while the load runs)."""
    moves = []
    for currency, rate in rates.items():
        for tick in range(1, int(seconds / RATE_TICK_SECONDS) + 1):
            rate = max(_quantise(rate * _factor(rng, 0.004), RATE_STEP), RATE_STEP)
            moves.append(RateIntent(tick * RATE_TICK_SECONDS, currency, rate))
    return moves


def _primary(
    rng: random.Random,
    n: int,
    seconds: float,
    traders: tuple[Trader, ...],
    path: PricePath,
    rates: dict[str, Decimal],
) -> PlaceIntent | FundsIntent | ConvertIntent:
    """Deposits and withdrawals (12 % each, half of them in USD), conversions (10 %),
    orders."""
    at = rng.uniform(0, seconds * 0.9)
    trader = rng.choice(traders)
    username, key = trader.username, f"funds-{n:05d}"
    roll = rng.random()
    currency = "USD" if rng.random() < 0.5 else rng.choice(CASH[1:])
    if roll < 0.12:
        amount = _in(_deposit_amount(rng), currency, rates)
        return FundsIntent(at, username, key, False, amount, currency)
    if roll < 0.24:
        amount = _in(_withdraw_amount(rng), currency, rates)
        return FundsIntent(at, username, key, True, amount, currency)
    if roll < 0.34:
        return _conversion(rng, at, trader, f"convert-{n:05d}", rates)
    return _order(rng, n, at, username, path, rates)


def _conversion(
    rng: random.Random, at: float, trader: Trader, key: str, rates: dict[str, Decimal]
) -> ConvertIntent:
    """Mostly out of a currency the trader started with; now and then one minor unit
    (which may buy nothing: CONVERSION_TOO_SMALL) or more than they hold."""
    held = ["USD", *(c for c, _ in trader.cash)]
    sell = rng.choice(held) if rng.random() < 0.7 else rng.choice(CASH)
    buy = rng.choice([c for c in CASH if c != sell])
    roll = rng.random()
    if roll < 0.05:
        amount = minor_unit(sell)
    elif roll < 0.15:
        amount = _in(_money(rng, 4000, 9000), sell, rates)
    else:
        amount = _in(_money(rng, 20, 800), sell, rates)
    return ConvertIntent(at, trader.username, key, sell, buy, amount)


def _deposit_amount(rng: random.Random) -> Decimal:
    if rng.random() < 0.15:  # over the daily limit: LIMIT_EXCEEDED
        return _money(rng, float(DAILY_DEPOSIT_LIMIT) + 0.01, 12000)
    return _money(rng, 50, 2500)


def _withdraw_amount(rng: random.Random) -> Decimal:
    roll = rng.random()
    if roll < 0.2:  # over the daily limit
        return _money(rng, float(DAILY_WITHDRAW_LIMIT) + 0.01, 6000)
    if roll < 0.4:  # most likely over the balance
        return _money(rng, 3500, float(DAILY_WITHDRAW_LIMIT))
    return _money(rng, 20, 800)


CONDITIONAL_TYPES = tuple(k for k in OrderType if k.is_conditional)
ORDER_TYPES = (
    OrderType.MARKET_BUY,
    OrderType.MARKET_SELL,
    OrderType.LIMIT_BUY,
    OrderType.LIMIT_SELL,
    *CONDITIONAL_TYPES,
)
# A quarter of the orders are conditional, the six types alike.
CONDITIONAL_SHARE = 0.25
ORDER_WEIGHTS = (
    *(w * (1 - CONDITIONAL_SHARE) for w in (0.30, 0.20, 0.28, 0.22)),
    *(CONDITIONAL_SHARE / len(CONDITIONAL_TYPES) for _ in CONDITIONAL_TYPES),
)


def _order(
    rng: random.Random,
    n: int,
    at: float,
    username: str,
    path: PricePath,
    rates: dict[str, Decimal],
) -> PlaceIntent:
    kind = rng.choices(ORDER_TYPES, ORDER_WEIGHTS)[0]
    listing = path.listings[rng.choice(sorted(path.listings))]
    price = path.price_at(listing.asset_id, at)
    quantity = _quantity(_in(_money(rng, 20, 1200), listing.quote, rates), listing, price)
    order = PlaceIntent(at, username, f"order-{n:05d}", kind, listing.asset_id, quantity)
    if kind is OrderType.MARKET_BUY and rng.random() < PAY_IN_SHARE[listing.quote]:
        return _paid_in(rng, order, listing, price, rates)
    if not kind.rests:
        return order
    expires = rng.uniform(3, 12) if rng.random() < 0.25 else None
    order = replace(order, expires_in=expires)
    if kind.is_trailing:
        return _trailing(rng, order, price)
    # Around the current price: most wait, some are marketable (or triggered) at once.
    away = rng.uniform(-0.02, 0.05) if kind.is_limit else rng.uniform(-0.01, 0.05)
    below = kind.is_buy if kind.is_limit else not kind.triggers_on_rise
    at_price = price * Decimal(str(round(1 - away if below else 1 + away, 4)))
    at_price = max(_quantise(at_price, PRICE_STEP), PRICE_STEP)
    if kind.is_limit:
        return replace(order, limit_price=at_price)
    return replace(order, stop_price=at_price)


def _paid_in(
    rng: random.Random,
    order: PlaceIntent,
    listing: Listing,
    price: Decimal,
    rates: dict[str, Decimal],
) -> PlaceIntent:
    """A market buy paid from another currency's balance; now and then one worth 4,000 to
    8,000 USD (under the value limit whatever the walks do), more than most traders hold
    in it: FAILED INSUFFICIENT_BALANCE, nothing moved."""
    pay = rng.choice(PAY_IN[listing.quote])
    if rng.random() < OVER_THE_BALANCE:
        value = _in(_money(rng, 4000, 8000), listing.quote, rates)
        order = replace(order, quantity=_quantity(value, listing, price))
    return replace(order, pay_currency=pay)


def _trailing(rng: random.Random, order: PlaceIntent, price: Decimal) -> PlaceIntent:
    """A trail of 0.5 to 4 % of the current price, as a percentage or as an amount: the
    walk (up to 2.5 % a tick) both fires and outruns such trails."""
    percent = Decimal(str(round(rng.uniform(0.5, 4.0), 2)))
    if rng.random() < 0.5:
        return replace(order, trail_percent=percent)
    amount = max(_quantise(price * percent / 100, PRICE_STEP), PRICE_STEP)
    return replace(order, trail_amount=amount)


def _derived(rng: random.Random, intent: PlaceIntent | FundsIntent | ConvertIntent) -> list[Intent]:
    """Cancels of some resting (limit and conditional) orders; exact and conflicting
    repeats of some commands."""
    if isinstance(intent, FundsIntent | ConvertIntent):
        return [_copy(rng, intent, intent.key)] if rng.random() < 0.1 else []
    derived: list[Intent] = []
    if intent.order_type.rests and rng.random() < 0.4:
        late = intent.at + rng.uniform(0.5, 6)
        derived.append(CancelIntent(late, intent.username, intent.order_id))
    if rng.random() < 0.1:
        derived.append(_copy(rng, intent, intent.order_id))
    if rng.random() < 0.06:
        derived.append(_copy(rng, intent, intent.order_id, intent.quantity * 2))
    return derived


def _copy(
    rng: random.Random,
    intent: PlaceIntent | FundsIntent | ConvertIntent,
    key: str,
    conflicting_quantity: Decimal | None = None,
) -> RepeatIntent:
    return RepeatIntent(intent.at + rng.uniform(0.2, 4), intent.username, key, conflicting_quantity)


# --- sending ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """One message put on a queue: `repeat` says whether it re-sends an earlier command
    ("exact") or reuses an order id with another request ("conflicting")."""

    at: float
    command: AnyCommand
    intent: Intent
    repeat: str | None = None

    @property
    def command_id(self) -> str:
        return self.command.command_id


@dataclass
class Journal:
    """What was sent, in order: the checks compare the books against it."""

    sent: list[Sent] = field(default_factory=list)
    by_key: dict[str, Sent] = field(default_factory=dict)  # first sending of each intent

    def record(self, sent: Sent) -> None:
        self.sent.append(sent)
        key = _key_of(sent.intent)
        if key is not None and sent.repeat is None:
            self.by_key[key] = sent

    def places(self) -> list[tuple[Sent, PlaceIntent]]:
        return [(s, s.intent) for s in self._first() if isinstance(s.intent, PlaceIntent)]

    def cancels(self) -> list[tuple[Sent, CancelIntent]]:
        return [(s, s.intent) for s in self._first() if isinstance(s.intent, CancelIntent)]

    def funds(self) -> list[tuple[Sent, FundsIntent]]:
        return [(s, s.intent) for s in self._first() if isinstance(s.intent, FundsIntent)]

    def conversions(self) -> list[tuple[Sent, ConvertIntent]]:
        return [(s, s.intent) for s in self._first() if isinstance(s.intent, ConvertIntent)]

    def _first(self) -> list[Sent]:
        return [s for s in self.sent if s.repeat is None]

    def repeats(self, repeat: str) -> list[Sent]:
        return [s for s in self.sent if s.repeat == repeat]


def _key_of(intent: Intent) -> str | None:
    if isinstance(intent, PlaceIntent):
        return intent.order_id
    if isinstance(intent, FundsIntent | ConvertIntent):
        return intent.key
    return None


@dataclass
class LoadSender:
    harness: Harness
    journal: Journal
    started: float = field(default_factory=time.monotonic)
    copies: int = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    async def run(self, plan: Plan) -> None:
        """Send each intent at its time (pacing the load, not waiting for an outcome)."""
        for intent in plan.intents:
            delay = intent.at - self.elapsed()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.send(intent)

    async def send(self, intent: Intent) -> None:
        if isinstance(intent, PriceIntent):
            (update,) = await self.harness.send_prices((intent.asset_id, format(intent.price, "f")))
            self.journal.record(Sent(self.elapsed(), update, intent))
        elif isinstance(intent, RateIntent):
            (moved,) = await self.harness.send_rates((intent.currency, format(intent.rate, "f")))
            self.journal.record(Sent(self.elapsed(), moved, intent))
        elif isinstance(intent, RepeatIntent):
            await self._repeat(intent)
        else:
            command = self._command(intent)
            await self.harness.send(command)
            self.journal.record(Sent(self.elapsed(), command, intent))

    def _command(
        self, intent: PlaceIntent | CancelIntent | FundsIntent | ConvertIntent
    ) -> AnyCommand:
        factory = self.harness.factory
        if isinstance(intent, PlaceIntent):
            return factory.place_order(intent.username, intent.request(), order_id=intent.order_id)
        if isinstance(intent, CancelIntent):
            return factory.cancel(intent.username, intent.order_id)
        if isinstance(intent, ConvertIntent):
            return factory.convert(intent.username, intent.amount, intent.sell, intent.buy)
        if intent.withdraw:
            return factory.withdraw(intent.username, intent.amount, currency=intent.currency)
        return factory.deposit(intent.username, intent.amount, currency=intent.currency)

    async def _repeat(self, intent: RepeatIntent) -> None:
        original = self.journal.by_key[intent.key]
        if intent.conflicting_quantity is None:
            self.copies += 1
            dedup = f"{original.command_id}.copy{self.copies}"
            await self.harness.send_raw(original.command.body(), group=intent.username, dedup=dedup)
            self.journal.record(Sent(self.elapsed(), original.command, intent, "exact"))
            return
        assert isinstance(original.command, PlaceOrder)
        assert isinstance(original.intent, PlaceIntent)
        request = original.intent.request(quantity=intent.conflicting_quantity)
        command = self.harness.factory.place_order(
            intent.username, request, order_id=original.intent.order_id
        )
        await self.harness.send(command)
        self.journal.record(Sent(self.elapsed(), command, intent, "conflicting"))
