"""Price updates that tried to move a price back or leave a trailing stop behind, over the
emulator (issue 20's two attacker rounds; each test failed before its fix).

The matcher is the real one (admission, then `PriceMatcher.apply` on the real AssetDAO and,
where trailing stops rest, the real OrderDAO); the commands queue and the events are faked."""

from __future__ import annotations

import dataclasses
import io
import json
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest

from order_processor.bootstrap import AwsClients, get_asset_dao, get_order_dao
from order_processor.domain.assets import AssetCreate
from order_processor.domain.commands import PricePayload, UpdatePrice, command_digest
from order_processor.domain.orders import Order, OrderCreate, OrderStatus, OrderType
from order_processor.domain.triggers import trail_stop
from order_processor.exceptions import ServiceUnavailableException
from order_processor.handlers.admission import Admission
from order_processor.handlers.prices import PriceMatcher
from order_processor.messaging.consumer import Message, Outcome
from order_processor.messaging.producer import Producer
from order_processor.messaging.publisher import EventPublisher
from order_processor.security.audit import AuditLogger
from order_processor.security.tokens import TokenManager
from order_processor.store.orders import OrderDAO

SECRET = "attack20-prices-" + "p" * 32
# Each test's time: a whole second after its assets are listed (their price is observed
# when listed), set when the test starts.
_START: list[datetime] = []


@pytest.fixture(autouse=True)
def _starting_now() -> None:
    _START[:] = [datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)]


class NoOrders:
    async def move_trails(
        self, asset_id: str, price: Decimal, observed_at: object = None
    ) -> list[Order]:
        return []

    async def trails_at(self, asset_id: str, price: Decimal) -> list[Order]:
        return []

    async def triggered_orders(self, asset_id: str, price: Decimal) -> list[Order]:
        return []


class NoEvents:
    async def publish(self, events: Any) -> None:
        return None


class NoSqs:
    async def send_message_batch(self, QueueUrl: str, Entries: list[Any]) -> Any:
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}


def at(seconds: float) -> datetime:
    return _START[0] + timedelta(seconds=seconds)


def matcher(aws: AwsClients, moment: datetime, orders: Any = None) -> PriceMatcher:
    """The real matcher at `moment`; its order book `orders` (none: an empty one)."""
    tokens = TokenManager(SECRET, clock=lambda: moment)
    return PriceMatcher(
        assets=dataclasses.replace(get_asset_dao(aws), clock=lambda: moment),
        orders=orders if orders is not None else cast(Any, NoOrders()),
        commands=Producer(cast(Any, NoSqs()), "url", fifo=False),
        admission=Admission(tokens, clock=lambda: moment),
        publisher=cast(EventPublisher, NoEvents()),
        audit=AuditLogger(stream=io.StringIO()),
    )


def feed_update(
    symbol: str, command_id: str, issued: datetime, price: str, minted: datetime | None = None
) -> str:
    """An UpdatePrice observed at `issued`, signed (bound) at `minted` (default: then)."""
    update = UpdatePrice(
        command_id=command_id,
        username="price_feed",
        issued_at=issued,
        auth="unsigned",
        payload=PricePayload(asset_id=symbol, price=Decimal(price)),
    )
    token = TokenManager(SECRET, clock=lambda: minted or issued).create_access_token(
        "price-feed", role="service", command=command_digest(update)
    )
    return update.model_copy(update={"auth": token}).body()


async def deliver(
    aws: AwsClients, moment: datetime, body: str, orders: Any = None, message_id: str = ""
) -> Outcome:
    message = Message(message_id or uuid.uuid4().hex, "receipt", body, 1)
    outcomes = await matcher(aws, moment, orders).handle_group(message.message_id, [message])
    return outcomes[message.message_id]


async def new_asset(aws: AwsClients, price: str = "90") -> str:
    symbol = "Q" + uuid.uuid4().hex[:8].upper()
    await get_asset_dao(aws).create_asset(AssetCreate(asset_id=symbol, name="Attack", price=price))
    return symbol


