"""Redaction of tokens, passwords and secrets from log events, whatever key or shape.

`Redactor` is a structlog processor (the worker logs' pipeline in
`observability.configure_json_logs`, and the audit log's). It returns a new event dict
holding only JSON values (dict, list, str, int, float, bool, None), so the renderer after it
never falls back to `repr` of something unredacted:

- a value under a sensitive key, at any depth, becomes "[REDACTED]" (None and booleans
  are kept: they carry no secret). A key is sensitive when, case-insensitively and with
  separators and camelCase ignored, it contains password, passwd, passphrase, secret,
  token, credential, cookie, signature, apikey, privatekey, jwt, bearer, authorization or
  sessionid, is exactly pwd, or has a word starting with "auth" (auth, authn, authz,
  x_auth, authToken, authentication). Words of the "author" family (author, author_id,
  authority, authorship) are NOT sensitive; authorization/authorisation is.
- every string (dict keys included) is scrubbed: known secret values (raw, JSON-escaped,
  URL-quoted, repr-escaped); JWT-shaped text (a base64url JSON segment of 10+ characters,
  `eyJ...`, then a dot and more: everything to the end of that base64url-and-dots run);
  any base64url JSON segment of 16+ characters standing alone (a token split into its
  parts); bcrypt hashes; `Bearer <x>`; `key=value`, `key: value`, `"key": "value"` (also
  JSON-escaped, `\\"key\\": \\"value\\"`, and `Authorization: Basic <x>`) whose key is
  sensitive; the password of `scheme://user:password@host`; and long base64url runs that
  mix upper and lower case (with a digit from 32 characters, without from 43, the length
  of an HMAC-SHA256 signature): a signature segment on its own, an API key.
- bytes are decoded (UTF-8, else latin-1) and scrubbed; dicts/mappings, lists, tuples,
  sets, pydantic models (`model_dump(mode="json")`) and dataclass instances are rendered
  and redacted recursively; datetimes become ISO strings, Decimal and UUID strings; any
  other object its scrubbed `repr`. Cycles become "[CYCLE]", nesting deeper than 32 levels
  "[TOO DEEP]", and an object that cannot be rendered (its repr raises) "<unrenderable T>":
  the redactor never raises.

Every pass is linear in the text's length (no pattern backtracks over a hostile run), and
passes that cannot apply to a short value are skipped: a typical worker line costs about
20 microseconds.

Known limits, by choice: free text is redacted generously after a sensitive word and a
separator ("invalid token: signature mismatch" keeps "invalid token: [REDACTED]
mismatch"; a traceback's source line `password = make()` loses its right-hand side), and a
secret with no key or shape in front of it (a password in a sentence) is only caught when
it is passed as a known secret.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import re
import sys
from collections import deque
from collections.abc import Iterable, Mapping, MutableMapping
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any, TextIO
from urllib.parse import quote, quote_plus
from uuid import UUID

from pydantic import BaseModel

REDACTED = "[REDACTED]"
MAX_DEPTH = 32
MIN_SECRET_LENGTH = 6  # shorter "secrets" would redact ordinary words; they are ignored

_KEY_SUBSTRINGS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "cookie",
    "signature",
    "apikey",
    "privatekey",
    "jwt",
    "bearer",
    "authorization",
    "authorisation",
    "sessionid",
)
_KEY_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")

# The base64url encoding of a JSON object starts with one of these: `{"`, `{ `, `{\n`, `{\r`,
# `{\t`. Token-shaped text is looked for inside maximal runs of base64url characters and
# dots (found in one linear pass; a regex anchored on every `eyJ` would be quadratic on
# hostile text such as `eyJeyJeyJ...`).
_JSON_SEGMENT_START = re.compile(r"eyJ|eyA|ewo|ew0|ewk")
_TOKEN_RUN = re.compile(r"(?<![A-Za-z0-9_.-])[A-Za-z0-9_.-]{12,}")
MIN_JWT_FIRST_SEGMENT = 10
MIN_JSON_SEGMENT = 16
_BCRYPT = re.compile(r"\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}")
_BEARER = re.compile(r"(?i)\b(bearer)(\s+|%20|\+)[^\s\"'\\,;]+")
_USERINFO = re.compile(r"(://[^/\s:@\"']+:)[^/\s@\"']+@")
_RUN = re.compile(r"(?<![A-Za-z0-9_+-])[A-Za-z0-9_+-]{32,}={0,2}")
MIN_SIGNATURE_LENGTH = 43  # HMAC-SHA256 in unpadded base64url

_KEY_BEFORE_SEPARATOR = re.compile(
    r"(?<![A-Za-z0-9_.-])(?P<key>[A-Za-z_][A-Za-z0-9_.-]{0,63})"
    r"(?P<close>\\{0,7}[\"']?)[ \t]{0,8}[:=][ \t]{0,8}"
)
_OPENING_QUOTE = re.compile(r"\\{0,7}[\"']")
_QUOTED_BODY = {
    '"': re.compile(r'(?:[^"\\]|\\.)*"', re.DOTALL),
    "'": re.compile(r"(?:[^'\\]|\\.)*'", re.DOTALL),
}
_AUTH_SCHEME = re.compile(r"(?i)(?:bearer|basic|digest|token|negotiate|aws4-hmac-sha256)\s+")
_UNQUOTED_VALUE = re.compile(r"[^\s,;&}\])'\"\\]*")


def is_sensitive_key(key: str) -> bool:
    """Whether a value under this key is redacted whole (see the module's docstring)."""
    return _sensitive_short_key(key) if len(key) <= 128 else _sensitive_key(key)


@functools.lru_cache(maxsize=4096)
def _sensitive_short_key(key: str) -> bool:
    return _sensitive_key(key)


def _sensitive_key(key: str) -> bool:
    words = [word.lower() for word in _KEY_WORDS.findall(key)]
    compact = "".join(words)
    if any(part in compact for part in _KEY_SUBSTRINGS) or "pwd" in words:
        return True
    return any(_is_auth_word(word) for word in words)


def _is_auth_word(word: str) -> bool:
    if not word.startswith("auth"):
        return False
    return not word.startswith("author") or word.startswith(("authoriz", "authoris"))


def _high_entropy(match: re.Match[str]) -> str:
    """A long base64url run mixing cases: with a digit from 32 characters on, without from
    43 (an HMAC-SHA256 signature; a random one has no digit once in ~1,500)."""
    run = match.group(0)
    body = run.rstrip("=")
    mixed_case = _mixed_case(body)
    if mixed_case and (len(body) >= MIN_SIGNATURE_LENGTH or any(c.isdigit() for c in body)):
        return REDACTED
    return run


def _mixed_case(text: str) -> bool:
    """Upper and lower case letters both (what `any(c.isupper())` and `any(c.islower())`
    say, in two passes in C rather than two generators)."""
    return text.lower() != text and text.upper() != text


def _token_shapes(match: re.Match[str]) -> str:
    """Within a run of base64url characters and dots: from a JSON segment of 10+
    characters followed by a dot and more, everything to the run's end (a JWT, whatever
    is glued after it); a JSON segment of 16+ characters on its own (a token's part)."""
    run = match.group(0)
    pieces: list[str] = []
    flushed = search_from = 0
    while (start := _JSON_SEGMENT_START.search(run, search_from)) is not None:
        begin = start.start()
        dot = run.find(".", begin)
        segment_end = dot if dot >= 0 else len(run)
        length = segment_end - begin
        if length >= MIN_JWT_FIRST_SEGMENT and 0 <= dot < len(run) - 1 and run[dot + 1] != ".":
            pieces += [run[flushed:begin], REDACTED]
            flushed = len(run)
            break
        if length >= MIN_JSON_SEGMENT:
            pieces += [run[flushed:begin], REDACTED]
            flushed = search_from = segment_end
        else:
            search_from = begin + 1
    pieces.append(run[flushed:])
    return "".join(pieces)


def _bracket_end(text: str, start: int) -> int:
    """The end of the {...} or [...] value starting at `start` (the text's end if open)."""
    depth = 0
    for index in range(start, len(text)):
        char = text[index]
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return index + 1
    return len(text)


def _redact_value(text: str, start: int) -> tuple[str, int]:
    """The replacement for the value that starts at `start`, and where that value ends
    (nothing to replace: ("", start))."""
    quote_match = _OPENING_QUOTE.match(text, start)
    if quote_match:
        mark = quote_match.group(0)
        if len(mark) == 1:
            body = _QUOTED_BODY[mark].match(text, quote_match.end())
            end = body.end() if body else len(text)
        else:  # an escaped quote (JSON inside a JSON string): up to the same escape
            found = text.find(mark, quote_match.end())
            end = found + len(mark) if found >= 0 else len(text)
        return f"{mark}{REDACTED}{mark}", end
    if text.startswith(("{", "["), start):
        return REDACTED, _bracket_end(text, start)
    scheme = _AUTH_SCHEME.match(text, start)
    value_start = scheme.end() if scheme else start
    if text.startswith(REDACTED, value_start):  # already done by an earlier pattern
        return "", start
    value_end = _UNQUOTED_VALUE.match(text, value_start)
    end = value_end.end() if value_end else value_start
    if end == value_start:
        return "", start
    return f"{text[start:value_start]}{REDACTED}", end


def _redact_key_values(text: str) -> str:
    """Values after a sensitive key in free text: `password=x`, `"token": "x"`, ..."""
    pieces: list[str] = []
    flushed = search_from = 0
    while (match := _KEY_BEFORE_SEPARATOR.search(text, search_from)) is not None:
        search_from = match.end()
        if not is_sensitive_key(match.group("key")):
            continue
        replacement, end = _redact_value(text, match.end())
        if end > match.end():
            pieces += [text[flushed : match.end()], replacement]
            flushed = search_from = end
    pieces.append(text[flushed:])
    return "".join(pieces)


def _secret_variants(secret: str) -> set[str]:
    return {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
    }


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrenderable {type(value).__qualname__}>"


class Redactor:
    """A structlog processor (and a standalone `redact(value)`/`scrub(text)`) that removes
    tokens, passwords and secrets; `secrets` are literal values to remove wherever they
    appear (e.g. the JWT secret)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        variants = {
            variant
            for secret in secrets
            if isinstance(secret, str) and len(secret) >= MIN_SECRET_LENGTH
            for variant in _secret_variants(secret)
        }
        ordered = sorted(variants, key=len, reverse=True)
        self._variants = tuple(ordered)  # looked for first: a plain search costs little
        self._known = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._shortest_known = len(ordered[-1]) if ordered else 0
        # Keys repeat from line to line (and are not secrets): their scrubbing is cached.
        self._scrub_key = functools.lru_cache(maxsize=2048)(self.scrub)

    def __repr__(self) -> str:
        return "Redactor()"  # never the secrets

    def __call__(
        self, _: Any, __: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        redacted = self.redact(event_dict)
        return redacted if isinstance(redacted, dict) else {"event": redacted}

    def scrub(self, text: str) -> str:
        """`text` with every secret-looking substring replaced. (Each pass is skipped when
        the text is too short for it or lacks what it needs, checked by a plain search: most
        log values are short identifiers, and a log line costs about 20 microseconds.)"""
        if (
            self._known is not None
            and len(text) >= self._shortest_known
            and any(variant in text for variant in self._variants)
        ):
            text = self._known.sub(REDACTED, text)
        if len(text) >= 12 and _JSON_SEGMENT_START.search(text):  # nothing to shape without
            text = _TOKEN_RUN.sub(_token_shapes, text)
        if "$" in text:
            text = _BCRYPT.sub(REDACTED, text)
        if len(text) >= 8 and "bearer" in text.lower():
            text = _BEARER.sub(rf"\1\2{REDACTED}", text)
        if "://" in text:
            text = _USERINFO.sub(rf"\1{REDACTED}@", text)
        if ":" in text or "=" in text:
            text = _redact_key_values(text)
        if len(text) >= 32 and _mixed_case(text):  # a run can mix cases only if the text does
            text = _RUN.sub(_high_entropy, text)
        return text

    def redact(self, value: object) -> Any:
        """A JSON-ready copy of `value` with every secret removed; never raises."""
        return self._render(value, 0, set())

    def _render(self, value: object, depth: int, seen: set[int]) -> Any:
        try:
            return self._render_unguarded(value, depth, seen)
        except Exception:  # a hostile __repr__, __iter__, model_dump, property...
            return f"<unrenderable {type(value).__qualname__}>"

    def _render_unguarded(self, value: object, depth: int, seen: set[int]) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            return self.scrub(_decode(bytes(value)))
        if depth >= MAX_DEPTH:
            return "[TOO DEEP]"
        if id(value) in seen:
            return "[CYCLE]"
        container = self._as_container(value)
        if container is None:
            return self._render_scalar(value, depth, seen)
        seen.add(id(value))
        try:
            if isinstance(container, Mapping):
                return self._render_mapping(container, depth, seen)
            return [self._render(item, depth + 1, seen) for item in container]
        finally:
            seen.discard(id(value))

    def _render_mapping(
        self, mapping: Mapping[Any, Any], depth: int, seen: set[int]
    ) -> dict[str, Any]:
        rendered: dict[str, Any] = {}
        for key, item in mapping.items():
            name = key if isinstance(key, str) else str(self._render(key, depth + 1, seen))
            shown = self._scrub_key(name) if len(name) <= 128 else self.scrub(name)
            if is_sensitive_key(name) and item is not None and not isinstance(item, bool):
                rendered[shown] = REDACTED
            else:
                rendered[shown] = self._render(item, depth + 1, seen)
        return rendered

    @staticmethod
    def _as_container(value: object) -> Mapping[Any, Any] | Iterable[Any] | None:
        if isinstance(value, Mapping):
            return value
        if isinstance(value, list | tuple | set | frozenset | deque):
            return value
        if isinstance(value, BaseModel):
            dumped: dict[str, Any] = value.model_dump(mode="json")
            return dumped
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
        return None

    def _render_scalar(self, value: object, depth: int, seen: set[int]) -> Any:
        if isinstance(value, Enum):
            return self._render(value.value, depth + 1, seen)
        if isinstance(value, datetime | date | time):
            return value.isoformat()
        if isinstance(value, Decimal | UUID):
            return str(value)
        return self.scrub(_safe_repr(value))


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


_DEFAULT = Redactor()


def redact_secrets(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The structlog processor without known secrets (patterns and keys only)."""
    return _DEFAULT(logger, method_name, event_dict)


class RedactingStreamHandler(logging.StreamHandler[TextIO]):
    """A StreamHandler whose error report never echoes the record: the standard library's
    `handleError` prints the message and its %-arguments (a token, a password) to
    standard error when a record cannot be formatted (e.g. `log.info("%s %s", token)`)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[0]
        line = json.dumps(
            {
                "event": "a log record could not be formatted; its content is withheld",
                "logger": str(getattr(record, "name", "?")),
                "level": str(getattr(record, "levelname", "?")).lower(),
                "error": error.__name__ if error is not None else None,
            }
        )
        try:
            self.stream.write(line + self.terminator)
            self.flush()
        except Exception:  # the stream itself is broken: nothing safe left to do
            return
