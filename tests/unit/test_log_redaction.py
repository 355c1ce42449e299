"""The worker logs' pipeline (configure_json_logs) never writes a token, a password or the
JWT secret, whatever key or shape they come in; ordinary fields survive."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import quote, quote_plus

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from order_processor.observability import configure_json_logs
from order_processor.security.audit import redact_secrets
from order_processor.security.redaction import REDACTED, Redactor, is_sensitive_key
from order_processor.security.tokens import TokenManager

SECRET = "jwt-secret-for-the-log-redaction-test-0123456789"
PASSWORD = "Corr3ct!horse-battery"
BCRYPT_HASH = "$2b$12$" + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"
NOISY = ("botocore", "aiobotocore", "urllib3")


class Login(BaseModel):
    username: str
    password: str
    auth: str


@dataclass
class Envelope:
    command_id: str
    auth: str
    body: str


class Hostile:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger (handlers, level), the noisy loggers' levels and structlog's
    contextvars back as they were."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    noisy = {name: logging.getLogger(name).level for name in NOISY}
    try:
        yield
    finally:
        structlog.contextvars.clear_contextvars()
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, noisy_level in noisy.items():
            logging.getLogger(name).setLevel(noisy_level)


@pytest.fixture
def token() -> str:
    return TokenManager(SECRET).create_access_token("alice_01")


def structlog_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger through the stdlib handler that configure_json_logs installs
    (what a worker gets from structlog.stdlib with wrap_for_formatter)."""
    logger: structlog.stdlib.BoundLogger = structlog.wrap_logger(
        logging.getLogger(name),
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    return logger


def log_in_every_shape(token: str) -> None:
    header, payload, signature = token.split(".")
    log = logging.getLogger("order_processor.test_redaction")
    slog = structlog_logger("order_processor.test_redaction.structlog")
    command = {
        "schema": "order-processor/command/v1",
        "command_id": "c-1",
        "type": "PlaceOrder",
        "username": "alice_01",
        "auth": token,
        "payload": {"order_id": "o-1", "password": PASSWORD},
    }
    body = json.dumps(command)
    sensitive_extras = {
        "auth": token,
        "token": token,
        "jwt": token,
        "Authorization": f"Bearer {token}",
        "X-Api-Key": token,
        "password": PASSWORD,
    }
    with structlog.contextvars.bound_contextvars(
        auth=token, username="alice_01", order_id="o-1", message_id="m-1"
    ):
        log.info(token)
        log.info(f"verifying {token} for alice_01")
        log.info("verifying %s for %s", token, "alice_01")
        log.info("command body %s", body)
        log.info("command %r", command)
        log.info("double-encoded body %s", json.dumps(body))
        log.info("parts %s", [header, payload, signature])
        log.info("as bytes %r", token.encode())
        log.info("quoted %s and %s", quote(token, safe=""), quote_plus(f"auth={token}"))
        log.info("callback https://shop.example/cb?token=%s&order_id=o-1", quote(token))
        log.info("header Authorization: Bearer %s", token)
        log.info("the secret is %s", SECRET)
        log.info(f"secret inline {SECRET}, json-escaped {json.dumps(SECRET)}")
        log.info("login password=%s username=alice_01", PASSWORD)
        log.info("stored hash %s", BCRYPT_HASH)
        log.info("extras", extra={**sensitive_extras, "nested": {"list": [{"auth": token}]}})
        log.info(
            "shapes",
            extra={
                "parts": token.split("."),
                "as_tuple": (token, signature),
                "as_set": {signature, payload},
                "as_bytes": token.encode(),
                "as_bytearray": bytearray(signature.encode()),
                "body": body,
                "model": Login(username="alice_01", password=PASSWORD, auth=token),
                "envelope": Envelope(command_id="c-1", auth=token, body=body),
                "non_str_keys": {("auth", 1): token, 7: signature},
                "username": "alice_01",
                "author": "Herman Melville",
            },
        )
        slog.info(
            "structlog kwargs",
            **sensitive_extras,
            nested={"deep": [token, {"inner": {"auth": token}}]},
            body=body,
            raw=token.encode(),
            parts=[header, payload, signature],
            quoted=quote(token, safe=""),
            bearer=f"Bearer {token}",
            model=Login(username="alice_01", password=PASSWORD, auth=token),
            envelope=Envelope(command_id="c-1", auth=token, body=body),
            amount=Decimal("12.50"),
            when=datetime(2026, 11, 28, 10, 0, tzinfo=UTC),
        )
        try:
            raise ValueError(f"bad token {token} (signature {signature}) secret {SECRET}")
        except ValueError:
            log.exception("command failed for order %s", "o-1")
        try:
            raise RuntimeError(f"refused {command!r}")
        except RuntimeError:
            slog.exception("structlog failure", order_id="o-1")


def assert_clean(output: str, token: str) -> None:
    _, payload, signature = token.split(".")
    for leaked in (token, payload, signature, PASSWORD, SECRET, BCRYPT_HASH):
        assert leaked not in output
        assert json.dumps(leaked)[1:-1] not in output
        assert quote(leaked, safe="") not in output


@pytest.mark.usefixtures("restore_logging")
def test_a_token_password_or_secret_never_reaches_the_worker_logs(token: str) -> None:
    stream = io.StringIO()
    configure_json_logs(logging.DEBUG, secrets=[SECRET], stream=stream)

    log_in_every_shape(token)

    output = stream.getvalue()
    assert_clean(output, token)
    lines = [json.loads(line) for line in output.splitlines()]
    assert len(lines) == 20
    assert all(line["username"] == "alice_01" for line in lines)
    assert all(line["auth"] == REDACTED for line in lines)
    by_event = {line["event"]: line for line in lines}
    assert "verifying [REDACTED] for alice_01" in by_event
    assert "callback https://shop.example/cb?token=[REDACTED]&order_id=o-1" in by_event
    assert "header Authorization: Bearer [REDACTED]" in by_event
    shapes = by_event["shapes"]
    assert (shapes["username"], shapes["order_id"], shapes["author"]) == (
        "alice_01",
        "o-1",
        "Herman Melville",
    )
    assert shapes["model"] == {"username": "alice_01", "password": REDACTED, "auth": REDACTED}
    assert json.loads(shapes["body"])["payload"] == {"order_id": "o-1", "password": REDACTED}
    kwargs = by_event["structlog kwargs"]
    assert (kwargs["amount"], kwargs["when"]) == ("12.50", "2026-11-28T10:00:00+00:00")
    assert kwargs["envelope"]["command_id"] == "c-1"
    assert kwargs["level"] == "info"
    failure = by_event["command failed for order o-1"]
    assert "ValueError: bad token [REDACTED]" in failure["exception"]
    assert "Traceback" in failure["exception"]
    assert "RuntimeError" in by_event["structlog failure"]["exception"]


@pytest.mark.usefixtures("restore_logging")
def test_configure_json_logs_is_idempotent() -> None:
    stream = io.StringIO()
    configure_json_logs(logging.INFO, stream=stream)
    configure_json_logs(logging.INFO, stream=stream)

    logging.getLogger("order_processor.test_idempotent").info("once")

    assert len(logging.getLogger().handlers) == 1
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["once"]
    assert logging.getLogger("botocore").level == logging.WARNING


@pytest.mark.usefixtures("restore_logging")
def test_a_record_that_cannot_be_formatted_does_not_echo_its_arguments(token: str) -> None:
    stream = io.StringIO()
    configure_json_logs(logging.INFO, secrets=[SECRET], stream=stream)

    logging.getLogger("order_processor.test_bad_args").info("%s and %s", token)

    output = stream.getvalue()
    assert_clean(output, token)
    assert json.loads(output)["event"].startswith("a log record could not be formatted")


@pytest.mark.usefixtures("restore_logging")
def test_odd_values_never_break_the_pipeline(token: str) -> None:
    stream = io.StringIO()
    configure_json_logs(logging.INFO, stream=stream)
    cyclic: list[object] = [token]
    cyclic.append(cyclic)
    deep: object = token
    for _ in range(200):
        deep = {"level": [deep]}

    logging.getLogger("order_processor.test_odd").info(
        "odd", extra={"cyclic": cyclic, "hostile": Hostile(), "deep": deep, "nan": float("nan")}
    )
    logging.getLogger("order_processor.test_odd").info("hostile message %s", Hostile())

    output = stream.getvalue()
    assert token not in output
    first = json.loads(output.splitlines()[0])
    assert first["cyclic"] == [REDACTED, "[CYCLE]"]
    assert first["hostile"] == "<unrenderable Hostile>"
    assert "[TOO DEEP]" in json.dumps(first["deep"])


# --- the redactor on its own ----------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "sensitive"),
    [
        ("password", True),
        ("new_password", True),
        ("passwordHash", True),
        ("passwd", True),
        ("pwd", True),
        ("client_secret", True),
        ("auth", True),
        ("x_auth_token", True),
        ("authToken", True),
        ("authn", True),
        ("Authorization", True),
        ("authentication", True),
        ("X-Api-Key", True),
        ("APIKey", True),
        ("api_key", True),
        ("jwt", True),
        ("access_token", True),
        ("Cookie", True),
        ("set-cookie", True),
        ("aws_secret_access_key", True),
        ("private_key", True),
        ("X-Amz-Signature", True),
        ("credentials", True),
        ("session_id", True),
        ("author", False),
        ("author_id", False),
        ("authority", False),
        ("username", False),
        ("order_id", False),
        ("event", False),
        ("exception", False),
        ("message_id", False),
        ("timestamp", False),
        ("level", False),
    ],
)
def test_which_keys_are_sensitive(key: str, sensitive: bool) -> None:
    assert is_sensitive_key(key) is sensitive


