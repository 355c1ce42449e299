"""Fault injection for the crash and compensation tests. Inert unless the environment
variable ORDER_PROCESSOR_FAULT is set, which production deployments never do:

- `crash-after=<step>`: the process kills itself with SIGKILL right after committing that
  saga step, before publishing its event or deleting the message;
- `fail-step=<step>`: that step raises a permanent error before committing (a
  `StepFailure`: the order, if there is one, ends FAILED `INJECTED_FAULT`);
- `break-step=<step>`: that step raises an unexpected error (a bug) before committing,
  every time: the command is retried until the redrive policy moves it to the DLQ.

A step is a `Step` value; any other name matches nothing.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass

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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Faults:
        """One or both, comma-separated: `fail-step=completed,crash-after=refunded`."""
        specs = (os.environ if environ is None else environ).get(FAULT_VARIABLE, "")
        found: dict[str, Step] = {}
        for spec in specs.split(","):
            kind, _, step = spec.strip().partition("=")
            if kind in {"crash-after", "fail-step", "break-step"} and step in STEPS:
                found[kind.replace("-", "_")] = Step(step)
        return cls(**found)

    def before(self, step: Step) -> None:
        if step == self.fail_step:
            raise InjectedFault(f"injected permanent failure at step {step}")
        if step == self.break_step:
            raise InjectedBug(f"injected bug at step {step}")

    def after_commit(self, step: Step) -> None:
        if step == self.crash_after:
            os.kill(os.getpid(), signal.SIGKILL)
