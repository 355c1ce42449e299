"""What the gateway is built from: its ports, its limits and its secrets, one frozen
value handed to `create_app` (the bootstrap builds it; tests build it over fakes)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request

from order_processor.domain.ports import MetricsSink, NoMetrics
from order_processor.gateway.limits import GatewayLimits
from order_processor.gateway.memory import MemoryAttempts, MemoryReceipts
from order_processor.gateway.ports import Attempts, CommandSender, GatewayReads, Receipts
from order_processor.gateway.ratelimit import RateLimiter
from order_processor.readmodel.ports import ReadModel
from order_processor.security.audit import AuditLogger
from order_processor.security.tokens import TokenManager

if TYPE_CHECKING:
    from order_processor.gateway.stream import Dispatcher


@dataclass(frozen=True)
class Gateway:
    """`secret`: the key of the order ids and page cursors the gateway mints (the
    bootstrap derives it from the JWT secret, so every replica mints the same ids)."""

    reads: GatewayReads
    commands: CommandSender
    read_model: ReadModel
    tokens: TokenManager
    secret: bytes
    limits: GatewayLimits = field(default_factory=GatewayLimits)
    audit: AuditLogger = field(default_factory=AuditLogger)
    attempts: Attempts | None = None
    receipts: Receipts = field(default_factory=MemoryReceipts)
    metrics: MetricsSink = field(default_factory=NoMetrics)

    def login_attempts(self) -> Attempts:
        return self.attempts or MemoryAttempts(
            self.limits.login_attempts, self.limits.login_lockout_seconds
        )


@dataclass
class Runtime:
    """What one app keeps while it serves: the per-user rate buckets, the failed logins
    of usernames and of addresses (per replica), the stream's dispatcher, the logins
    being checked per address."""

    gateway: Gateway
    per_user: RateLimiter
    user_attempts: Attempts
    address_attempts: Attempts
    dispatcher: Dispatcher
    logins_in_flight: Counter[str] = field(default_factory=Counter)


async def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime
