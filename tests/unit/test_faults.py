"""The fault hook (ORDER_PROCESSOR_FAULT) names steps by the values stored and counted
(`Step`), and its permanent failure ends an order as any step that failed for good."""

from __future__ import annotations

from order_processor.domain.steps import Step
from order_processor.exceptions import Reason
from order_processor.saga.decision import failure_reason
from order_processor.saga.faults import FAULT_VARIABLE, Faults, InjectedFault


def test_the_fault_variable_names_steps_by_their_stored_values() -> None:
    spec = "fail-step=completed, crash-after=refunded,break-step=trailed"

    faults = Faults.from_env({FAULT_VARIABLE: spec})

    assert faults == Faults(
        crash_after=Step.REFUNDED, fail_step=Step.COMPLETED, break_step=Step.TRAILED
    )


def test_a_name_that_is_no_step_injects_nothing() -> None:
    assert Faults.from_env({FAULT_VARIABLE: "crash-after=sold,fail-step=,break=held"}) == Faults()


def test_an_injected_failure_fails_the_order_injected_fault() -> None:
    assert failure_reason(InjectedFault("injected")) is Reason.INJECTED_FAULT
