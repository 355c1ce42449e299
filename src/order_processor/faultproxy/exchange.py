"""One request through the proxy, and what the proxy keeps between requests."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from order_processor.faultproxy.calls import Call
from order_processor.faultproxy.conflicts import ItemsInFlight
from order_processor.faultproxy.errors import Answer
from order_processor.faultproxy.items import KeySchemas
from order_processor.faultproxy.lag import IndexLag
from order_processor.faultproxy.rates import FaultPlan
from order_processor.faultproxy.redelivery import Redeliveries
from order_processor.faultproxy.stats import FaultCounts
from order_processor.faultproxy.tokens import RequestTokens
from order_processor.faultproxy.upstream import Upstream


@dataclass
class ProxyState:
    upstream: Upstream
    plan: FaultPlan
    rng: random.Random
    schemas: KeySchemas
    lag: IndexLag
    counts: FaultCounts = field(default_factory=FaultCounts)
    in_flight: ItemsInFlight = field(default_factory=ItemsInFlight)
    tokens: RequestTokens = field(default_factory=RequestTokens)
    redeliveries: Redeliveries = field(default_factory=Redeliveries)
    expired_keys: set[str] = field(default_factory=set)
    last_key: str = ""
    plan_since: float = field(default_factory=time.monotonic)
    scheduled_expiry_done: bool = False

    @classmethod
    def start(cls, upstream: Upstream, plan: FaultPlan, seed: int) -> ProxyState:
        rng = random.Random(seed)  # noqa: S311 (dice for faults, reproducible by design)
        return cls(upstream, plan, rng, KeySchemas(upstream), IndexLag(upstream))

    def replan(self, plan: FaultPlan, seed: int | None) -> None:
        self.plan = plan
        if seed is not None:
            self.rng.seed(seed)
        # A new plan is a new scenario: no key is expired, the expiry clock starts again.
        self.expired_keys.clear()
        self.plan_since = time.monotonic()
        self.scheduled_expiry_done = False

    def lag_seconds(self) -> float:
        low = min(self.plan.lag_min_ms, self.plan.lag_ms)
        return self.rng.uniform(low, self.plan.lag_ms) / 1000


@dataclass(frozen=True)
class Exchange:
    state: ProxyState
    call: Call
    method: str
    path_qs: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def plan(self) -> FaultPlan:
        return self.state.plan

    def draw(self, fault: str) -> bool:
        """Whether this fault strikes now (one draw of the seeded generator, if its rate
        for this operation is above zero)."""
        rate = self.state.plan.rate(fault, self.call.operation)
        return rate > 0 and self.state.rng.random() < rate

    def inject(self, fault: str, times: int = 1) -> None:
        self.state.counts.count(fault, self.call.operation, times)

    async def forward(self, body: bytes | None = None) -> Answer:
        self.state.counts.forwarded += 1
        return await self.state.upstream.send(
            self.method, self.path_qs, self.headers, self.body if body is None else body
        )
