"""Price updates that tried to move a price back or leave a trailing stop behind, over the
emulator (issue 20's two attacker rounds; each test failed before its fix).

The matcher is the real one (admission, then `PriceMatcher.apply` on the real AssetDAO and,
where trailing stops rest, the real OrderDAO); the commands queue and the events are faked."""

from __future__ import annotations

import dataclasses
import io
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest

from order_processor.bootstrap import (
    AwsClients,
    get_asset_dao,
    get_asset_transaction_dao,
    get_order_dao,
    get_user_dao,
    open_clients,
)
from order_processor.config import Settings
from order_processor.domain.assets import AssetCreate, AssetTransactionCreate, AssetTransactionType
from order_processor.domain.commands import (
    PlaceOrder,
    PlaceOrderPayload,
    PricePayload,
    UpdatePrice,
    command_digest,
)
from order_processor.domain.orders import Order, OrderCreate, OrderStatus, OrderType
from order_processor.domain.triggers import PriceMove, trail_stop
from order_processor.domain.users import UserCreate
from order_processor.exceptions import ServiceUnavailableException, StalePriceException
from order_processor.faultproxy import FaultPlan, fault_proxy
from order_processor.handlers.admission import Admission
from order_processor.handlers.prices import PriceMatcher
from order_processor.messaging.consumer import Message, Outcome
from order_processor.messaging.producer import Producer
from order_processor.messaging.publisher import EventPublisher
from order_processor.saga.engine import Saga
from order_processor.security.audit import AuditLogger
from order_processor.security.tokens import TokenManager
from order_processor.store.ledger import DynamoLedger
from order_processor.store.orders import OrderDAO
from order_processor.store.rates import ExchangeRateStore
from tests.unit.fakes import MemoryEvents
from tests.unit.test_saga import LIMITS

SECRET = "attack20-prices-" + "p" * 32
# Each test's time: a whole second after its assets are listed (their price is observed
# when listed), set when the test starts.
_START: list[datetime] = []


@pytest.fixture(autouse=True)
def _starting_now() -> None:
    _START[:] = [datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)]


class NoEvents:
    async def publish(self, events: Any) -> None:
        return None


class NoSqs:
    async def send_message_batch(self, QueueUrl: str, Entries: list[Any]) -> Any:
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}


def at(seconds: float) -> datetime:
    return _START[0] + timedelta(seconds=seconds)


def matcher(aws: AwsClients, moment: datetime, orders: Any = None, sqs: Any = None) -> PriceMatcher:
    """The real matcher at `moment` over the real book (or `orders`); the ExecuteOrders it
    sends go to `sqs` (none: nowhere)."""
    tokens = TokenManager(SECRET, clock=lambda: moment)
    return PriceMatcher(
        assets=dataclasses.replace(get_asset_dao(aws), clock=lambda: moment),
        orders=orders if orders is not None else get_order_dao(aws),
        commands=Producer(cast(Any, sqs or NoSqs()), "url", fifo=False),
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
    aws: AwsClients,
    moment: datetime,
    body: str,
    orders: Any = None,
    message_id: str = "",
    sqs: Any = None,
) -> Outcome:
    message = Message(message_id or uuid.uuid4().hex, "receipt", body, 1)
    outcomes = await matcher(aws, moment, orders, sqs).handle_group(message.message_id, [message])
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
    """The real OrderDAO whose first query meets a transient AWS failure (a throttled
    query, a 5xx): what the matcher answers with Retry."""

    orders: OrderDAO
    failed: bool = False

    async def reached(self, asset_id: str, price: Decimal, move: PriceMove) -> list[Order]:
        if not self.failed:
            self.failed = True
            raise ServiceUnavailableException("DynamoDB throttled the RiseTriggers query")
        return await self.orders.reached(asset_id, price, move)

    async def move_trail(self, order: Order, best: Decimal, stop: Decimal) -> Order:
        return await self.orders.move_trail(order, best, stop)