@pytest.mark.parametrize(
    "text",
    [
        "order o-1 of alice_01 for 0.01 BTC at 2026-11-28T10:00:00.123456+00:00",
        "message 0c2b6c1e-6f5a-4c4e-9a55-7d0e1e1c2f3a in group alice_01",
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d08c1bad5ef0f",
        'File "/work/main/src/order_processor/saga/handler.py", line 176, in admit',
        "order_processor.observability.configure_json_logs",
        "https://sqs.us-east-1.amazonaws.com/000000000000/op-order-commands.fifo",
        "the author: Herman Melville",
    ],
)
def test_ordinary_text_survives(text: str) -> None:
    assert Redactor().scrub(text) == text


def test_free_text_patterns_are_scrubbed(token: str) -> None:
    redactor = Redactor([SECRET])
    cases = {
        f"prefix{token}suffix": f"prefix{REDACTED}",
        f"hash {BCRYPT_HASH}.": f"hash {REDACTED}.",
        "postgres://app:hunter2@db:5432/x": f"postgres://app:{REDACTED}@db:5432/x",
        "password=hunter2&user=bob": f"password={REDACTED}&user=bob",
        "{'password': 'p w', 'user': 'bob'}": f"{{'password': '{REDACTED}', 'user': 'bob'}}",
        '{"token": "a\\"b", "user": "bob"}': f'{{"token": "{REDACTED}", "user": "bob"}}',
        "Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l": f"Authorization: Basic {REDACTED}",
        "bearer abc.def": f"bearer {REDACTED}",
        f"Authorization: Bearer {token}": f"Authorization: Bearer {REDACTED}",
        f'{{"Authorization": "Bearer {token}"}}': f'{{"Authorization": "{REDACTED}"}}',
        "api_key: {'nested': 1}, ok": f"api_key: {REDACTED}, ok",
        f"key {SECRET}!": f"key {REDACTED}!",
    }
    for text, expected in cases.items():
        assert redactor.scrub(text) == expected


