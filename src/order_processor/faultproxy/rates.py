"""The fault plan: which of AWS's failures the proxy injects, how often, and the delays.

Written compactly, one `name=value` per fault, commas between:

    throttle=0.05,5xx=0.01,lost=0.01,reset=0.01,conflict=on,hold-ms=20,unprocessed=0.05,
    partial=0.05,stale-receipt=0.01,duplicate=0.02,lag-ms=2000,slow=0.01:500,latency-ms=8:2,
    expire-credentials-after=60

`outage=on` cuts every request (control plane and STS too): the endpoint away.

A rate is a probability in [0, 1] per request (per key or entry for `unprocessed`,
`partial`, `stale-receipt`; per message received for `duplicate`). `fault.Operation=rate`
overrides one operation's rate (`throttle.TransactWriteItems=0.1`). An empty plan injects
nothing: with `latency-ms` alone the proxy is a latency proxy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

PLAN_VARIABLE = "ORDER_PROCESSOR_FAULTS"
# AWS on a bad day, the plan the chaos run's --aws-faults and the benchmark's `faults`
# measurement use: 5 % throttling and 1 % 5xx on every operation, 1 % of answers lost
# after the request applied, 1 % of connections reset, 1 % of answers 800 ms late, every
# concurrent same-item transaction conflicting (each held 10 ms, as AWS's take), 5 % of
# batch entries unprocessed or failed, 1 % stale receipt handles, 2 % duplicate deliveries
# on standard queues, indexes up to 2 s behind their tables.
AWS_BAD_DAY = (
    "throttle=0.05,5xx=0.01,lost=0.01,reset=0.01,slow=0.01:800,conflict=on,hold-ms=10,"
    "unprocessed=0.05,partial=0.05,stale-receipt=0.01,duplicate=0.02,lag-ms=2000"
)

# Faults drawn with a probability, per request or per batch entry.
RATED = (
    "throttle",
    "5xx",
    "reset",
    "lost",
    "slow",
    "unprocessed",
    "partial",
    "stale-receipt",
    "duplicate",
)
THROTTLE_CODES = (
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
)


class PlanError(ValueError):
    """A fault plan that cannot be read."""


def _frozen(rates: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(rates))


@dataclass(frozen=True, kw_only=True)
class FaultPlan:
    rates: Mapping[str, float] = field(default_factory=lambda: _frozen({}))
    slow_ms: float = 0.0
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    conflict: bool = False
    # The endpoint away: every request, control plane and STS included, is cut.
    outage: bool = False
    hold_ms: float = 0.0
    lag_ms: float = 0.0
    lag_min_ms: float = 0.0  # each write reaches the index between this and lag_ms later
    expire_credentials_after: float | None = None
    # What a throttled DynamoDB data-plane request is answered; ThrottlingException is
    # what DynamoDB documents for control-plane operations called too fast.
    throttle_code: str = THROTTLE_CODES[0]

    def __post_init__(self) -> None:
        object.__setattr__(self, "rates", _frozen(self.rates))

    @classmethod
    def latency(cls, mean_ms: float, jitter_ms: float = 0.0) -> FaultPlan:
        """No faults, only a round trip like AWS's in one region."""
        return cls(latency_ms=mean_ms, jitter_ms=jitter_ms)

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        plan = cls()
        for part in (p.strip() for p in text.split(",")):
            if part:
                name, sep, value = part.partition("=")
                if not sep:
                    raise PlanError(f"{part!r}: expected name=value")
                plan = plan._with(name.strip(), value.strip())
        return plan

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FaultPlan:
        return cls.parse((os.environ if environ is None else environ).get(PLAN_VARIABLE, ""))

    def rate(self, fault: str, operation: str) -> float:
        return self.rates.get(f"{fault}.{operation}", self.rates.get(fault, 0.0))

    def injects(self, fault: str) -> bool:
        """Whether any operation has a rate above zero for this fault."""
        return any(r > 0 for name, r in self.rates.items() if name.split(".")[0] == fault)

    def text(self) -> str:
        """The compact form; `FaultPlan.parse(plan.text()) == plan`."""
        parts = [f"{name}={_number(rate)}" for name, rate in sorted(self.rates.items())]
        parts = [p + f":{_number(self.slow_ms)}" if p.startswith("slow") else p for p in parts]
        if self.latency_ms or self.jitter_ms:
            parts.append(f"latency-ms={_number(self.latency_ms)}:{_number(self.jitter_ms)}")
        if self.conflict:
            parts.append("conflict=on")
        if self.outage:
            parts.append("outage=on")
        for name, value in (
            ("hold-ms", self.hold_ms),
            ("lag-ms", self.lag_ms),
            ("lag-min-ms", self.lag_min_ms),
        ):
            if value:
                parts.append(f"{name}={_number(value)}")
        if self.expire_credentials_after is not None:
            parts.append(f"expire-credentials-after={_number(self.expire_credentials_after)}")
        if self.throttle_code != THROTTLE_CODES[0]:
            parts.append(f"throttle-code={self.throttle_code}")
        return ",".join(parts)

    def _with(self, name: str, value: str) -> FaultPlan:
        fault = name.split(".")[0]
        if fault in RATED:
            return self._with_rate(name, value)
        options: dict[str, Any]
        if name == "latency-ms":
            mean, _, jitter = value.partition(":")
            options = {"latency_ms": _ms(name, mean), "jitter_ms": _ms(name, jitter or "0")}
        elif name in ("conflict", "outage"):
            if value not in ("on", "off"):
                raise PlanError(f"{name}={value!r}: expected on or off")
            options = {name: value == "on"}
        elif name in ("hold-ms", "lag-ms", "lag-min-ms"):
            options = {name.replace("-ms", "_ms").replace("-", "_"): _ms(name, value)}
        elif name == "expire-credentials-after":
            options = {"expire_credentials_after": _ms(name, value)}
        elif name == "throttle-code":
            if value not in THROTTLE_CODES:
                raise PlanError(f"throttle-code={value!r}: expected one of {THROTTLE_CODES}")
            options = {"throttle_code": value}
        else:
            raise PlanError(f"unknown fault {name!r}; known: {', '.join(RATED)} and options")
        return replace(self, **options)

    def _with_rate(self, name: str, value: str) -> FaultPlan:
        rate_text, _, delay = value.partition(":")
        try:
            rate = float(rate_text)
        except ValueError:
            raise PlanError(f"{name}={value!r}: the rate is not a number") from None
        if not 0.0 <= rate <= 1.0:
            raise PlanError(f"{name}={value!r}: a rate is between 0 and 1")
        slow_ms = _ms(name, delay) if delay else self.slow_ms
        if delay and not name.startswith("slow"):
            raise PlanError(f"{name}={value!r}: only slow takes a delay (slow=rate:ms)")
        return replace(self, rates={**self.rates, name: rate}, slow_ms=slow_ms)


def _ms(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise PlanError(f"{name}={value!r}: not a number") from None
    if number < 0:
        raise PlanError(f"{name}={value!r}: must not be negative")
    return number


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
