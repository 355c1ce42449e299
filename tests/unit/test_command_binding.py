"""What a bound token signs and the time admission keeps, attacked from outside (issue 20's
second round): each test failed on the first fix and states the claim it now holds."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from order_processor.domain.commands import (
    PricePayload,
    UpdatePrice,
    command_digest,
)
from order_processor.domain.orders import OrderCreate
from order_processor.exceptions import CommandRejected
from order_processor.handlers.admission import Admission
from order_processor.messaging.producer import CommandFactory
from order_processor.security.tokens import TokenManager

SECRET = "attack20-secret-" + "q" * 32
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def tokens_at(moment: datetime) -> TokenManager:
    return TokenManager(SECRET, clock=lambda: moment)


def admission_at(moment: datetime) -> Admission:
    return Admission(tokens_at(moment), clock=lambda: moment)


def canonical_digest(document: dict[str, Any]) -> str:
    """What the README tells a producer `cmd` is: the SHA-256 of the command but `auth`,
    as canonical JSON (sorted keys, no whitespace)."""
    signed = {k: v for k, v in document.items() if k != "auth"}
    return hashlib.sha256(
        json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


# Finding 1: `cmd` is not a function of the message that travels.


def test_the_digest_is_that_of_the_command_as_sent() -> None:
    """The bundled producer's own message: its body omits the unset optional fields
    (`body()` excludes None), but `command_digest` hashes them as nulls, so no producer
    can compute `cmd` from the message it sends, and adding an optional field to a
    payload model changes the digest of every command in flight."""
    factory = CommandFactory(TokenManager(SECRET))
    order = factory.place_order(
        "alice_01", OrderCreate(order_type="MARKET_BUY", asset_id="BTC", quantity="1")
    )
    assert canonical_digest(json.loads(order.body())) == command_digest(order)


def test_a_producer_following_the_readme_is_admitted() -> None:
    """The README's own example envelope, bound by a producer in another language the
    way the README describes `cmd` (canonical JSON of the command but `auth`)."""
    body = {
        "schema": "order-processor/command/v1",
        "command_id": "c-1",
        "type": "PlaceOrder",
        "username": "alice_01",
        "issued_at": "2026-12-07T11:59:59Z",
        "payload": {
            "order_id": "o-1",
            "order_type": "MARKET_BUY",
            "asset_id": "BTC",
            "quantity": "0.01",
        },
    }
    body["auth"] = tokens_at(NOW).create_access_token("alice_01", command=canonical_digest(body))
    admitted = admission_at(at(1)).admit(json.dumps(body))  # today: UNAUTHORIZED
    assert admitted.command.command_id == "c-1"


# Finding 2: the clamp to the token's iat rewrites the time prices are ordered by.


def feed_update(command_id: str, issued: datetime, price: str, minted: datetime) -> UpdatePrice:
    """An UpdatePrice dated when the feed observed the price, signed (bound) a little
    later, as a feed that timestamps at the source does."""
    update = UpdatePrice(
        command_id=command_id,
        username="price_feed",
        issued_at=issued,
        auth="unsigned",
        payload=PricePayload(asset_id="BTC", price=Decimal(price)),
    )
    token = tokens_at(minted).create_access_token(
        "price-feed", role="service", command=command_digest(update)
    )
    return update.model_copy(update={"auth": token})


def test_admission_keeps_the_signed_order_of_two_price_updates() -> None:
    """A observed at .9 s, signed at 2.1 s; B observed at 1.5 s, signed at 1.6 s. B is
    the newer observation, but admission clamps A to its token's iat (2 s): A now
    orders after B, and the matcher lets the older price overwrite the newer."""
    older = feed_update("p-a", at(0.9), "100", minted=at(2.1))
    newer = feed_update("p-b", at(1.5), "110", minted=at(1.6))
    admission = admission_at(at(3))

    a = admission.admit(older.body()).command
    b = admission.admit(newer.body()).command

    assert a.issued_at < b.issued_at


def test_two_updates_of_one_second_signed_in_the_next_keep_distinct_times() -> None:
    """Observed at .2 s and .7 s, both signed during second 1: both are admitted as
    exactly 1.000000 s, so the second (the newer price) meets an equal time from
    another command and is ignored as stale."""
    first = feed_update("p-1", at(0.2), "100", minted=at(1.1))
    second = feed_update("p-2", at(0.7), "110", minted=at(1.2))
    admission = admission_at(at(3))

    a = admission.admit(first.body()).command
    b = admission.admit(second.body()).command

    assert a.issued_at < b.issued_at


# Finding 3: an update without issued_at is dated at each delivery.


def test_a_redelivered_update_without_issued_at_is_not_newer_than_its_first_delivery() -> None:
    """`issued_at` was optional (default: now, at validation). An UpdatePrice sent with an
    admin token (allowed, unbound) and no issued_at was dated anew at every delivery, so
    an SQS redelivery after a newer feed update was newer than it and moved the price
    back. It is required on the wire now: such a body is refused at every delivery."""
    tokens = TokenManager(SECRET)
    admission = Admission(tokens)
    body = json.dumps(
        {
            "command_id": "admin-price-1",
            "type": "UpdatePrice",
            "username": "price_feed",
            "auth": tokens.create_access_token("ops_admin", role="admin"),
            "payload": {"asset_id": "BTC", "price": "100"},
        }
    )
    for _ in range(2):
        with pytest.raises(CommandRejected) as refused:
            admission.admit(body)
        assert (refused.value.reason, refused.value.message) == (
            "INVALID_COMMAND",
            "issued_at: Field required",
        )
