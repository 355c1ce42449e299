"""The gateway's limits, one frozen value (the bootstrap fills it from the settings)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GatewayLimits:
    max_body_bytes: int = 16 * 1024
    login_attempts: int = 5  # failures of one username before it is locked
    login_attempts_per_address: int = 20  # failures from one address before it is locked
    login_lockout_seconds: float = 900.0
    rate_per_user: float = 20.0  # requests a second, per user ...
    burst_per_user: float = 40.0  # ... with this many at once
    rate_per_address: float = 50.0
    burst_per_address: float = 100.0
    streams_per_user: int = 5
    streams_per_address: int = 20
    heartbeat_seconds: float = 15.0
    stream_retry_ms: int = 3000  # SSE `retry:`: when a client reconnects
    stream_wait_seconds: float = 1.0  # the dispatcher's longest wait for events
    page_limit: int = 100  # the largest page of orders