async def test_a_late_signed_older_observation_never_overwrites_a_newer_one(
    aws: AwsClients,
) -> None:
    """Finding 2 end to end: the older observation (0.9 s, 100) signed late (2.1 s) is
    clamped to 2 s and overwrites the newer one (1.5 s, 110) delivered before it."""
    symbol = await new_asset(aws)
    older = feed_update(symbol, "p-a-" + symbol, at(0.9), "100", minted=at(2.1))
    newer = feed_update(symbol, "p-b-" + symbol, at(1.5), "110", minted=at(1.6))

    await deliver(aws, at(3), newer)
    await deliver(aws, at(3), older)

    assert (await get_asset_dao(aws).get_asset(symbol)).price == Decimal("110")


async def test_the_newer_of_two_updates_of_one_second_is_applied(aws: AwsClients) -> None:
    """Finding 2: observed at .2 s (100) and .7 s (110), signed during second 1. Both are
    clamped to 1.000000 s; the newer is then 'another update of the same instant' and
    ignored, and the price stays at the older observation."""
    symbol = await new_asset(aws)
    first = feed_update(symbol, "p-1-" + symbol, at(0.2), "100", minted=at(1.1))
    second = feed_update(symbol, "p-2-" + symbol, at(0.7), "110", minted=at(1.2))

    await deliver(aws, at(3), first)
    await deliver(aws, at(3), second)

    assert (await get_asset_dao(aws).get_asset(symbol)).price == Decimal("110")


async def test_a_copy_of_the_last_feed_update_does_not_undo_a_later_manual_price(
    aws: AwsClients,
) -> None:
    """Finding 4: `order-processor price` writes the price at once through
    `AssetDAO.update_price` without `as_of`, leaving price_as_of/price_command_id naming
    the feed's last update. A copy of that update (an SQS redelivery, or one lifted off
    the queue within its five minutes) is then 'the same command at the same instant',
    counts as current and puts the feed's price back."""
    symbol = await new_asset(aws)
    glitch = feed_update(symbol, "p-g-" + symbol, at(1), "5", minted=at(1))
    await deliver(aws, at(2), glitch)
    by_hand = dataclasses.replace(get_asset_dao(aws), clock=lambda: at(20))
    await by_hand.update_price(symbol, "100")  # a price set by hand, after the glitch

    await deliver(aws, at(30), glitch)  # the copy

    assert (await get_asset_dao(aws).get_asset(symbol)).price == Decimal("100")


async def test_an_update_older_than_the_asset_never_replaces_its_initial_price(
    aws: AwsClients,
) -> None:
    """Finding 4: an asset is created with no price_as_of, so any update still in its
    token's lifetime (one refused UNKNOWN_ASSET before the asset existed, sent again)
    is 'newer' than the price the asset was created with."""
    early = datetime.now(UTC) - timedelta(minutes=4)
    symbol = "Q" + uuid.uuid4().hex[:8].upper()
    stale = feed_update(symbol, "p-s-" + symbol, early, "1", minted=early)
    now = datetime.now(UTC)
    await deliver(aws, now, stale)  # UNKNOWN_ASSET: no such asset yet
    await get_asset_dao(aws).create_asset(
        AssetCreate(asset_id=symbol, name="Listed now", price="100")
    )

    await deliver(aws, now, stale)  # the same body again

    assert (await get_asset_dao(aws).get_asset(symbol)).price == Decimal("100")