def test_a_standalone_signature_or_json_segment_is_scrubbed(token: str) -> None:
    header, payload, signature = token.split(".")
    hs512 = TokenManager(SECRET, algorithm="HS512").create_access_token("a").split(".")[2]

    for segment in (header, payload, signature, hs512):
        assert Redactor().scrub(f"x {segment} y") == f"x {REDACTED} y"


def test_short_known_secrets_are_ignored_and_never_shown() -> None:
    redactor = Redactor(["abc", SECRET])
    assert redactor.scrub("abc") == "abc"
    assert SECRET not in repr(redactor)


def test_structures_are_rendered_then_redacted(token: str) -> None:
    rendered = Redactor().redact(
        {
            "model": Login(username="a", password=PASSWORD, auth=token),
            "envelope": Envelope(command_id="c-1", auth=token, body="{}"),
            "set": frozenset({token}),
            "tuple": (1, token),
            "bytes": b"\xff" + token.encode(),
            "password": None,
            "token_required": True,
        }
    )

    assert rendered == {
        "model": {"username": "a", "password": REDACTED, "auth": REDACTED},
        "envelope": {"command_id": "c-1", "auth": REDACTED, "body": "{}"},
        "set": [REDACTED],
        "tuple": [1, REDACTED],
        "bytes": f"ÿ{REDACTED}",
        "password": None,
        "token_required": True,
    }


def test_the_audit_processor_keeps_its_contract() -> None:
    processor: Callable[..., object] = redact_secrets
    assert processor(None, "info", {"event": "x", "secret": "s"}) == {
        "event": "x",
        "secret": REDACTED,
    }


# --- properties -----------------------------------------------------------------------

PROPERTY = settings(max_examples=200, deadline=None, database=None)
TOKEN = TokenManager(SECRET).create_access_token("alice_01")
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=40),
    st.binary(max_size=40),
    st.decimals(allow_nan=False),
    st.datetimes(),
    st.just(TOKEN),
    st.builds(Hostile),
)
nested = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.one_of(st.text(max_size=12), st.integers()), children, max_size=4)
    ),
    max_leaves=30,
)


@PROPERTY
@given(st.text(max_size=60), st.text(max_size=60), st.sampled_from(["", "Bearer ", "auth="]))
def test_a_token_in_any_text_never_survives(before: str, after: str, lead: str) -> None:
    _, payload, signature = TOKEN.split(".")

    scrubbed = Redactor().scrub(f"{before}{lead}{TOKEN}{after}")

    for part in (TOKEN, payload, signature):
        assert part not in scrubbed


@PROPERTY
@given(nested)
def test_any_structure_renders_to_json_without_the_token(value: object) -> None:
    _, payload, signature = TOKEN.split(".")

    rendered = json.dumps(Redactor([SECRET]).redact({"event": "x", "value": value}))

    for part in (TOKEN, payload, signature):
        assert part not in rendered
