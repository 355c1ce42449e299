"""Admission over hostile input: whatever a body holds ends as a command or as a
`CommandRejected` with a reason, and a rejection names only an authenticated identity."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jose import jwt

from order_processor.domain.base import ORDER_ID_MAX_LENGTH
from order_processor.domain.commands import (
    AnyCommand,
    CommandType,
    document_digest,
)
from order_processor.domain.events import Event, rejection_event
from order_processor.domain.orders import OrderCreate
from order_processor.exceptions import CommandRejected
from order_processor.handlers.admission import Admission
from order_processor.handlers.answers import MAX_REASON_TEXT, printable
from order_processor.messaging.producer import CommandFactory
from order_processor.security.tokens import TokenManager

SECRET = "admission-secret-" + "z" * 32
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
TOKENS = TokenManager(SECRET, clock=lambda: NOW)
ADMISSION = Admission(TOKENS, clock=lambda: NOW)
HOSTILE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed(header: str, claims: str) -> str:
    """A token signed with the right secret around any header and claims text."""
    head, body = b64(header.encode()), b64(claims.encode())
    mac = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def envelope(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schema": "order-processor/command/v1",
        "command_id": "cmd-1",
        "type": "PlaceOrder",
        "username": "alice_01",
        "issued_at": "2026-11-28T09:59:00Z",
        "auth": TOKENS.create_access_token("alice_01"),
        "payload": {
            "order_id": "ord-1",
            "order_type": "LIMIT_BUY",
            "asset_id": "BTC",
            "quantity": "0.5",
            "limit_price": "100",
        },
    }
    body.update(overrides)
    return body


def admit(document: Any) -> AnyCommand:
    body = document if isinstance(document, str | bytes) else json.dumps(document)
    return ADMISSION.admit(body).command


def rejected(document: Any) -> CommandRejected:
    with pytest.raises(CommandRejected) as caught:
        admit(document)
    return caught.value


def answer(document: Any) -> Event | AnyCommand:
    """What the worker makes of a body: the command, or the rejection event it publishes."""
    body = document if isinstance(document, str | bytes) else json.dumps(document)
    try:
        return ADMISSION.admit(body).command
    except CommandRejected as rejection:
        return event_of(rejection, body if isinstance(body, str) else body.decode("latin-1"))


def event_of(rejection: CommandRejected, body: str) -> Event:
    from order_processor.domain.commands import (
        peek_identity,
    )

    identity = rejection.identity
    claimed_username, claimed_command_id = peek_identity(body)
    event = rejection_event(
        reason=rejection.reason,
        message=printable(rejection.message),
        message_id="m-1",
        username=identity.username if identity else None,
        command_id=identity.command_id if identity else None,
        claimed_username=claimed_username,
        claimed_command_id=claimed_command_id,
    )
    Event.model_validate_json(event.body())  # it can be published and read back
    return event


def assert_fit_to_publish(result: Event | AnyCommand) -> None:
    if isinstance(result, Event):
        text = result.data["message"]
        assert len(text) <= MAX_REASON_TEXT
        assert all(" " <= c <= "~" for c in text)


# The cases that escaped as other exceptions and stalled a user's FIFO group.


@pytest.mark.parametrize("field", ["issued_at", "expires_at"])
def test_a_date_before_year_one_in_utc_is_rejected_not_raised(field: str) -> None:
    document = envelope()
    if field == "issued_at":
        document["issued_at"] = "0001-01-01T00:00:00+14:00"
    else:
        document["payload"]["expires_at"] = "0001-01-01T00:00:00+14:00"
    rejection = rejected(document)
    assert rejection.reason == "INVALID_COMMAND"
    assert field in rejection.message
    assert rejection.identity is not None
    assert rejection.identity.username == "alice_01"


def test_an_amount_beyond_decimals_range_is_rejected_not_raised() -> None:
    document = envelope(
        type="Withdraw", payload={"amount": "1e99999999999999999999"}, command_id="w-1"
    )
    rejection = rejected(document)
    assert rejection.reason == "INVALID_COMMAND"
    assert rejection.message.startswith("payload.amount: ")


def test_a_token_whose_header_is_deeply_nested_is_unauthorized() -> None:
    token = signed("[" * 1400 + "]" * 1400, json.dumps({"sub": "alice_01"}))
    rejection = rejected(envelope(auth=token))
    assert rejection.reason == "UNAUTHORIZED"
    assert rejection.identity is None


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": 1e20},
        {"exp": 10**20},
        {"role": ["customer"]},
        {"role": {"admin": True}},
        {"sub": ["alice_01"]},
        {"iat": "yesterday"},
    ],
)
def test_a_signed_token_with_a_malformed_claim_is_unauthorized(claims: dict[str, Any]) -> None:
    base = {"sub": "alice_01", "role": "customer", "iat": int(NOW.timestamp()) - 5}
    base["exp"] = base["iat"] + 600  # type: ignore[operator]
    token = jwt.encode({**base, **claims}, SECRET, algorithm="HS256")
    assert rejected(envelope(auth=token)).reason == "UNAUTHORIZED"


def test_a_token_living_longer_than_the_maximum_is_unauthorized() -> None:
    issued = int(NOW.timestamp())
    long_lived = {"sub": "alice_01", "role": "customer", "iat": issued, "exp": issued + 61 * 60}
    token = jwt.encode(long_lived, SECRET, algorithm="HS256")
    assert rejected(envelope(auth=token)).reason == "UNAUTHORIZED"


# The sender's clock.


def test_a_command_dated_beyond_the_skew_is_refused_and_within_it_accepted() -> None:
    far = rejected(envelope(issued_at="9999-12-31T23:59:59Z"))
    assert far.reason == "FUTURE_TIMESTAMP"
    assert admit(envelope(issued_at=(NOW + timedelta(seconds=29)).isoformat())).command_id == (
        "cmd-1"
    )
    assert rejected(envelope(issued_at=(NOW + timedelta(seconds=31)).isoformat())).reason == (
        "FUTURE_TIMESTAMP"
    )


def test_a_command_dated_before_its_token_is_taken_as_issued_with_the_token() -> None:
    """issued_at starts the order's end-to-end latency: a sender cannot stretch it back
    past the token vouching for the command (minted at NOW)."""
    backdated = admit(envelope(issued_at="2001-01-01T00:00:00Z"))
    assert backdated.issued_at == NOW
    later = NOW + timedelta(seconds=5)
    assert admit(envelope(issued_at=later.isoformat())).issued_at == later


# Who may send what.


def service(name: str, document: dict[str, Any]) -> str:
    """A service token minted for the command `document` holds, as services mint them."""
    digest = document_digest(document)
    return TOKENS.create_access_token(name, role="service", command=digest)


@pytest.mark.parametrize(
    ("kind", "payload", "token", "allowed"),
    [
        ("Deposit", {"amount": "10"}, "customer", False),
        ("Deposit", {"amount": "10"}, "payments", True),
        ("Deposit", {"amount": "10"}, "admin", True),
        ("Deposit", {"amount": "10"}, "limit-matcher", False),
        ("Withdraw", {"amount": "10"}, "customer", True),
        ("Withdraw", {"amount": "10"}, "payments", False),
        ("ExecuteOrder", {"order_id": "o-1"}, "limit-matcher", True),
        ("ExecuteOrder", {"order_id": "o-1"}, "expiry-sweeper", False),
        ("ExecuteOrder", {"order_id": "o-1"}, "customer", False),
        ("ExpireOrder", {"order_id": "o-1"}, "expiry-sweeper", True),
        ("ExpireOrder", {"order_id": "o-1"}, "limit-matcher", False),
        ("ResumeOrder", {"order_id": "o-1"}, "expiry-sweeper", True),
        ("ResumeOrder", {"order_id": "o-1"}, "price-feed", False),
        ("UpdatePrice", {"asset_id": "BTC", "price": "1"}, "price-feed", True),
        ("UpdatePrice", {"asset_id": "BTC", "price": "1"}, "payments", False),
        ("UpdatePrice", {"asset_id": "BTC", "price": "1"}, "some-service", False),
        ("CancelOrder", {"order_id": "o-1"}, "payments", False),
    ],
)
def test_each_service_may_send_only_its_own_commands(
    kind: str, payload: dict[str, str], token: str, allowed: bool
) -> None:
    document = envelope(type=kind, payload=payload)
    document["auth"] = {
        "customer": TOKENS.create_access_token("alice_01"),
        "admin": TOKENS.create_access_token("ops_admin", role="admin"),
    }.get(token) or service(token, document)
    if allowed:
        assert admit(document).type == CommandType(kind)
    else:
        assert rejected(document).reason == "FORBIDDEN"


# Identity in rejections.


def test_a_rejection_before_authentication_names_nobody() -> None:
    forged = jwt.encode(
        {"sub": "victim_01", "role": "customer", "iat": 1, "exp": 2}, "wrong-" + "k" * 40
    )
    body = json.dumps(envelope(username="victim_01", auth=forged, command_id="victims-cmd"))
    rejection = rejected(body)
    event = event_of(rejection, body)
    assert (event.username, event.data["command_id"]) == (None, None)
    assert event.event_id == "rejected:m-1"
    assert "username" not in event.attributes()
    assert (event.data["claimed_username"], event.data["claimed_command_id"]) == (
        "victim_01",
        "victims-cmd",
    )


def test_claimed_fields_with_control_characters_are_dropped() -> None:
    body = json.dumps(envelope(username="vic\ntim_01", auth="x", command_id="c\u0000md"))
    event = event_of(rejected(body), body)
    assert (event.data["claimed_username"], event.data["claimed_command_id"]) == (None, None)


def test_a_rejection_after_authentication_names_the_tokens_subject() -> None:
    body = json.dumps(envelope(payload={"order_type": "MARKET_BUY"}))
    event = event_of(rejected(body), body)
    assert (event.username, event.data["command_id"]) == ("alice_01", "cmd-1")
    assert event.attributes()["username"]["StringValue"] == "alice_01"


def test_an_order_id_longer_than_derived_ids_allow_is_refused_at_admission() -> None:
    longest = "o" * ORDER_ID_MAX_LENGTH
    ok = envelope()
    ok["payload"]["order_id"] = longest
    assert admit(ok).payload.order_id == longest  # type: ignore[union-attr]
    too_long = envelope()
    too_long["payload"]["order_id"] = longest + "o"
    assert rejected(too_long).reason == "INVALID_COMMAND"


# Properties: anything at all.

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=25,
)
ORDER_FIELDS = ["order_id", "order_type", "asset_id", "quantity", "limit_price", "expires_at"]
FIELDS = ["schema", "command_id", "type", "username", "issued_at", "auth", "payload"]


@HOSTILE
@given(st.binary(max_size=300))
def test_any_bytes_end_as_a_rejection(body: bytes) -> None:
    assert_fit_to_publish(answer(body))


@HOSTILE
@given(JSON)
def test_any_json_ends_as_a_command_or_a_rejection(document: Any) -> None:
    assert_fit_to_publish(answer(document))


@HOSTILE
@given(st.sampled_from(FIELDS), JSON)
def test_any_value_in_any_envelope_field_ends_as_a_command_or_a_rejection(
    field: str, value: Any
) -> None:
    assert_fit_to_publish(answer(envelope(**{field: value})))


@HOSTILE
@given(
    st.sampled_from(
        ["order_id", "order_type", "asset_id", "quantity", "limit_price", "expires_at"]
    ),
    st.text(max_size=60) | JSON,
)
def test_any_value_in_any_order_field_ends_as_a_command_or_a_rejection(
    field: str, value: Any
) -> None:
    document = envelope()
    document["payload"][field] = value
    assert_fit_to_publish(answer(document))


@HOSTILE
@given(st.text(max_size=200))
def test_any_string_as_a_token_is_unauthorized(token: str) -> None:
    result = answer(envelope(auth=token))
    assert isinstance(result, Event)
    assert result.data["reason"] in {"UNAUTHORIZED", "TOKEN_EXPIRED"}
    assert result.username is None


@HOSTILE
@given(JSON, JSON)
def test_any_signed_header_and_claims_end_as_a_command_or_a_rejection(
    header: Any, claims: Any
) -> None:
    token = signed(json.dumps(header), json.dumps(claims))
    result = answer(envelope(auth=token))
    assert_fit_to_publish(result)
    if isinstance(result, Event) and result.username is not None:
        assert result.username == "alice_01"  # only a token that verified names anyone


@HOSTILE
@given(
    st.dictionaries(
        st.sampled_from(["sub", "role", "iat", "exp", "jti", "nbf"]),
        JSON | st.integers(min_value=-(2**70), max_value=2**70),
    )
)
def test_any_claims_signed_correctly_end_as_a_command_or_a_rejection(claims: Any) -> None:
    token = signed(json.dumps({"alg": "HS256", "typ": "JWT"}), json.dumps(claims))
    assert_fit_to_publish(answer(envelope(auth=token)))


def test_the_idempotency_keys_are_required_on_the_wire() -> None:
    """A key made up at admission would differ at each redelivery of the same message, and
    the command would run again."""
    no_command_id = envelope()
    del no_command_id["command_id"]
    assert "command_id" in rejected(no_command_id).message
    no_order_id = envelope()
    del no_order_id["payload"]["order_id"]
    assert "payload.order_id" in rejected(no_order_id).message


def test_a_rejection_does_not_echo_a_token_or_a_value_the_sender_wrote() -> None:
    token = TOKENS.create_access_token("alice_01")
    for document in (
        envelope(type=token),
        envelope(type="Withdraw", payload={"amount": "secret-" + "q" * 30}),
        envelope(payload={**envelope()["payload"], f"x{token}": 1}),
    ):
        body = json.dumps(document)
        event = event_of(rejected(body), body)
        assert token not in event.body()
        assert "qqqq" not in event.body()


def test_a_service_token_signs_only_the_command_it_was_minted_for() -> None:
    """A payments token lifted from a deposit (in the DLQ, say) mints nothing else."""
    deposit = envelope(type="Deposit", payload={"amount": "10"}, command_id="dep-1")
    deposit["auth"] = service("payments", deposit)
    assert admit(deposit).command_id == "dep-1"
    replayed = {**deposit, "command_id": "dep-2", "payload": {"amount": "5000"}}
    other_user = {**deposit, "username": "mallory_1"}
    unbound = {**deposit, "auth": TOKENS.create_access_token("payments", role="service")}
    for document in (replayed, other_user, unbound):
        assert rejected(document).reason == "UNAUTHORIZED"


# What a service token binds: the whole command but its own field.

SERVICE_COMMANDS = {
    "Deposit": ("payments", {"amount": "10"}),
    "ExecuteOrder": ("limit-matcher", {"order_id": "o-1", "asset_id": "BTC"}),
    "ExpireOrder": ("expiry-sweeper", {"order_id": "o-1"}),
    "ResumeOrder": ("expiry-sweeper", {"order_id": "o-1"}),
    "UpdatePrice": ("price-feed", {"asset_id": "BTC", "price": "100"}),
}
PAYLOAD_FIELDS = sorted({f for _, payload in SERVICE_COMMANDS.values() for f in payload})
MOMENTS = st.datetimes(
    min_value=datetime(2026, 11, 28, 9, 0), max_value=datetime(2026, 11, 28, 10, 1)
).map(lambda moment: moment.replace(tzinfo=UTC).isoformat())
# Values a forger would try: well-formed alternatives (they pass the schema, so only the
# token can refuse them), then anything at all.
PLAUSIBLE = st.one_of(
    MOMENTS,
    st.sampled_from(["cmd-2", "alice_02", "mallory_1", "o-2", "ETH", "btc", "80", "10.00", "5000"]),
    st.decimals(min_value=1, max_value=10_000, places=2).map(str),
    st.sampled_from([*SERVICE_COMMANDS, "PlaceOrder", "Withdraw"]),
    JSON,
)
REMOVED = object()


def service_command(kind: str) -> dict[str, Any]:
    """A service's command as it mints it: issued now, with a token for it alone."""
    name, payload = SERVICE_COMMANDS[kind]
    document = envelope(type=kind, payload=dict(payload), issued_at=NOW.isoformat())
    document["auth"] = service(name, document)
    return document


