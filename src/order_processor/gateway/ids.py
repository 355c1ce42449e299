"""Ids the gateway mints, and the page cursors it signs.

- An order's id is `HMAC(gateway secret, username, Idempotency-Key)`: the same for a
  retry of the same request (so a retry never makes a second order: the worker knows the
  id), different for another user's identical key, and unguessable by anyone without the
  secret (nobody can take an id first or guess another's).
- A page cursor is the store's cursor with a MAC over it, the user and the filter: a
  client cannot forge one, nor page another user's partition with their own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from order_processor.domain.base import ID_MAX_LENGTH

# The command ids' own alphabet (domain.base.ID_PATTERN), kept short enough that a
# derived record id still fits.
IDEMPOTENCY_KEY = re.compile(rf"^[A-Za-z0-9_.:-]{{1,{ID_MAX_LENGTH}}}$")
_UNIT = "\x1f"  # the separator of the MACed parts: no part may hold it


def order_id_for(secret: bytes, username: str, key: str) -> str:
    digest = hmac.new(secret, f"order{_UNIT}{username}{_UNIT}{key}".encode(), hashlib.sha256)
    return digest.hexdigest()[:40]


class CursorRefused(ValueError):
    """Not a cursor this gateway issued for this user and this filter."""


def seal_cursor(secret: bytes, username: str, scope: str, cursor: str) -> str:
    body = base64.urlsafe_b64encode(cursor.encode()).decode().rstrip("=")
    return f"{body}.{_mac(secret, username, scope, cursor)}"


def open_cursor(secret: bytes, username: str, scope: str, sealed: str) -> str:
    body, _, mac = sealed.partition(".")
    try:
        cursor = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    except (binascii.Error, ValueError) as exc:
        raise CursorRefused("the cursor is not one this gateway issued") from exc
    if not hmac.compare_digest(mac, _mac(secret, username, scope, cursor)):
        raise CursorRefused("the cursor is not one this gateway issued")
    return cursor


def _mac(secret: bytes, username: str, scope: str, cursor: str) -> str:
    message = f"cursor{_UNIT}{username}{_UNIT}{scope}{_UNIT}{cursor}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