async def test_a_redelivered_update_without_issued_at_does_not_undo_a_newer_one(
    aws: AwsClients,
) -> None:
    """Finding 3 end to end: an admin's UpdatePrice without issued_at (admitted, dated
    now) then a newer feed update; the admin message's redelivery is dated at its new
    delivery and puts the older price back."""
    symbol = await new_asset(aws)
    now = datetime.now(UTC)
    admin = TokenManager(SECRET, clock=lambda: now).create_access_token("ops_admin", role="admin")
    manual = json.dumps(
        {
            "command_id": f"m-{symbol}",
            "type": "UpdatePrice",
            "username": "price_feed",
            "auth": admin,
            "payload": {"asset_id": symbol, "price": "50"},
        }
    )
    await deliver(aws, now, manual)
    feed = feed_update(symbol, "p-f-" + symbol, datetime.now(UTC), "60", minted=now)
    await deliver(aws, now, feed)

    await deliver(aws, now, manual)  # SQS redelivers the admin's message

    assert (await get_asset_dao(aws).get_asset(symbol)).price == Decimal("60")


@dataclass
class ThrottledOnce:
    """The real OrderDAO whose first trail move meets a transient AWS failure (a
    throttled query, a 5xx): what the matcher answers with Retry."""

    orders: OrderDAO
    failed: bool = False

    async def move_trails(
        self, asset_id: str, price: Decimal, observed_at: object = None
    ) -> list[Order]:
        if not self.failed:
            self.failed = True
            raise ServiceUnavailableException("DynamoDB throttled the TrailingStops query")
        return await self.orders.move_trails(asset_id, price)

    async def triggered_orders(self, asset_id: str, price: Decimal) -> list[Order]:
        return await self.orders.triggered_orders(asset_id, price)

    async def trails_at(self, asset_id: str, price: Decimal) -> list[Order]:
        return await self.orders.trails_at(asset_id, price)


async def trailing_sell(aws: AwsClients, symbol: str, best: str, trail: str) -> Order:
    """A QUEUED trailing stop sell placed at `best` (as the worker leaves it)."""
    kind = OrderType.TRAILING_STOP_SELL
    request = OrderCreate.model_validate(
        {"order_type": kind, "asset_id": symbol, "quantity": "1", "trail_amount": trail}
    )
    order = Order.place(f"user_{uuid.uuid4().hex[:12]}", request).evolve(
        best_price=Decimal(best),
        stop_price=trail_stop(kind, Decimal(best), Decimal(trail), None),
        status=OrderStatus.QUEUED,
        step="held",
        sequence=2,
        expires_at=datetime.now(UTC) + timedelta(days=30),
    )
    return await get_order_dao(aws).create_order(order)


# Finding A: an update whose price was written, but whose trail moves failed transiently,
# never moves them once a newer update lands before its redelivery.


async def test_a_redelivered_update_whose_price_was_written_still_moves_the_trails(
    aws: AwsClients,
) -> None:
    """`move_trails`: "all are tried before the first error is raised (a redelivered
    update redoes the rest)"; README: a trailing sell falls "by the trail from the highest
    price since placement". U1 (130, the peak) is written as the inventory price (market
    orders fill at it), then its trail query is throttled: Retry. The feed's next tick U2
    (125) lands before U1's redelivery (standard queue, visibility timeout), so the
    redelivery is 'stale' and returns before moving any trail. The trailing sell keeps
    best 125 / stop 115 instead of 130 / 120: it sells up to 5 lower than promised."""
    symbol = await new_asset(aws, "100")
    order = await trailing_sell(aws, symbol, best="100", trail="10")
    t0 = datetime.now(UTC) + timedelta(seconds=1)
    peak = feed_update(symbol, "peak-" + symbol, t0, "130")
    after = feed_update(symbol, "after-" + symbol, t0 + timedelta(seconds=1), "125")
    flaky = ThrottledOnce(get_order_dao(aws))

    first = await deliver(aws, t0, peak, orders=flaky, message_id="m-peak")
    assert type(first).__name__ == "Retry"  # trails first: neither they nor the price moved
    assert (await get_asset_dao(aws).get_asset(symbol)).price == Decimal("100")
    await deliver(aws, t0 + timedelta(seconds=1), after, orders=get_order_dao(aws))
    await deliver(aws, t0 + timedelta(seconds=31), peak, orders=flaky, message_id="m-peak")

    stored = await get_order_dao(aws).get_order(order.order_id)
    assert (stored.best_price, stored.stop_price) == (Decimal("130"), Decimal("120"))