async def trailing_sell(
    aws: AwsClients, symbol: str, *, best: str, trail: str, placed_at: datetime | None = None
) -> Order:
    """A QUEUED trailing stop sell as the order worker leaves it: placed at `placed_at` by
    the worker's clock, its best price the inventory price it read then."""
    kind = OrderType.TRAILING_STOP_SELL
    request = OrderCreate.model_validate(
        {"order_type": kind, "asset_id": symbol, "quantity": "1", "trail_amount": trail}
    )
    read = await get_asset_dao(aws).get_asset(symbol)  # the snapshot the worker reads
    order = Order.place(f"user_{uuid.uuid4().hex[:12]}", request).evolve(
        best_price=Decimal(best),
        stop_price=trail_stop(kind, Decimal(best), Decimal(trail), None),
        trail_since=read.price_as_of,
        status=OrderStatus.QUEUED,
        step="held",
        sequence=2,
        created_at=placed_at or datetime.now(UTC),
        updated_at=placed_at or datetime.now(UTC),
        expires_at=(placed_at or datetime.now(UTC)) + timedelta(days=30),
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
    assert type(first).__name__ == "Retry"  # the price written, the book's query throttled
    assert (await get_asset_dao(aws).get_asset(symbol)).price == Decimal("130")
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


# The third attacker's round.


@dataclass
class RecordingSqs:
    """The commands queue: what the matcher sent (the ExecuteOrders' order ids)."""

    executed: list[str] = field(default_factory=list)

    async def send_message_batch(self, QueueUrl: str, Entries: list[Any]) -> Any:
        for entry in Entries:
            self.executed.append(json.loads(entry["MessageBody"])["payload"]["order_id"])
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}


async def listed(aws: AwsClients, at: datetime, price: str = "100") -> str:
    """An asset listed at `at` (its price observed then)."""
    symbol = "T" + uuid.uuid4().hex[:8].upper()
    dao = replace(get_asset_dao(aws), clock=lambda: at)
    await dao.create_asset(AssetCreate(asset_id=symbol, name="Attack", price=price))
    return symbol


def start() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)


# Finding 1: `move_trails` compares the feed's observation time with the order's
# `created_at` (the worker's clock), but the order's best price is the inventory price it
# read at placement, an observation of its own, older. Whatever was observed between that
# observation and `created_at` (in the queue, or dated by a feed clock behind the worker's)
# becomes the inventory price after placement and never moves the trail.


async def test_an_update_in_the_queue_when_a_trailing_stop_is_placed_moves_it_when_applied(
    aws: AwsClients,
) -> None:
    """README: a trailing sell "falls by the trail from the highest price since
    placement"; "every price observed after a stop was placed is a candidate peak of it".
    Clocks all agree. The feed observes 120 at t1; while that update waits in the
    price-updates queue (a backlog of a second), the order is placed at t2 from the
    inventory's 100 (best 100, stop 90). The matcher then applies 120: it becomes the
    inventory price, the first price after placement, but it is dated before `created_at`
    and `move_trails` skips the order. Nothing moves it later: the price falls to 108, below
    the stop of 110 a trail from 120 promises, and the order is never triggered (stop 90)."""
    t0 = start()
    symbol = await listed(aws, t0)  # 100, observed at t0
    t1, t2 = t0 + timedelta(seconds=1), t0 + timedelta(seconds=2)
    rise = feed_update(symbol, "rise-" + symbol, t1, "120")  # in the queue
    order = await trailing_sell(aws, symbol, placed_at=t2, best="100", trail="10")

    await deliver(aws, t2 + timedelta(seconds=1), rise)
    assert (await get_asset_dao(aws).get_asset(symbol)).price == Decimal("120")  # after placement
    sqs = RecordingSqs()
    t3 = t2 + timedelta(seconds=2)
    await deliver(aws, t3, feed_update(symbol, "fall-" + symbol, t3, "108"), sqs=sqs)

    stored = await get_order_dao(aws).get_order(order.order_id)
    assert (stored.best_price, stored.stop_price, sqs.executed) == (
        Decimal("120"),
        Decimal("110"),
        [order.order_id],
    )


