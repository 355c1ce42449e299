"""TokenManager on hostile input: only TokenExpiredException or TokenInvalidException ever
escape `verify_access_token`, lifetimes are bounded per role, and refusal messages carry
no attacker-supplied text."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from order_processor.exceptions import TokenExpiredException, TokenInvalidException
from order_processor.security.tokens import (
    MAX_TOKEN_LENGTH,
    ROLES,
    TokenClaims,
    TokenManager,
    TokenPolicy,
)

SECRET = "unit-test-secret-0123456789abcdefghijklmnop"
NOW = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)
NOW_TS = int(NOW.timestamp())
SUBJECT = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")
MARKER = "ATTACKER_MARKER_7f3a"
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Digest = Callable[[], Any]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign(
    header: str, payload: str, *, secret: str = SECRET, digest: Digest = hashlib.sha256
) -> str:
    """A token over these segments, signed here (not by python-jose's encoder, which would
    normalise what it is given)."""
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), digest).digest()
    return f"{header}.{payload}.{b64(signature)}"


def forge(
    claims: object,
    header: object = None,
    *,
    secret: str = SECRET,
    digest: Digest = hashlib.sha256,
) -> str:
    header = {"alg": "HS256", "typ": "JWT"} if header is None else header
    return sign(
        b64(json.dumps(header).encode()),
        b64(json.dumps(claims).encode()),
        secret=secret,
        digest=digest,
    )


def claims(**changes: object) -> dict[str, object]:
    """Valid customer claims issued now for 30 minutes; a change to None drops the claim."""
    base: dict[str, object] = {
        "sub": "alice_01",
        "role": "customer",
        "iat": NOW_TS,
        "exp": NOW_TS + 1800,
        "jti": "0123456789abcdef",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def manager(policy: TokenPolicy | None = None, now: datetime = NOW) -> TokenManager:
    if policy is None:
        return TokenManager(SECRET, clock=lambda: now)
    return TokenManager(SECRET, policy=policy, clock=lambda: now)


def refused(token: object, *, expired: bool = False) -> str:
    """Verify and expect a refusal; return its (checked) message."""
    kind = TokenExpiredException if expired else TokenInvalidException
    with pytest.raises(kind) as caught:
        manager().verify_access_token(token)
    message = caught.value.message
    assert len(message) <= 200
    assert SECRET not in message
    assert MARKER not in message
    return message


# --- the three escapes named in the brief --------------------------------------------


def test_a_header_of_1400_nested_arrays_is_invalid_not_a_recursion_error() -> None:
    header = b64(b"[" * 1400 + b"]" * 1400)
    refused(f"{header}.{b64(json.dumps(claims()).encode())}.c2ln")


def test_a_header_of_nested_arrays_within_the_size_limit_is_invalid() -> None:
    refused(f"{b64(b'[' * 380 + b']' * 380)}.e30.c2lnbmF0dXJl")


def test_a_signed_payload_of_1400_nested_arrays_is_invalid_not_a_recursion_error() -> None:
    token = sign(b64(b'{"alg":"HS256"}'), b64(b"[" * 1400 + b"]" * 1400))

    assert len(token) <= MAX_TOKEN_LENGTH  # so it does reach the JSON parser
    assert "not valid JSON" in refused(token)


def test_a_signed_payload_of_deeply_nested_objects_is_invalid() -> None:
    refused(sign(b64(b'{"alg":"HS256"}'), b64(b'{"a":' * 450 + b"1" + b"}" * 450)))


@pytest.mark.parametrize("exp", [1e20, 10**20, float(2**40), 2**33, -1, 0])
def test_a_signed_exp_out_of_range_is_invalid(exp: object) -> None:
    assert "iat and exp" in refused(forge(claims(exp=exp)))


def test_signed_exp_infinity_and_nan_are_invalid() -> None:
    header = b64(b'{"alg":"HS256"}')
    for constant in (b"Infinity", b"-Infinity", b"NaN"):
        payload = b'{"sub":"alice_01","role":"customer","iat":%d,"exp":%s}' % (NOW_TS, constant)
        refused(sign(header, b64(payload)))


@pytest.mark.parametrize("role", [["admin"], {"admin": 1}, 1, None, "root", "Admin", MARKER])
def test_a_signed_role_that_is_not_a_known_role_string_is_invalid(role: object) -> None:
    assert "role" in refused(forge(claims(role=role)))


# --- claims ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        12345,
        ["alice_01"],
        {"sub": "alice_01"},
        True,
        "",
        "alice\n",
        "al\x00ice",
        "alice\u202e",
        "ålice",
        "alice 01",
        "a" * 65,
        MARKER + "\t",
    ],
)
def test_a_subject_that_is_not_a_plain_identifier_is_invalid(subject: object) -> None:
    assert "subject" in refused(forge(claims(sub=subject)))


def test_a_missing_subject_is_invalid() -> None:
    assert "subject" in refused(forge(claims(sub=None)))


@pytest.mark.parametrize("value", [True, 1.0, float(NOW_TS), str(NOW_TS), [NOW_TS], None])
def test_iat_and_exp_must_be_integers(value: object) -> None:
    refused(forge(claims(iat=value)))
    refused(forge(claims(exp=value)))


def test_iat_more_than_30_seconds_in_the_future_is_refused_within_30_accepted() -> None:
    assert "future" in refused(forge(claims(iat=NOW_TS + 31, exp=NOW_TS + 1831)))

    verified = manager().verify_access_token(forge(claims(iat=NOW_TS + 30, exp=NOW_TS + 1830)))

    assert verified.issued_at == NOW + timedelta(seconds=30)


def test_nbf_in_the_future_or_malformed_is_refused() -> None:
    assert "nbf" in refused(forge(claims(nbf=NOW_TS + 31)))
    assert "nbf" in refused(forge(claims(nbf="soon")))
    assert manager().verify_access_token(forge(claims(nbf=NOW_TS - 5))).subject == "alice_01"


@pytest.mark.parametrize("role", ["customer", "admin"])
def test_a_lifetime_of_61_minutes_is_refused_60_accepted(role: str) -> None:
    assert "lifetime" in refused(forge(claims(role=role, exp=NOW_TS + 61 * 60)))

    verified = manager().verify_access_token(forge(claims(role=role, exp=NOW_TS + 60 * 60)))

    assert verified.expires_at == NOW + timedelta(minutes=60)


def test_a_service_lifetime_of_6_minutes_is_refused_5_accepted() -> None:
    assert "lifetime" in refused(forge(claims(role="service", exp=NOW_TS + 6 * 60)))

    verified = manager().verify_access_token(forge(claims(role="service", exp=NOW_TS + 5 * 60)))

    assert (verified.role, verified.expires_at) == ("service", NOW + timedelta(minutes=5))


def test_an_old_long_lived_token_is_refused_even_while_unexpired() -> None:
    issued = NOW_TS - 3 * 3600
    refused(forge(claims(iat=issued, exp=NOW_TS + 600)))


def test_exp_not_after_iat_is_invalid() -> None:
    assert "not after" in refused(forge(claims(iat=NOW_TS + 10, exp=NOW_TS + 10)))


def test_an_expired_token_raises_token_expired() -> None:
    refused(forge(claims(iat=NOW_TS - 60, exp=NOW_TS)), expired=True)
    refused(forge(claims(iat=NOW_TS - 60, exp=NOW_TS - 1)), expired=True)


@pytest.mark.parametrize("jti", [1, ["x"], "x" * 65, False])
def test_a_jti_that_is_not_a_short_string_is_invalid(jti: object) -> None:
    assert "jti" in refused(forge(claims(jti=jti)))


def test_a_token_without_jti_verifies_with_an_empty_token_id() -> None:
    assert manager().verify_access_token(forge(claims(jti=None))).token_id == ""


@pytest.mark.parametrize("payload", [[1, 2], "claims", 7, None])
def test_a_payload_that_is_not_a_json_object_is_invalid(payload: object) -> None:
    assert "not a JSON object" in refused(forge(payload))


def test_a_payload_that_is_not_utf8_is_invalid() -> None:
    refused(sign(b64(b'{"alg":"HS256"}'), b64(b"\xff\xfe{}")))


# --- header and algorithm -------------------------------------------------------------


def test_alg_none_is_refused_signed_or_not() -> None:
    header = b64(b'{"alg":"none","typ":"JWT"}')
    payload = b64(json.dumps(claims()).encode())
    assert "signature segment is empty" in refused(f"{header}.{payload}.")
    assert "algorithm" in refused(sign(header, payload))


def test_alg_hs512_is_refused_when_hs256_is_pinned() -> None:
    assert "algorithm HS256" in refused(forge(claims(), {"alg": "HS512"}, digest=hashlib.sha512))


@pytest.mark.parametrize(
    "header", [{"alg": "hs256"}, {"alg": ["HS256"]}, {"typ": "JWT"}, {"alg": MARKER}, {"alg": 256}]
)
def test_any_other_alg_is_refused(header: object) -> None:
    assert "algorithm" in refused(forge(claims(), header))


def test_a_header_that_is_a_json_list_or_scalar_is_invalid() -> None:
    assert "header is not a JSON object" in refused(forge(claims(), ["HS256"]))
    assert "header is not a JSON object" in refused(forge(claims(), "HS256"))


def test_a_header_that_is_not_json_is_invalid() -> None:
    payload = b64(json.dumps(claims()).encode())
    assert "header is not valid JSON" in refused(sign(b64(MARKER.encode()), payload))


def test_a_header_with_critical_extensions_is_refused() -> None:
    assert "critical" in refused(forge(claims(), {"alg": "HS256", "crit": ["b64"], "b64": False}))


def test_a_token_signed_with_another_secret_is_invalid() -> None:
    assert "signature" in refused(forge(claims(), secret="another-secret-" + "x" * 32))


def test_a_tampered_payload_is_invalid() -> None:
    header, _, signature = forge(claims()).split(".")
    tampered = b64(json.dumps(claims(role="admin")).encode())
    assert "signature" in refused(f"{header}.{tampered}.{signature}")


# --- encoding and shape ---------------------------------------------------------------


def genuine() -> str:
    return manager().create_access_token("alice_01")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t.replace(".", "!.", 1),  # outside the alphabet
        lambda t: t + "=",  # padding
        lambda t: t.split(".")[0] + "==." + ".".join(t.split(".")[1:]),
        lambda t: t[:-1] + "+",  # standard base64, not base64url
        lambda t: t + "AA",  # a signature segment of length 1 mod 4
        lambda t: t.replace(".", " .", 1),
    ],
)
def test_bad_base64_is_invalid(mangle: Callable[[str], str]) -> None:
    refused(mangle(genuine()))


def test_non_canonical_base64_is_invalid() -> None:
    header, payload, signature = genuine().split(".")
    # A 32-byte signature is 43 characters whose last one carries 2 unused bits.
    last = signature[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    other = alphabet[alphabet.index(last) ^ 1]
    assert "canonical" in refused(f"{header}.{payload}.{signature[:-1]}{other}")


@pytest.mark.parametrize("token", ["", ".", "..", "a.b", "a.b.c.d", "not.a.token", "eyJ.eyJ.AAAA"])
def test_wrong_shapes_are_invalid(token: str) -> None:
    refused(token)


def test_non_ascii_is_invalid() -> None:
    header, payload, signature = genuine().split(".")
    assert "ASCII" in refused(f"{header}.{payload}é.{signature}")
    assert "ASCII" in refused(f"{header}.{payload}.{signature}\u200b")


def test_a_10_kb_token_is_invalid_before_any_decoding() -> None:
    assert "longer than 4096" in refused("a" * 10_240)
    big = forge(claims(jti=None, padding="x" * 8000))
    assert "longer than 4096" in refused(big)


@pytest.mark.parametrize(
    "token", [None, 42, 4.2, ["a", "b", "c"], {"auth": "x"}, object(), b"a.b.c", bytearray(b"x")]
)
def test_non_strings_are_invalid(token: object) -> None:
    assert "must be a string" in refused(token)


def test_a_genuine_token_as_bytes_is_invalid() -> None:
    refused(genuine().encode())


def test_verification_uses_the_injected_clock() -> None:
    token = manager(now=NOW).create_access_token("alice_01")

    assert manager(now=NOW + timedelta(minutes=29)).verify_access_token(token)
    with pytest.raises(TokenExpiredException):
        manager(now=NOW + timedelta(minutes=30)).verify_access_token(token)


# --- creation -------------------------------------------------------------------------


def test_default_lifetimes_per_role() -> None:
    tokens = manager()
    for role, minutes in (("customer", 30), ("admin", 30), ("service", 5)):
        verified = tokens.verify_access_token(tokens.create_access_token("svc:matcher", role))
        assert verified.expires_at - verified.issued_at == timedelta(minutes=minutes)


def test_max_lifetime_for_each_role() -> None:
    tokens = manager()
    assert tokens.max_lifetime_for("customer") == timedelta(minutes=60)
    assert tokens.max_lifetime_for("admin") == timedelta(minutes=60)
    assert tokens.max_lifetime_for("service") == timedelta(minutes=5)
    with pytest.raises(ValueError, match="unknown role"):
        tokens.max_lifetime_for("root")


def test_creating_beyond_the_maximum_is_a_value_error() -> None:
    tokens = manager()
    with pytest.raises(ValueError, match="at most"):
        tokens.create_access_token("alice_01", expires_delta=timedelta(minutes=61))
    with pytest.raises(ValueError, match="at most"):
        tokens.create_access_token("limit-matcher", "service", timedelta(minutes=6))
    assert tokens.create_access_token("alice_01", expires_delta=timedelta(minutes=60))
    assert tokens.create_access_token("limit-matcher", "service", timedelta(minutes=5))


def test_negative_lifetimes_mint_expired_tokens() -> None:
    tokens = manager()
    token = tokens.create_access_token("alice_01", expires_delta=timedelta(seconds=-5))

    with pytest.raises(TokenExpiredException):
        tokens.verify_access_token(token)
    assert tokens.is_token_expired(token)


@pytest.mark.parametrize("subject", ["", "alice 01", "a" * 65, "al\nice", "ålice", 7])
def test_creating_for_a_subject_that_is_not_a_plain_identifier_is_a_value_error(
    subject: Any,
) -> None:
    with pytest.raises(ValueError, match="subject"):
        manager().create_access_token(subject)


@pytest.mark.parametrize("role", ["root", "", "Customer", None])
def test_creating_for_an_unknown_role_is_a_value_error(role: Any) -> None:
    with pytest.raises(ValueError, match="unknown role"):
        manager().create_access_token("alice_01", role)


def test_a_custom_policy_bounds_lifetimes() -> None:
    policy = TokenPolicy(
        customer_lifetime=timedelta(hours=1),
        max_lifetime=timedelta(hours=2),
        service_lifetime=timedelta(minutes=1),
        clock_skew=timedelta(seconds=0),
    )
    tokens = manager(policy)

    assert tokens.verify_access_token(forge(claims(exp=NOW_TS + 7200)))
    assert tokens.verify_access_token(tokens.create_access_token("alice_01")).expires_at == (
        NOW + timedelta(hours=1)
    )
    with pytest.raises(TokenInvalidException, match="future"):
        tokens.verify_access_token(forge(claims(iat=NOW_TS + 1, exp=NOW_TS + 60)))
    with pytest.raises(TokenInvalidException, match="lifetime"):
        tokens.verify_access_token(forge(claims(role="service", exp=NOW_TS + 61)))


@pytest.mark.parametrize(
    "changes",
    [
        {"customer_lifetime": timedelta(hours=2)},  # beyond max_lifetime
        {"service_lifetime": timedelta(0)},
        {"clock_skew": timedelta(seconds=-1)},
    ],
)
def test_an_inconsistent_policy_is_a_value_error(changes: dict[str, timedelta]) -> None:
    with pytest.raises(ValueError, match="lifetime|skew"):
        TokenPolicy(**changes)


def test_unsupported_algorithms_and_unusable_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        TokenManager(SECRET, algorithm="none")
    with pytest.raises(ValueError, match="HMAC"):
        TokenManager("-----BEGIN PUBLIC KEY-----" + "A" * 40)
    assert SECRET not in repr(TokenManager(SECRET))


def test_hs512_when_pinned_round_trips() -> None:
    tokens = TokenManager(SECRET, algorithm="HS512", clock=lambda: NOW)
    token = tokens.create_access_token("alice_01")

    assert tokens.verify_access_token(token).subject == "alice_01"
    with pytest.raises(TokenInvalidException, match="HS512"):
        tokens.verify_access_token(forge(claims()))


# --- the unverified helpers -----------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [None, 5, b"x", "", "a.b.c", "a" * 10_000, f"{b64(b'[' * 700)}.{b64(b'[' * 700)}.AAAA"],
)
def test_decode_token_payload_and_is_token_expired_are_safe(token: object) -> None:
    tokens = manager()
    with pytest.raises(TokenInvalidException):
        tokens.decode_token_payload(token)
    assert tokens.is_token_expired(token) is True


def test_is_token_expired_reads_the_unverified_expiry() -> None:
    tokens = manager()
    assert tokens.is_token_expired(forge(claims(exp=NOW_TS - 1)))
    assert not tokens.is_token_expired(forge(claims(exp=NOW_TS + 1)))
    assert tokens.is_token_expired(forge(claims(exp=1e20)))
    assert tokens.is_token_expired(forge(claims(exp=None)))
    assert tokens.decode_token_payload(forge(claims()))["sub"] == "alice_01"


# --- properties -----------------------------------------------------------------------


def check_outcome(tokens: TokenManager, token: object) -> TokenClaims | None:
    """Verify: a result, or one of the two token exceptions with a short, clean message."""
    refusal: TokenExpiredException | TokenInvalidException
    try:
        return tokens.verify_access_token(token)
    except (TokenExpiredException, TokenInvalidException) as exc:
        refusal = exc
    assert len(refusal.message) <= 200
    assert SECRET not in refusal.message
    return None


B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@PROPERTY
@given(
    st.one_of(
        st.text(),
        st.text(alphabet=B64URL + ".=+/ ", max_size=200),
        st.lists(st.text(alphabet=B64URL, max_size=60), min_size=1, max_size=5).map(".".join),
    )
)
def test_arbitrary_text_never_escapes_as_another_exception(text: str) -> None:
    tokens = manager()
    assert check_outcome(tokens, text) is None
    assert isinstance(tokens.is_token_expired(text), bool)


@PROPERTY
@given(st.binary())
def test_arbitrary_binary_never_escapes_as_another_exception(data: bytes) -> None:
    tokens = manager()
    assert check_outcome(tokens, data) is None
    assert check_outcome(tokens, data.decode("latin-1")) is None


@PROPERTY
@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.lists(st.text(max_size=5), max_size=3),
        st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
        st.tuples(st.text(), st.text(), st.text()),
    )
)
def test_arbitrary_objects_never_escape_as_another_exception(value: object) -> None:
    assert check_outcome(manager(), value) is None


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=16),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=24,
)


@dataclass(frozen=True)
class RawJSON:
    text: str


deep_json = st.builds(
    lambda depth, opener: RawJSON(
        opener * depth + ("]" * depth if opener == "[" else "1" + "}" * depth)
    ),
    st.integers(min_value=1, max_value=1400),
    st.sampled_from(["[", '{"a":']),
)
timestamps = st.one_of(
    st.integers(min_value=NOW_TS - 7200, max_value=NOW_TS + 7200),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.sampled_from([0, 2**33, 2**33 - 1, True, 1e20, 10**20, float(NOW_TS), str(NOW_TS)]),
    json_scalars,
)
subjects = st.one_of(st.from_regex(SUBJECT, fullmatch=True), st.text(max_size=70), json_values)
claim_sets = st.fixed_dictionaries(
    {"sub": subjects, "role": st.one_of(st.sampled_from(sorted(ROLES)), json_values)},
    optional={
        "iat": timestamps,
        "exp": timestamps,
        "nbf": timestamps,
        "jti": st.one_of(st.text(max_size=70), json_values),
        "extra": json_values,
    },
)
# Claims that are mostly valid, so that verification succeeds often enough to check it.
plausible_claims = st.builds(
    lambda sub, role, iat_offset, lifetime, jti: {
        "sub": sub,
        "role": role,
        "iat": NOW_TS + iat_offset,
        "exp": NOW_TS + iat_offset + lifetime,
        "jti": jti,
    },
    st.from_regex(SUBJECT, fullmatch=True),
    st.sampled_from(sorted(ROLES)),
    st.integers(min_value=-1000, max_value=60),
    st.integers(min_value=-10, max_value=4000),
    st.text(max_size=70),
)
headers = st.one_of(
    st.fixed_dictionaries(
        {"alg": st.sampled_from(["HS256", "HS256", "HS512", "none", "hs256", "", None])},
        optional={"typ": json_values, "crit": json_values, "kid": json_values},
    ),
    json_values,
)


def encode_json(value: object) -> str:
    if isinstance(value, RawJSON):
        return b64(value.text.encode())
    return b64(json.dumps(value).encode())


VALID_HEADER = st.sampled_from([{"alg": "HS256", "typ": "JWT"}, {"alg": "HS256"}])


@PROPERTY
@given(
    st.one_of(VALID_HEADER, headers, deep_json),
    st.one_of(plausible_claims, claim_sets, json_values, deep_json),
)
def test_signed_arbitrary_json_never_escapes_and_whatever_verifies_obeys_the_rules(
    header: object, payload: object
) -> None:
    check_signed(header, payload)


@PROPERTY
@given(VALID_HEADER, st.one_of(plausible_claims, plausible_claims, claim_sets))
def test_signed_claim_sets_never_escape_and_whatever_verifies_obeys_the_rules(
    header: object, payload: object
) -> None:
    check_signed(header, payload)


def check_signed(header: object, payload: object) -> None:
    """Sign with the right secret; whatever verifies satisfies every rule."""
    tokens = manager()
    token = sign(encode_json(header), encode_json(payload))

    verified = check_outcome(tokens, token)

    if verified is None:
        return
    assert isinstance(header, dict)
    assert header["alg"] == "HS256"
    assert "crit" not in header
    assert isinstance(payload, dict)
    assert SUBJECT.fullmatch(verified.subject)
    assert verified.subject == payload["sub"]
    assert verified.role in ROLES
    assert verified.role == payload["role"]
    iat, exp = payload["iat"], payload["exp"]
    assert type(iat) is int
    assert type(exp) is int
    assert 0 < iat < exp < 2**33
    assert (verified.issued_at, verified.expires_at) == (
        datetime.fromtimestamp(iat, UTC),
        datetime.fromtimestamp(exp, UTC),
    )
    assert verified.expires_at > NOW
    assert timedelta(seconds=exp - iat) <= tokens.max_lifetime_for(verified.role)
    assert verified.issued_at <= NOW + timedelta(seconds=30)
    assert isinstance(verified.token_id, str)
    assert len(verified.token_id) <= 64


@PROPERTY
@given(
    st.from_regex(SUBJECT, fullmatch=True),
    st.sampled_from(sorted(ROLES)),
    st.data(),
    st.integers(min_value=0, max_value=999_999),
)
def test_created_tokens_round_trip_within_bounds(
    subject: str, role: str, data: st.DataObject, microsecond: int
) -> None:
    now = NOW.replace(microsecond=microsecond)
    tokens = manager(now=now)
    maximum = tokens.max_lifetime_for(role)
    lifetime = data.draw(st.timedeltas(min_value=timedelta(seconds=1), max_value=maximum))

    verified = tokens.verify_access_token(tokens.create_access_token(subject, role, lifetime))

    issued = datetime.fromtimestamp(int(now.timestamp()), UTC)
    assert (verified.subject, verified.role, verified.issued_at) == (subject, role, issued)
    assert verified.expires_at == issued + timedelta(seconds=lifetime // timedelta(seconds=1))
    assert len(verified.token_id) == 32
    too_long = data.draw(st.timedeltas(min_value=maximum + timedelta(microseconds=1)))
    with pytest.raises(ValueError, match="at most"):
        tokens.create_access_token(subject, role, too_long)