@HOSTILE
@given(
    st.sampled_from(sorted(SERVICE_COMMANDS)),
    st.sampled_from([f for f in FIELDS if f != "auth"] + [f"payload.{f}" for f in PAYLOAD_FIELDS]),
    PLAUSIBLE | st.just(REMOVED),
)
def test_a_service_command_with_any_field_changed_is_refused(
    kind: str, field: str, value: Any
) -> None:
    """Whatever decides what a service's command does, its time included, is bound to its
    token: a body changed anywhere is refused, unless it still means the same command."""
    document = service_command(kind)
    original = admit(document)
    target, name = (
        (document["payload"], field.removeprefix("payload.")) if "." in field else (document, field)
    )
    if value is REMOVED:
        target.pop(name, None)
    else:
        target[name] = value
    try:
        changed = admit(document)
    except CommandRejected:
        return
    assert changed == original


def test_a_price_update_redated_after_signing_is_unauthorized() -> None:
    """The attack of a lifted `price` command sent again with a fresh issued_at."""
    update = service_command("UpdatePrice")
    redated = {**update, "issued_at": (NOW + timedelta(seconds=5)).isoformat()}
    assert admit(update).issued_at == NOW
    assert rejected(redated).reason == "UNAUTHORIZED"


def test_the_bundled_producer_binds_a_customers_token_to_the_command_it_signs() -> None:
    """A PlaceOrder lifted off the queue can be sent again (and runs once), but its token
    places no other order and withdraws nothing."""
    tokens = TokenManager(SECRET)
    admission = Admission(tokens)
    factory = CommandFactory(tokens)
    order = factory.place_order(
        "alice_01", OrderCreate(order_type="MARKET_BUY", asset_id="BTC", quantity="1")
    )
    document = json.loads(order.body())
    assert admission.admit(order.body()).command == order
    bigger = {**document, "payload": {**document["payload"], "quantity": "100"}}
    withdrawal = json.loads(factory.withdraw("alice_01", "10").body())
    stolen = {**withdrawal, "auth": document["auth"]}
    for forged in (bigger, stolen):
        with pytest.raises(CommandRejected) as caught:
            admission.admit(json.dumps(forged))
        assert caught.value.reason == "UNAUTHORIZED"
