"""Bad input of every kind: a clear `command.rejected` each, nothing lost, and the worker
keeps serving (the good order sent last completes). Every bad body goes to one deployment
and one worker run (the module's `answered`); each case is its own test."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

import pytest
import pytest_asyncio
from jose import jwt

from order_processor.bootstrap import get_user_dao, open_clients
from order_processor.domain.events import Event, EventType
from order_processor.domain.orders import Order, OrderStatus
from order_processor.domain.users import UserUpdate
from order_processor.security.tokens import TokenManager
from tests.e2e.conftest import SECRET, deployment_settings
from tests.e2e.harness import Harness
from tests.ledger import assert_ledger
from tests.support import deployed

pytestmark = pytest.mark.asyncio(loop_scope="module")
CLAIMS = {"sub": "good_user", "role": "customer", "iat": 1_700_000_000, "exp": 4_000_000_000}
FORGED = jwt.encode(CLAIMS, "not-the-secret-" + "y" * 32, algorithm="HS256")


class Sender(Enum):
    """What the rejection says of who sent the body."""

    NAMED = "named"  # its command id and its user
    UNAUTHENTICATED = "unauthenticated"  # its id only as claimed_command_id, and no user
    ANONYMOUS = "anonymous"  # no command id can be read at all


@dataclass(frozen=True)
class Bad:
    body: Callable[[TokenManager], str]
    reason: str
    fragment: str | None = None
    sender: Sender = Sender.NAMED


def envelope(command_id: str, **overrides: object) -> Callable[[TokenManager], str]:
    """A Withdraw of good_user's, signed for them, with `overrides` (a callable value is
    given the token manager)."""

    def body(tokens: TokenManager) -> str:
        fields: dict[str, object] = {
            "schema": "order-processor/command/v1",
            "command_id": command_id,
            "type": "Withdraw",
            "username": "good_user",
            "issued_at": "2026-01-01T00:00:00Z",
            "auth": tokens.create_access_token("good_user"),
            "payload": {"amount": "10.00"},
        }
        fields.update({k: v(tokens) if callable(v) else v for k, v in overrides.items()})
        return json.dumps(fields)

    return body


def place(asset: str, quantity: str = "1") -> dict[str, str]:
    order = {"order_type": "MARKET_BUY", "asset_id": asset, "quantity": quantity}
    return {"order_id": f"o-{asset}-{quantity}", **order}


def token_of(user: str) -> Callable[[TokenManager], str]:
    return lambda tokens: tokens.create_access_token(user)


def expired(tokens: TokenManager) -> str:
    return tokens.create_access_token("good_user", expires_delta=timedelta(minutes=-1))


def unsigned(tokens: TokenManager) -> str:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    claims = base64.urlsafe_b64encode(json.dumps(CLAIMS).encode()).rstrip(b"=").decode()
    return f"{header}.{claims}."


def raw(text: str) -> Callable[[TokenManager], str]:
    return lambda tokens: text


CASES: dict[str, Bad] = {
    "invalid-json": Bad(raw("{not json"), "MALFORMED_JSON", sender=Sender.ANONYMOUS),
    "unknown-type": Bad(envelope("unknown-type", type="Teleport"), "INVALID_COMMAND", "type"),
    "missing-fields": Bad(
        raw(json.dumps({"type": "Withdraw", "command_id": "missing-fields"})),
        "UNAUTHORIZED",
        "no token",
        Sender.UNAUTHENTICATED,
    ),
    "missing-username": Bad(
        envelope("missing-username", username=None), "INVALID_COMMAND", "username"
    ),
    "negative": Bad(
        envelope("negative", payload={"amount": "-5"}), "INVALID_COMMAND", "must not be negative"
    ),
    "zero": Bad(envelope("zero", payload={"amount": "0"}), "INVALID_COMMAND", "greater than zero"),
    "nan": Bad(
        envelope("nan", payload={"amount": "NaN"}), "INVALID_COMMAND", "not a finite number"
    ),
    "huge": Bad(envelope("huge", payload={"amount": "1e20"}), "INVALID_COMMAND", "too large"),
    "over-precise": Bad(
        envelope("over-precise", payload={"amount": "1.001"}),
        "INVALID_COMMAND",
        "more than 2 decimal places",
    ),
    "float": Bad(envelope("float", payload={"amount": 1.5}), "INVALID_COMMAND", "not floats"),
    "unknown-user": Bad(
        envelope(
            "unknown-user",
            username="ghost_user",
            auth=token_of("ghost_user"),
            type="PlaceOrder",
            payload=place("BTC"),
        ),
        "UNKNOWN_USER",
    ),
    "unknown-asset": Bad(
        envelope("unknown-asset", type="PlaceOrder", payload=place("NOPE")), "UNKNOWN_ASSET"
    ),
    "inactive-asset": Bad(
        envelope("inactive-asset", type="PlaceOrder", payload=place("DEAD")), "ASSET_NOT_TRADABLE"
    ),
    "over-asset-precision": Bad(
        envelope("over-asset-precision", type="PlaceOrder", payload=place("BTC", "0.000000001")),
        "INVALID_QUANTITY",
    ),
    "forged-token": Bad(
        envelope("forged-token", auth=FORGED), "UNAUTHORIZED", sender=Sender.UNAUTHENTICATED
    ),
    "expired-token": Bad(
        envelope("expired-token", auth=expired), "TOKEN_EXPIRED", sender=Sender.UNAUTHENTICATED
    ),
    "none-alg-token": Bad(
        envelope("none-alg-token", auth=unsigned), "UNAUTHORIZED", sender=Sender.UNAUTHENTICATED
    ),
    "other-users-token": Bad(
        envelope("other-users-token", auth=token_of("mallory_1")), "FORBIDDEN"
    ),
    "system-command": Bad(
        envelope("system-command", type="ExecuteOrder", payload={"order_id": "x"}), "FORBIDDEN"
    ),
    "too-large": Bad(
        envelope("too-large", padding="x" * 20_000), "MESSAGE_TOO_LARGE", sender=Sender.ANONYMOUS
    ),
    "deeply-nested": Bad(
        raw('{"command_id": "deeply-nested", "x": ' + "[" * 5000 + "}"),
        "MALFORMED_JSON",
        sender=Sender.ANONYMOUS,
    ),
    "not-an-object": Bad(
        raw('["Deposit", "good_user"]'), "INVALID_COMMAND", sender=Sender.ANONYMOUS
    ),
    "disabled-user": Bad(
        envelope("disabled-user", username="off_user_1", auth=token_of("off_user_1")),
        "USER_INACTIVE",
    ),
}
# What each case is, as a sentence (the test's id).
SAID = {
    "invalid-json": "a body that is not JSON",
    "unknown-type": "a command type nobody knows",
    "missing-fields": "an envelope without its fields",
    "missing-username": "an envelope without a username",
    "negative": "a negative amount",
    "zero": "an amount of zero",
    "nan": "an amount that is NaN",
    "huge": "an amount too large",
    "over-precise": "an amount in fractions of a cent",
    "float": "an amount sent as a float",
    "unknown-user": "an order from a user that does not exist",
    "unknown-asset": "an order for an asset that does not exist",
    "inactive-asset": "an order for an asset not tradable",
    "over-asset-precision": "a quantity finer than the asset allows",
    "forged-token": "a token signed with another secret",
    "expired-token": "an expired token",
    "none-alg-token": "an unsigned token (alg none)",
    "other-users-token": "another user's token",
    "system-command": "a customer sending a system command",
    "too-large": "a message over the size limit",
    "deeply-nested": "JSON nested too deep to parse",
    "not-an-object": "JSON that is not an object",
    "disabled-user": "a command from a disabled user",
}


@dataclass(frozen=True)
class Answered:
    """What the worker made of every bad body and the good order sent after them."""

    rejections: list[Event]
    order: Order
    available: dict[str, Decimal]
    output: str
    expired_token: str

    def of(self, case: str) -> Event:
        [found] = [e for e in self.rejections if _id(e) == case]
        return found

    def anonymous(self) -> Counter[str]:
        return Counter(str(e.data["reason"]) for e in self.rejections if not _id(e))


def _id(event: Event) -> Any:
    return event.data["command_id"] or event.data.get("claimed_command_id")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def answered(aws_endpoint: str) -> AsyncIterator[Answered]:
    with deployed(deployment_settings(aws_endpoint)) as settings:
        async with open_clients(settings) as clients:
            harness = await Harness.start(settings, clients)
            yield await send_every_case(harness)


async def send_every_case(harness: Harness) -> Answered:
    await harness.create_user("good_user", usd="100")
    await harness.create_user("off_user_1", usd="100")
    await get_user_dao(harness.clients).update_user("off_user_1", UserUpdate(is_active=False))
    await harness.add_asset("BTC", "50")
    await harness.add_asset("DEAD", "5", active=False)
    bodies = {name: case.body(harness.tokens) for name, case in CASES.items()}
    for index, body in enumerate(bodies.values()):
        await harness.send_raw(body, group=f"bad-{index}")
    good = harness.market("good_user", "buy", "BTC", "1")
    await harness.send(good)
    assert await harness.run_worker() == 0, harness.worker_output()

    events = await harness.collect_events(
        lambda e: len([x for x in e if x.event_type is EventType.COMMAND_REJECTED]) >= len(CASES)
    )
    await assert_ledger(harness.clients, "good_user")
    return Answered(
        rejections=[e for e in events if e.event_type is EventType.COMMAND_REJECTED],
        order=await harness.order(good.payload.order_id),
        available={u: await harness.available(u) for u in ("good_user", "off_user_1")},
        output=harness.worker_output(),
        expired_token=json.loads(bodies["expired-token"])["auth"],
    )


@pytest.mark.parametrize("case", list(CASES), ids=[SAID[case] for case in CASES])
async def test_a_bad_command_is_rejected_with_its_reason(answered: Answered, case: str) -> None:
    bad = CASES[case]
    if bad.sender is Sender.ANONYMOUS:
        expected = Counter(c.reason for c in CASES.values() if c.sender is Sender.ANONYMOUS)
        assert answered.anonymous()[bad.reason] == expected[bad.reason]
        return
    rejection = answered.of(case)
    assert rejection.data["reason"] == bad.reason
    assert (rejection.username is None) is (bad.sender is Sender.UNAUTHENTICATED)
    if bad.fragment:
        assert bad.fragment in str(rejection.data["message"])


async def test_every_bad_command_is_answered_once(answered: Answered) -> None:
    assert len(answered.rejections) == len(CASES)


async def test_the_worker_keeps_serving_after_bad_input(answered: Answered) -> None:
    assert (answered.order.status, answered.order.total_amount) == (
        OrderStatus.COMPLETED,
        Decimal("50.00"),
    )
    assert answered.available == {"good_user": Decimal("50.00"), "off_user_1": Decimal("100.00")}


async def test_bad_tokens_are_logged_as_denied_and_never_written_out(answered: Answered) -> None:
    assert answered.output.count('"event": "access_denied"') == 6
    assert FORGED not in answered.output
    assert answered.expired_token not in answered.output
    assert SECRET not in answered.output
