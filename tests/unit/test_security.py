from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from jose import jwt

from order_processor.exceptions import (
    TokenExpiredException,
    TokenInvalidException,
    WeakPasswordException,
)
from order_processor.security import AuditLogger, PasswordManager, TokenManager
from order_processor.security.audit import redact_secrets

SECRET = "s" * 32
GOOD_PASSWORD = "Corr3ct!horse"


async def test_password_hash_round_trip_at_cost_12() -> None:
    passwords = PasswordManager()

    hashed = await passwords.hash_password(GOOD_PASSWORD)

    assert hashed.startswith("$2b$12$")
    assert await passwords.verify_password(GOOD_PASSWORD, hashed)
    assert not await passwords.verify_password("Corr3ct!horsE", hashed)
    assert not await passwords.verify_password(GOOD_PASSWORD, "not-a-bcrypt-hash")


@pytest.mark.parametrize(
    ("password", "missing"),
    [
        ("Sh0rt!", "at least 8 characters"),
        ("alllower1!", "an uppercase letter"),
        ("ALLUPPER1!", "a lowercase letter"),
        ("NoDigits!!", "a digit"),
        ("NoSpecial12", "a special character"),
    ],
)
def test_weak_passwords_are_refused_with_the_missing_rule(password: str, missing: str) -> None:
    with pytest.raises(WeakPasswordException, match=missing):
        PasswordManager().validate_password_strength(password)


async def test_passwords_beyond_bcrypts_72_bytes_are_a_clear_error() -> None:
    passwords = PasswordManager(rounds=4)
    exactly_72 = "Aa1!" + "é" * 34  # 4 + 68 bytes
    too_long = exactly_72 + "x"

    hashed = await passwords.hash_password(exactly_72)
    with pytest.raises(WeakPasswordException, match="73 bytes in UTF-8; bcrypt uses at most 72"):
        await passwords.hash_password(too_long)

    # A longer password must not verify against the hash of its 72-byte prefix.
    assert await passwords.verify_password(exactly_72, hashed)
    assert not await passwords.verify_password(too_long, hashed)


def test_token_round_trip_carries_subject_role_and_times() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    tokens = TokenManager(SECRET, clock=lambda: now)

    claims = tokens.verify_access_token(tokens.create_access_token("alice_01", role="admin"))

    assert (claims.subject, claims.role) == ("alice_01", "admin")
    assert claims.issued_at == now
    assert claims.expires_at == now + timedelta(minutes=30)
    assert len(claims.token_id) == 32


def test_an_expired_token_is_refused_as_expired() -> None:
    tokens = TokenManager(SECRET)
    token = tokens.create_access_token("alice_01", expires_delta=timedelta(seconds=-5))

    with pytest.raises(TokenExpiredException):
        tokens.verify_access_token(token)
    assert tokens.is_token_expired(token)
    assert not tokens.is_token_expired(tokens.create_access_token("alice_01"))


def _tamper(token: str, **changes: object) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_tampered_wrong_key_and_none_algorithm_tokens_are_refused() -> None:
    tokens = TokenManager(SECRET)
    genuine = tokens.create_access_token("alice_01")
    claims = tokens.decode_token_payload(genuine)
    unsigned_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=")
    none_alg = f"{unsigned_header.decode()}.{genuine.split('.')[1]}."
    forgeries = {
        "tampered": _tamper(genuine, sub="mallory_1", role="admin"),
        "wrong key": jwt.encode(claims, "k" * 32, algorithm="HS256"),
        "none alg": none_alg,
        "other alg": jwt.encode(claims, SECRET, algorithm="HS512"),
        "garbage": "not.a.token",
    }

    for forged in forgeries.values():
        with pytest.raises(TokenInvalidException):
            tokens.verify_access_token(forged)


def test_tokens_without_required_claims_or_with_unknown_roles_are_refused() -> None:
    tokens = TokenManager(SECRET)
    now = int(datetime.now(UTC).timestamp())

    no_expiry = jwt.encode({"sub": "alice_01", "role": "customer", "iat": now}, SECRET)
    bad_role = jwt.encode({"sub": "alice_01", "role": "root", "iat": now, "exp": now + 60}, SECRET)

    with pytest.raises(TokenInvalidException):
        tokens.verify_access_token(no_expiry)
    with pytest.raises(TokenInvalidException, match="role is missing or not one") as refused:
        tokens.verify_access_token(bad_role)
    assert "root" not in refused.value.message  # never the attacker's text


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        TokenManager("too-short")
    assert SECRET not in repr(TokenManager(SECRET))


def test_audit_lines_are_json_and_never_carry_secrets() -> None:
    stream = io.StringIO()
    audit = AuditLogger(stream)
    tokens = TokenManager(SECRET)
    token = tokens.create_access_token("alice_01")
    bcrypt_hash = "$2b$12$" + "a" * 53

    audit.log_login_success("alice_01", source_ip="127.0.0.1")
    audit.log_login_failure("alice_01", reason=f"hash mismatch against {bcrypt_hash}")
    audit.log_password_change("alice_01")
    audit.log_access_denied("bob_0001", action="PlaceOrder", reason=f"token {token} is for alice")
    audit.log_token_created("alice_01", "customer", datetime(2026, 1, 1, tzinfo=UTC))

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == [
        "login_success",
        "login_failure",
        "password_change",
        "access_denied",
        "token_created",
    ]
    assert all(line["audit"] is True and "timestamp" in line for line in lines)
    assert lines[3]["reason"] == "token [REDACTED] is for alice"
    assert lines[1]["reason"] == "hash mismatch against [REDACTED]"
    text = stream.getvalue()
    assert token not in text
    assert bcrypt_hash not in text
    assert SECRET not in text


def test_values_under_sensitive_keys_are_replaced() -> None:
    event = {
        "event": "x",
        "password": GOOD_PASSWORD,
        "new_password": GOOD_PASSWORD,
        "auth_token": "opaque",
        "client_secret": SECRET,
        "Authorization": "Bearer abc",
        "username": "alice_01",
        "request": {
            "headers": {"x_auth_token": "t"},
            "notes": [f"jwt {TokenManager(SECRET).create_access_token('a')}"],
        },
    }

    redacted = redact_secrets(None, "info", event)

    assert redacted == {
        "event": "x",
        "password": "[REDACTED]",
        "new_password": "[REDACTED]",
        "auth_token": "[REDACTED]",
        "client_secret": "[REDACTED]",
        "Authorization": "[REDACTED]",
        "username": "alice_01",
        "request": {"headers": {"x_auth_token": "[REDACTED]"}, "notes": ["jwt [REDACTED]"]},
    }
