"""TransactWriteItems' ClientRequestToken, kept as DynamoDB keeps it: for ten minutes a
token names one request. The same token with the same request is answered as the first
time, without applying it again; with another request it is refused
(IdempotentParameterMismatchException); while the first is still in flight, the replay
is refused with TransactionInProgressException. A token whose request failed names
nothing, so it can be used again.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from order_processor.faultproxy.errors import Answer

TOKEN_LIFETIME = 600.0


@dataclass(frozen=True)
class Fresh:
    """The token is new (or its earlier request failed): forward the request."""


@dataclass(frozen=True)
class Replay:
    answer: Answer


@dataclass(frozen=True)
class Mismatch:
    """The token already names a different request."""


@dataclass(frozen=True)
class InProgress:
    """The token's first request is still in flight."""


Claim = Fresh | Replay | Mismatch | InProgress


def request_digest(payload: dict[str, Any]) -> str:
    """The request's parameters, the token itself left out."""
    rest = {k: v for k, v in payload.items() if k != "ClientRequestToken"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()


@dataclass
class _Named:
    digest: str
    since: float
    answer: Answer | None = None  # None while the first request is in flight


@dataclass
class RequestTokens:
    _named: OrderedDict[str, _Named] = field(default_factory=OrderedDict)

    def claim(self, token: str, digest: str, now: float) -> Claim:
        self._forget_before(now - TOKEN_LIFETIME)
        named = self._named.get(token)
        if named is None:
            self._named[token] = _Named(digest, now)
            return Fresh()
        if named.digest != digest:
            return Mismatch()
        if named.answer is None:
            return InProgress()
        return Replay(named.answer)

    def settle(self, token: str, answer: Answer) -> None:
        """The first request's answer: kept when it succeeded, else the token is free."""
        named = self._named.get(token)
        if named is not None and answer.status == 200:
            named.answer = answer
        else:
            self._named.pop(token, None)

    def _forget_before(self, moment: float) -> None:
        # Claims arrive in time order, so the oldest are first.
        while self._named and next(iter(self._named.values())).since < moment:
            self._named.popitem(last=False)
