"""What a bound token signs and the time admission keeps, attacked from outside (issue 20's
second round): each test failed on the first fix and states the claim it now holds."""

from __future__ import annotations

import hashlib
import io
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
from order_processor.domain.events import Event
from order_processor.domain.orders import OrderCreate
from order_processor.exceptions import CommandRejected
from order_processor.handlers.admission import Admission
from order_processor.handlers.answers import reject
from order_processor.messaging.consumer import Message
from order_processor.messaging.producer import CommandFactory
from order_processor.security.audit import AuditLogger
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


# The second attacker's round: what a bound token vouches for in a rejection.


class Captured:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish(self, events: Any) -> None:
        self.events += list(events)


def lifted_order_body() -> dict[str, Any]:
    """Alice's PlaceOrder as the bundled producer sends it: a customer token bound to it.
    Anyone who can read the queue or its DLQ holds this body (and so its token)."""
    factory = CommandFactory(tokens_at(NOW))
    order = factory.place_order(
        "alice_01",
        OrderCreate(order_type="MARKET_BUY", asset_id="BTC", quantity="0.01"),
        order_id="o-alice-1",
    )
    document: dict[str, Any] = json.loads(order.body())
    return document


# Finding C: a token bound to one command vouches, in the rejection it causes, for
# whatever command id and time an altered copy names.


async def test_an_altered_copy_of_a_bound_command_names_no_command_id_in_its_rejection() -> None:
    """README: "A command.rejected event names only an identity a verified token vouches
    for: its username and data.command_id are the token's subject ... and the command's id
    once the token has verified"; "a token lifted from a message can only replay that
    exact message". A bound token vouches for one digest only, yet an altered copy (any
    command_id, any issued_at) is refused UNAUTHORIZED with a `command.rejected` event
    published under alice's name (her SNS filter attribute) for the attacker's command id,
    dated when the attacker likes: `rejected:alice_01:<her pending command>:UNAUTHORIZED`.
    A client that follows its commands by id sees its pending command 'rejected' (and may
    send it again under a new id while the real one executes)."""
    document = lifted_order_body()
    document["command_id"] = "alices-pending-command-7"  # seen on the queue, still in flight
    document["issued_at"] = "2001-01-01T00:00:00Z"
    body = json.dumps(document)

    with pytest.raises(CommandRejected) as refused:
        admission_at(at(5)).admit(body)
    assert refused.value.reason == "UNAUTHORIZED"
    events = Captured()
    await reject(
        Message("m-1", "r", body, 1, sent_at=at(5)),
        refused.value,
        events,
        AuditLogger(stream=io.StringIO()),
    )

    (event,) = events.events
    assert event.data.get("command_id") != "alices-pending-command-7"
    assert "alices-pending-command-7" not in event.event_id
    assert event.occurred_at != datetime(2001, 1, 1, tzinfo=UTC)


def test_a_bound_token_vouches_for_no_command_id_of_a_document_it_did_not_sign() -> None:
    """The same at admission: FUTURE_TIMESTAMP (checked before the binding) names the
    altered copy's command id as vouched for by alice's token."""
    document = lifted_order_body()
    document["command_id"] = "forged-1"
    document["issued_at"] = at(3600).isoformat()

    with pytest.raises(CommandRejected) as refused:
        admission_at(at(5)).admit(json.dumps(document))

    assert refused.value.identity is not None
    assert refused.value.identity.command_id != "forged-1"


# Finding D: under a bearer token the time a rejection is dated by is the sender's claim,
# not the clamped time the command is admitted with.


def test_under_a_bearer_token_the_sender_is_dated_as_the_command_is() -> None:
    """README: `issued_at` is "taken as the token's issue time when it claims to be older
    than a bearer token"; a rejection's time is "the command's issued_at". Admission
    clamps the command but builds the sender (whose `issued_at` dates every later
    rejection of it: `command.rejected`'s occurred_at) before the clamp, so a bearer
    holder dates its rejections in 1970."""
    bearer = tokens_at(NOW).create_access_token("alice_01")
    body = json.dumps(
        {
            "command_id": "c-old",
            "type": "Withdraw",
            "username": "alice_01",
            "issued_at": "1970-01-02T00:00:00Z",
            "auth": bearer,
            "payload": {"amount": "5"},
        }
    )

    admitted = admission_at(at(1)).admit(body)

    assert admitted.command.issued_at == NOW
    assert admitted.sender.issued_at == admitted.command.issued_at