async def test_a_price_observed_before_placement_never_moves_a_trailing_stop(
    aws: AwsClients,
) -> None:
    """README: "a price seen before an order was placed is no peak of it" (move_trails).
    The other side of the same comparison: the feed's clock runs 20 s ahead of the
    workers' (within the 30 s skew, admitted). The feed observes 130, then 100; 100 is
    applied (the inventory price), 130's update is late (a redelivery). A trailing sell is
    placed at 100 after both observations. The late 130 is stale for the price but dated
    after the worker's `created_at`: the trail moves to 130, stop 120, above the market
    price of 100 the order was placed at and that has not moved since. The next rematch
    sells it for a fall that happened before the customer placed it."""
    t0 = start()
    symbol = await listed(aws, t0)
    ahead = timedelta(seconds=20)  # the feed's clock
    peak = feed_update(symbol, "peak-" + symbol, t0 + timedelta(seconds=1) + ahead, "130")
    now_100 = feed_update(symbol, "back-" + symbol, t0 + timedelta(seconds=2) + ahead, "100")
    await deliver(aws, t0 + timedelta(seconds=2), now_100)
    order = await trailing_sell(
        aws, symbol, placed_at=t0 + timedelta(seconds=5), best="100", trail="10"
    )

    await deliver(aws, t0 + timedelta(seconds=6), peak)  # the late copy of the peak

    stored = await get_order_dao(aws).get_order(order.order_id)
    assert (await get_asset_dao(aws).get_asset(symbol)).price == Decimal("100")
    assert (stored.best_price, stored.stop_price) == (Decimal("100"), Decimal("90"))


async def test_a_trailing_stop_the_index_hid_at_an_update_still_follows_that_price(
    deployment: Settings,
) -> None:
    """README ("AWS as it fails", lag): "what it hid, the matcher's rematch and the next
    sweep catch". A trailing sell is placed at 100 a moment before the feed's 120 (observed
    after placement) is matched; the TrailingStops index does not show it yet (DynamoDB's
    eventually consistent GSI; the fault proxy's lagging copy). 120 becomes the inventory
    price, the trail stays at 100 / stop 90, and nothing ever moves it: the rematch
    re-sends executions, it never moves trails, and the next update only moves it to that
    price. At 108 the order should be triggered (stop 110) and is not."""
    assert deployment.endpoint_url is not None
    plan = FaultPlan.parse("lag-ms=600000,lag-min-ms=600000")
    with fault_proxy(deployment.endpoint_url, plan) as proxy:
        proxied = deployment.model_copy(update={"endpoint_url": proxy.endpoint})
        async with open_clients(proxied) as aws:
            await aws.dynamodb.query(  # the first index read makes the lagging copy
                TableName=aws.resources.orders_table,
                IndexName="TrailingStops",
                KeyConditionExpression="trail_key = :key",
                ExpressionAttributeValues={":key": {"S": "NONE#SELL"}},
            )
            t0 = start()
            symbol = await listed(aws, t0)
            order = await trailing_sell(
                aws, symbol, placed_at=t0 + timedelta(seconds=1), best="100", trail="10"
            )
            t1 = t0 + timedelta(seconds=2)
            await deliver(aws, t1, feed_update(symbol, "rise-" + symbol, t1, "120"))
            proxy.catch_up_indexes()  # the index shows the order now
            await matcher(aws, t1 + timedelta(seconds=60)).rematch(t1 + timedelta(seconds=60))
            proxy.catch_up_indexes()  # and its new stop, in the stops index
            sqs = RecordingSqs()
            t2 = t1 + timedelta(seconds=61)
            await deliver(aws, t2, feed_update(symbol, "fall-" + symbol, t2, "108"), sqs=sqs)
            stored = await get_order_dao(aws).get_order(order.order_id)
        lagged = proxy.stats().injected("lagged-read")

    assert lagged > 0
    assert (stored.best_price, stored.stop_price, sqs.executed) == (
        Decimal("120"),
        Decimal("110"),
        [order.order_id],
    )


