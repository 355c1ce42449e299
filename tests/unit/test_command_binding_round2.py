"""Issue 20, the second attacker's round on what a bound token vouches for: each test
states the claim it broke; each failed before its fix."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from order_processor.domain.events import Event
from order_processor.domain.orders import OrderCreate
from order_processor.exceptions import CommandRejected
from order_processor.handlers.admission import Admission
from order_processor.handlers.commands import reject
from order_processor.messaging.consumer import Message
from order_processor.messaging.producer import CommandFactory
from order_processor.security.audit import AuditLogger
from order_processor.security.tokens import TokenManager

SECRET = "attack20b-secret-" + "s" * 32
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def tokens_at(moment: datetime) -> TokenManager:
    return TokenManager(SECRET, clock=lambda: moment)


def admission_at(moment: datetime) -> Admission:
    return Admission(tokens_at(moment), clock=lambda: moment)


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