async def test_a_price_set_by_hand_moves_the_trails_even_if_a_feed_tick_is_matched_first(
    aws: AwsClients,
) -> None:
    """README: `order-processor price` "writes it at once, as the update it also sends"
    ("the matcher's copy is then the same observation (its trails and matches)"). The
    copy goes through the price-updates queue (standard, unordered; a backlog of feed
    ticks ahead of it): a feed tick observed after the hand-set price is matched first,
    the copy is then stale and returns before `move_trails`. The hand-set 130 was the
    inventory price, but no trailing stop ever saw it."""
    symbol = await new_asset(aws, "100")
    order = await trailing_sell(aws, symbol, best="100", trail="10")
    t0 = datetime.now(UTC) + timedelta(seconds=1)
    by_hand = feed_update(symbol, "hand-" + symbol, t0, "130")  # cmd_price's UpdatePrice
    await get_asset_dao(aws).update_price(  # cmd_price writes it at once, as that update
        symbol, "130", as_of=t0, command_id="hand-" + symbol
    )
    tick = feed_update(symbol, "tick-" + symbol, t0 + timedelta(milliseconds=500), "126")

    book = get_order_dao(aws)
    await deliver(aws, t0 + timedelta(seconds=1), tick, orders=book)
    await deliver(aws, t0 + timedelta(seconds=1), by_hand, orders=book)

    stored = await get_order_dao(aws).get_order(order.order_id)
    assert (stored.best_price, stored.stop_price) == (Decimal("130"), Decimal("120"))


# Finding B: a price written by hand, or at listing, is dated by the operator's clock with
# no skew bound: the feed is held back as long as that clock runs ahead.


async def test_a_price_set_by_hand_holds_back_the_feed_for_at_most_the_skew(
    aws: AwsClients,
) -> None:
    """README: an update dated ahead "holds back the feed's updates dated before it for
    at most the skew (30 s)". `order-processor price` writes at once with `as_of` = its
    own command's `issued_at`, the operator's clock, bounded by nothing (the matcher
    refuses its copy FUTURE_TIMESTAMP, but the write is done). An operator whose laptop
    runs 10 minutes ahead freezes the price for 10 minutes: every feed tick is stale."""
    symbol = await new_asset(aws, "100")
    worker_now = datetime.now(UTC) + timedelta(seconds=1)
    laptop = worker_now + timedelta(minutes=10)
    await get_asset_dao(aws).update_price(symbol, "150", as_of=laptop, command_id="hand-1")
    copy = feed_update(symbol, "hand-1", laptop, "150")
    await deliver(aws, worker_now, copy)  # refused (dated ahead); the price stays

    later = worker_now + timedelta(minutes=1)  # twice the skew later, the feed ticks
    await deliver(aws, later, feed_update(symbol, "tick-" + symbol, later, "101"))

    assert (await get_asset_dao(aws).get_asset(symbol)).price == Decimal("101")


async def test_an_asset_listed_from_a_clock_ahead_takes_the_feed_within_the_skew(
    aws: AwsClients,
) -> None:
    """README: an asset is listed "with its price observed at listing"; `assets add`
    dates it by the CLI machine's clock, unbounded. Listed from a clock five minutes
    ahead, the asset ignores every feed update for five minutes."""
    worker_now = datetime.now(UTC) + timedelta(seconds=1)
    laptop = replace(get_asset_dao(aws), clock=lambda: worker_now + timedelta(minutes=5))
    symbol = "L" + uuid.uuid4().hex[:8].upper()
    await laptop.create_asset(AssetCreate(asset_id=symbol, name="Listed", price="100"))

    later = worker_now + timedelta(minutes=1)
    await deliver(aws, later, feed_update(symbol, "tick-" + symbol, later, "97"))

    assert (await get_asset_dao(aws).get_asset(symbol)).price == Decimal("97")