# Finding 2: a late peak moves a trailing stop past the current price, and the matcher
# sends nothing for it (the stale update returns before the matching).


async def test_a_late_peak_that_moves_a_stop_past_the_current_price_sends_its_execution(
    aws: AwsClients,
) -> None:
    """README: every price observed after placement "is a candidate peak of it, even one
    that arrives after a newer price"; the matcher then "queries the index ... for the
    orders the price triggers, sending one ExecuteOrder each". Placed at 100 (trail 10);
    the feed observes 120 then 105; 105 is applied first (trail 105 / 95), 120 comes late:
    the trail moves to 120 / 110, the current price 105 is below the stop, the order is
    triggered. The stale update returns before the matching: no ExecuteOrder, the order
    waits for the rematch (60 s) while the market may fall further."""
    t0 = start()
    symbol = await listed(aws, t0)
    order = await trailing_sell(
        aws, symbol, placed_at=t0 + timedelta(seconds=1), best="100", trail="10"
    )
    peak = feed_update(symbol, "peak-" + symbol, t0 + timedelta(seconds=2), "120")
    after = feed_update(symbol, "after-" + symbol, t0 + timedelta(seconds=3), "105")
    await deliver(aws, t0 + timedelta(seconds=3), after)
    sqs = RecordingSqs()

    await deliver(aws, t0 + timedelta(seconds=4), peak, sqs=sqs)

    stored = await get_order_dao(aws).get_order(order.order_id)
    assert (stored.best_price, stored.stop_price) == (Decimal("120"), Decimal("110"))
    assert sqs.executed == [order.order_id]


# Finding 3: the skew bypass (`price_as_of > writer's clock + skew`) is judged by the
# clock of whichever matcher writes: two matchers (the manifest's "more are safe", a
# rolling update's surge pod) a second apart let any older update undo a newer one.


async def test_a_replayed_older_update_on_a_matcher_a_second_behind_never_undoes_a_newer_one(
    aws: AwsClients,
) -> None:
    """README: "an update not newer than the stored one is ignored, so neither an
    out-of-order update nor a copy sent again later ever moves a price back"; an update
    dated ahead within the skew "holds back the feed's updates dated before it for at most
    the skew". The feed runs 29.5 s ahead of matcher A (admitted); matcher B's node clock
    is one second behind A's. A replayed copy of an older update (its service token still
    valid, five minutes) delivered to B: the stored observation lies 30.5 s ahead of B's
    clock, "beyond the skew", so B writes the old price over the newer one."""
    t0 = start()
    symbol = await listed(aws, t0)
    old = feed_update(symbol, "old-" + symbol, t0 + timedelta(seconds=1), "90")
    a_now = t0 + timedelta(seconds=2)
    await deliver(aws, a_now, old)  # applied once, in its turn
    newer = feed_update(symbol, "new-" + symbol, a_now + timedelta(seconds=29.5), "130")
    await deliver(aws, a_now, newer)  # matcher A
    assert (await get_asset_dao(aws).get_asset(symbol)).price == Decimal("130")

    b_now = a_now + timedelta(milliseconds=100) - timedelta(seconds=1)  # matcher B's clock
    await deliver(aws, b_now, old)  # the replayed copy, to B

    assert (await get_asset_dao(aws).get_asset(symbol)).price == Decimal("130")


# Finding 4: a price set by hand from a clock beyond the skew was written by the CLI itself,
# unbounded, while the matcher refused its copy FUTURE_TIMESTAMP: the market traded at a
# price no trailing stop ever saw. The CLI now only sends it; the matcher decides.


