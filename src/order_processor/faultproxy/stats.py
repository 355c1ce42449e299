"""What the proxy did: requests seen, requests forwarded, and faults injected per kind and
operation (a batch entry or key withheld counts one)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FaultCounts:
    requests: int = 0
    forwarded: int = 0
    _faults: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def count(self, kind: str, operation: str, times: int = 1) -> None:
        self._faults[kind][operation] += times

    def document(self) -> dict[str, Any]:
        faults = {kind: dict(ops) for kind, ops in sorted(self._faults.items())}
        return {"requests": self.requests, "forwarded": self.forwarded, "faults": faults}


@dataclass(frozen=True)
class ProxyStats:
    """A snapshot of the counts, as GET /_faultproxy/stats reports them."""

    requests: int
    forwarded: int
    faults: Mapping[str, Mapping[str, int]]

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> ProxyStats:
        return cls(document["requests"], document["forwarded"], document["faults"])

    def injected(self, kind: str, operation: str | None = None) -> int:
        """How many faults of this kind, for one operation or in all."""
        by_operation = self.faults.get(kind, {})
        if operation is not None:
            return by_operation.get(operation, 0)
        return sum(by_operation.values())
