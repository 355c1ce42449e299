"""Price updates that tried to move a price back, over the emulator (issue 20's attacks).

The matcher is the real one (admission, then `PriceMatcher.apply` on the real AssetDAO);
only the order book and the commands queue are faked (nothing rests on these assets)."""

from __future__ import annotations

import dataclasses
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest

from order_processor.bootstrap import AwsClients, get_asset_dao
from order_processor.domain.assets import AssetCreate
from order_processor.domain.commands import PricePayload, UpdatePrice, command_digest
from order_processor.domain.orders import Order
from order_processor.handlers.admission import Admission
from order_processor.handlers.prices import PriceMatcher
from order_processor.messaging.consumer import Message
from order_processor.messaging.producer import Producer
from order_processor.messaging.publisher import EventPublisher
from order_processor.security.audit import AuditLogger
from order_processor.security.tokens import TokenManager

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


def matcher(aws: AwsClients, moment: datetime) -> PriceMatcher:
    tokens = TokenManager(SECRET, clock=lambda: moment)
    return PriceMatcher(
        assets=dataclasses.replace(get_asset_dao(aws), clock=lambda: moment),
        orders=cast(Any, NoOrders()),
        commands=Producer(cast(Any, NoSqs()), "url", fifo=False),
        admission=Admission(tokens, clock=lambda: moment),
        publisher=cast(EventPublisher, NoEvents()),
        audit=AuditLogger(stream=io.StringIO()),
    )


def feed_update(
    symbol: str, command_id: str, issued: datetime, price: str, minted: datetime
) -> str:
    update = UpdatePrice(
        command_id=command_id,
        username="price_feed",
        issued_at=issued,
        auth="unsigned",
        payload=PricePayload(asset_id=symbol, price=Decimal(price)),
    )
    token = TokenManager(SECRET, clock=lambda: minted).create_access_token(
        "price-feed", role="service", command=command_digest(update)
    )
    return update.model_copy(update={"auth": token}).body()


async def deliver(aws: AwsClients, moment: datetime, body: str) -> None:
    message = Message(uuid.uuid4().hex, "receipt", body, 1)
    await matcher(aws, moment).handle_group(message.message_id, [message])


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