async def test_a_price_set_by_hand_from_a_clock_ahead_never_becomes_the_market_price(
    aws: AwsClients,
) -> None:
    """The operator's laptop runs ten minutes ahead. `order-processor price` sends 150 and
    no longer writes it: the matcher refuses it FUTURE_TIMESTAMP, so 150 is never the
    price anything trades at, and the trailing stops and the market agree: the feed's next
    tick, 130, moves the trail to 130 / 120 and triggers nothing."""
    t0 = start()
    symbol = await listed(aws, t0)
    order = await trailing_sell(
        aws, symbol, placed_at=t0 + timedelta(seconds=1), best="100", trail="10"
    )
    laptop = t0 + timedelta(minutes=10)
    await deliver(
        aws, t0 + timedelta(seconds=2), feed_update(symbol, "hand-" + symbol, laptop, "150")
    )
    assert (await get_asset_dao(aws).get_asset(symbol)).price == Decimal("100")
    sqs = RecordingSqs()
    t1 = t0 + timedelta(seconds=3)

    await deliver(aws, t1, feed_update(symbol, "tick-" + symbol, t1, "130"), sqs=sqs)

    stored = await get_order_dao(aws).get_order(order.order_id)
    assert (stored.best_price, stored.stop_price) == (Decimal("130"), Decimal("120"))
    assert (await get_asset_dao(aws).get_asset(symbol)).price == Decimal("130")
    assert sqs.executed == []


# The fourth attacker's round: what the third round's fixes changed.


async def placed_by_the_saga(
    aws: AwsClients,
    symbol: str,
    at: datetime,
    trail: str,
    meanwhile: Callable[[], Awaitable[object]] | None = None,
) -> Order:
    """A trailing stop sell placed by the real saga over the real ledger, for a user who
    holds the asset; `meanwhile` runs between the saga's first read and its write (the
    matcher applying a price, say)."""
    username = f"user_{uuid.uuid4().hex[:12]}"
    await get_user_dao(aws).create_user(
        UserCreate(
            username=username, email=f"{username}@example.com", first_name="A", last_name="B"
        ),
        password_hash="x",
    )
    await get_asset_transaction_dao(aws).create_asset_transaction(
        AssetTransactionCreate(
            username=username,
            asset_id=symbol,
            transaction_type=AssetTransactionType.BUY,
            quantity="1",
            price="1",
            total_amount="0",
        )
    )
    resources = aws.resources
    pending = [meanwhile] if meanwhile else []

    class Interleaved(DynamoLedger):
        async def read(self, *args: Any, **kwargs: Any) -> Any:
            snapshot = await super().read(*args, **kwargs)
            if pending:
                await pending.pop()()
            return snapshot

    ledger = Interleaved(
        aws.dynamodb, resources.users_table, resources.orders_table, resources.inventory_table
    )
    payload = PlaceOrderPayload(
        order_id="o-" + uuid.uuid4().hex[:12],
        order_type=OrderType.TRAILING_STOP_SELL,
        asset_id=symbol,
        quantity="1",
        trail_amount=trail,
    )
    command = PlaceOrder(
        command_id="c-" + payload.order_id,
        username=username,
        auth="t",
        payload=payload,
        issued_at=at,
    )
    await Saga(ledger, MemoryEvents(), LIMITS, clock=lambda: at).handle(command)
    return await get_order_dao(aws).get_order(payload.order_id)


async def a_rematch_then_a_fall(
    aws: AwsClients, order: Order, after: datetime, price: str
) -> tuple[Order, list[str]]:
    """A minute after `after` the matcher's rematch runs, a second later the feed falls to
    `price`: the trailing stop as stored then, and the orders that fall executed."""
    await matcher(aws, after + timedelta(seconds=60)).rematch(after + timedelta(seconds=60))
    sqs = RecordingSqs()
    at = after + timedelta(seconds=61)
    await deliver(
        aws, at, feed_update(order.asset_id, "fall-" + order.asset_id, at, price), sqs=sqs
    )
    return await get_order_dao(aws).get_order(order.order_id), sqs.executed


