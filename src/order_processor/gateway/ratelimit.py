"""Token buckets per key (a user, an address), per replica: `rate` tokens a second up to
`burst`; a request takes one, and is refused with the seconds until the next token when
none is left. Bounded: the least recently used buckets are dropped first (a dropped
bucket is a full one, which only ever favours a client that was quiet)."""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_BUCKETS = 100_000


@dataclass
class RateLimiter:
    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)

    def take(self, key: str) -> float:
        """0 when a token was taken; otherwise the seconds to wait (Retry-After)."""
        now = self.clock()
        tokens, then = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        self._buckets[key] = (max(tokens - 1, 0.0) if tokens >= 1 else tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        if tokens >= 1:
            return 0.0
        return (1 - tokens) / self.rate


def retry_after(seconds: float) -> str:
    """Retry-After in whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


def network_of(address: str) -> str:
    """What per-address limits count: an IPv4 address, an IPv6 address's /64 (one client
    holds a /64: each of its addresses anew would dodge the limits)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv4Address):
        return str(parsed)
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
