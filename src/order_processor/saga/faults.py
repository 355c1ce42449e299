"""Fault injection for the crash and compensation tests. Inert unless the environment
variable ORDER_PROCESSOR_FAULT is set, which production deployments never do:

- `crash-after=<step>`: the process kills itself with SIGKILL right after committing that
  saga step, before publishing its event or deleting the message;
- `fail-step=<step>`: that step raises a permanent error before committing (a
  `StepFailure`: the order, if there is one, ends FAILED `INJECTED_FAULT`);
- `break-step=<step>`: that step raises an unexpected error (a bug) before committing,
  every time: the command is retried until the redrive policy moves it to the DLQ;
- `clock-ahead=<seconds>`: the worker's clock runs that far ahead of the machine's (the
  expiry tests' seam: an order comes due without the test waiting for it in real time,
  so the verdict never depends on how fast the machine is).

A step is a `Step` value; any other name matches nothing.
"""

from __future__ import annotations

import math
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from order_processor.domain.base import utc_now
from order_processor.domain.steps import Step
from order_processor.exceptions import Reason, StepFailure

FAULT_VARIABLE = "ORDER_PROCESSOR_FAULT"
STEPS = frozenset(Step)


class InjectedFault(StepFailure):
    def __init__(self, message: str) -> None:
        super().__init__(Reason.INJECTED_FAULT, message)


class InjectedBug(RuntimeError):
    """Not an OrderProcessorError: what a bug in the saga looks like to the handler."""


@dataclass(frozen=True)
class Faults:
    crash_after: Step | None = None
    fail_step: Step | None = None
    break_step: Step | None = None
    clock_ahead: timedelta = timedelta(0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Faults:
        """Several, comma-separated: `fail-step=completed,crash-after=refunded`."""
        specs = (os.environ if environ is None else environ).get(FAULT_VARIABLE, "")
        found: dict[str, Step] = {}
        ahead = timedelta(0)
        for spec in specs.split(","):
            kind, _, step = spec.strip().partition("=")
            if kind in {"crash-after", "fail-step", "break-step"} and step in STEPS:
                found[kind.replace("-", "_")] = Step(step)
            elif kind == "clock-ahead":
                ahead = _seconds(step)
        return cls(**found, clock_ahead=ahead)

    def without_crashes(self) -> Faults:
        """These faults, but no crash: a batch decided in memory commits nothing to crash
        after (the group commit crashes after its own write)."""
        return replace(self, crash_after=None)

    def now(self) -> datetime:
        """The worker's clock: the machine's, ahead by `clock-ahead` when a test says so."""
        return utc_now() + self.clock_ahead

    def before(self, step: Step) -> None:
        if step == self.fail_step:
            raise InjectedFault(f"injected permanent failure at step {step}")
        if step == self.break_step:
            raise InjectedBug(f"injected bug at step {step}")

    def after_commit(self, step: Step) -> None:
        if step == self.crash_after:
            os.kill(os.getpid(), signal.SIGKILL)


def _seconds(text: str) -> timedelta:
    """A finite number of seconds; a test seam set wrong must not start a worker quietly
    on the machine's clock (the test would wait for nothing)."""
    seconds = float(text)
    if not math.isfinite(seconds):
        raise ValueError(f"{FAULT_VARIABLE}: clock-ahead={text} is not a number of seconds")
    return timedelta(seconds=seconds)