async def test_a_trailing_stop_on_an_asset_listed_from_a_clock_ahead_follows_the_feed(
    aws: AwsClients,
) -> None:
    """README: "A stored observation dated more than twice the skew ahead of the matcher's
    clock (a listing from a laptop's clock far ahead) holds nothing back"; a trailing stop
    follows "every price observed after the price a stop started from (the inventory's
    observation it was placed at, `trail_since`)". An asset is listed from a laptop whose
    clock runs a day ahead; a customer places a trailing sell (trail 10) on it before the
    feed's first tick. `_accept` copies the listing's price_as_of, a day ahead, into
    `trail_since`. The feed's ticks are written (the listing holds nothing back), but every
    one is dated before `trail_since`: neither the updates nor the rematch ever move the
    stop. The market rises to 130 and falls to 115; the stop stays at 90 (it should be 120
    and the order triggered) — for a whole day. Before `trail_since`, the worker's
    `created_at` was compared and the stop followed."""
    worker_now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    symbol = await listed(aws, worker_now + timedelta(days=1))  # the laptop's clock
    order = await placed_by_the_saga(aws, symbol, worker_now, trail="10")  # best 100, stop 90

    t1 = worker_now + timedelta(seconds=1)
    await deliver(aws, t1, feed_update(symbol, "rise-" + symbol, t1, "130"))
    assert (await get_asset_dao(aws).get_asset(symbol)).price == Decimal("130")  # taken
    stored, executed = await a_rematch_then_a_fall(aws, order, t1, "115")
    assert (stored.best_price, stored.stop_price, executed) == (
        Decimal("130"),
        Decimal("120"),
        [order.order_id],
    )


async def test_a_peak_applied_between_a_trailing_stops_read_and_its_write_is_followed(
    aws: AwsClients,
) -> None:
    """README: "every price observed after the price a stop started from
    (`trail_since`) is a candidate peak of it, even one that arrives after a newer price";
    "the rematch also moves the stops an index hid from an update to each asset's price".
    The worker reads the inventory (100, observed at t0) and decides a trailing sell
    (trail 10); before its write lands, the matcher applies the feed's 120 (observed after
    t0): its TrailingStops query does not see the order yet, it writes 120. The order is
    stored with best 100. The feed's next tick, 112, moves it to 112 / 102 before any
    rematch, and the rematch only ever moves a stop to the price that stands (112). The
    peak 120, observed after `trail_since`, is never a peak of it: at 109 the order should
    be triggered (stop 110) and is not. The same happens when the index hides the order
    from the 120 (its lag) and a lower tick follows before the rematch."""
    t0 = start()
    symbol = await listed(aws, t0)  # 100, observed at t0
    t1 = t0 + timedelta(seconds=1)
    peak = feed_update(symbol, "peak-" + symbol, t1, "120")
    # The saga reads 100; the matcher applies 120 before the saga's write: the write is
    # refused (the price it was decided at moved) and decided again, from 120.
    order = await placed_by_the_saga(
        aws, symbol, t1, trail="10", meanwhile=lambda: deliver(aws, t1, peak)
    )
    assert (order.best_price, order.stop_price) == (Decimal("120"), Decimal("110"))

    t2 = t1 + timedelta(seconds=1)
    await deliver(aws, t2, feed_update(symbol, "next-" + symbol, t2, "112"))
    stored, executed = await a_rematch_then_a_fall(aws, order, t2, "109")
    assert (stored.best_price, stored.stop_price, executed) == (
        Decimal("120"),
        Decimal("110"),
        [order.order_id],
    )


async def test_order_processor_price_applied_then_followed_by_a_tick_is_not_reported_unapplied(
    aws: AwsClients, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """README: `price ID P` "send[s] a price to the limit matcher, wait[s] until it applied
    it, print[s] the asset (exit 1 if it did not within S s)". The CLI takes "applied" to
    mean "the inventory's price_command_id is mine at my poll". The matcher applies the
    operator's 130 (the market trades at it, trails move to it); the feed's next tick lands
    before the CLI's first poll, 0.2 s later at most. The CLI then polls until its deadline
    and exits 1: "not applied ... (a newer price ... is refused)". An operator who believes
    it and sends it again puts 130 back over the feed's newer price."""
    from order_processor.cli import admin, build_parser

    symbol = await listed(aws, datetime.now(UTC) - timedelta(seconds=5))
    sent: list[str] = []

    class ToTheMatcher:
        async def send(self, update: UpdatePrice) -> None:
            sent.append(update.command_id)
            now = datetime.now(UTC) + timedelta(milliseconds=50)
            await deliver(aws, now, update.body())  # the matcher applies it
            applied = await get_asset_dao(aws).get_asset(symbol)
            assert (applied.price, applied.price_command_id) == (Decimal("130"), update.command_id)
            tick = now + timedelta(milliseconds=100)  # the feed's next tick, applied too
            await deliver(aws, tick, feed_update(symbol, "tick-" + symbol, tick, "129"))

    async def producer(settings: Settings, clients: AwsClients) -> ToTheMatcher:
        return ToTheMatcher()

    actions: list[Any] = []
    monkeypatch.setattr(admin, "with_clients", lambda settings, action: actions.append(action))
    monkeypatch.setattr(admin, "price_producer_for", producer)
    args = build_parser().parse_args(["price", symbol, "130", "--wait-seconds", "1"])
    admin.cmd_price(args, Settings(jwt_secret=SECRET))

    status = await actions[0](aws)

    assert len(sent) == 1
    assert status == 0, capsys.readouterr().err


# A currency's rate keeps the same rules (issue 24's attacker; these held): never moved
# back by an older or an as-old update, written again by its own redelivery, and, dated
# beyond twice the skew ahead of the store's clock, replaced by the next update.


async def test_a_rate_is_never_moved_back_and_its_own_redelivery_is_written_again(
    aws: AwsClients,
) -> None:
    rates = ExchangeRateStore(aws.dynamodb, aws.resources.inventory_table, clock=lambda: at(0))
    newer = at(0) + timedelta(microseconds=500)
    await rates.change_rate("EUR", "1.08", as_of=at(0), command_id="rate-1")
    await rates.change_rate("EUR", "1.09", as_of=newer, command_id="rate-2")

    for as_of in (at(0), newer):  # older; as old, another update's
        with pytest.raises(StalePriceException) as stale:
            await rates.change_rate("EUR", "1.01", as_of=as_of, command_id="rate-3")
        assert stale.value.details["current"].rate == Decimal("1.09")
    await rates.change_rate("EUR", "1.09", as_of=newer, command_id="rate-2")

    assert (await rates.rates())["EUR"].rate == Decimal("1.09")


async def test_a_rate_dated_beyond_twice_the_skew_ahead_is_replaced_by_the_next_update(
    aws: AwsClients,
) -> None:
    rates = ExchangeRateStore(aws.dynamodb, aws.resources.inventory_table, clock=lambda: at(0))
    await rates.change_rate("GBP", "1.25", as_of=at(59), command_id="rate-4")
    with pytest.raises(StalePriceException):  # within twice the skew: a time
        await rates.change_rate("GBP", "1.26", as_of=at(0), command_id="rate-5")
    await rates.change_rate("CHF", "1.12", as_of=at(3600), command_id="rate-6")

    await rates.change_rate("CHF", "1.13", as_of=at(0), command_id="rate-7")

    stored = await rates.rates()
    assert (stored["GBP"].rate, stored["CHF"].rate) == (Decimal("1.25"), Decimal("1.13"))
