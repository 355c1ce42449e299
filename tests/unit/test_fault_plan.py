"""The fault plan's compact syntax: what each setting means, and what is refused."""

from __future__ import annotations

import pytest

from order_processor.faultproxy.rates import FaultPlan, PlanError

EXAMPLE = (
    "throttle=0.05,5xx=0.01,lost=0.01,reset=0.01,conflict=on,unprocessed=0.05,partial=0.05,"
    "lag-ms=2000,slow=0.01:500,latency-ms=8:2,expire-credentials-after=60"
)


def test_the_briefs_example_plan_reads_as_rates_options_and_delays() -> None:
    plan = FaultPlan.parse(EXAMPLE)
    assert plan.rate("throttle", "PutItem") == 0.05
    assert (plan.rate("slow", "Query"), plan.slow_ms) == (0.01, 500)
    assert (plan.latency_ms, plan.jitter_ms, plan.lag_ms) == (8, 2, 2000)
    assert plan.conflict
    assert plan.expire_credentials_after == 60
    assert plan.rate("duplicate", "ReceiveMessage") == 0.0


def test_an_operations_own_rate_overrides_the_faults_rate_for_it_alone() -> None:
    plan = FaultPlan.parse("throttle=0.05,throttle.TransactWriteItems=0.1")
    assert plan.rate("throttle", "TransactWriteItems") == 0.1
    assert plan.rate("throttle", "PutItem") == 0.05
    assert FaultPlan.parse("lost.PutItem=1").injects("lost")


def test_a_plan_written_out_reads_back_the_same() -> None:
    plan = FaultPlan.parse(
        EXAMPLE + ",hold-ms=25,throttle.Query=1,throttle-code=RequestLimitExceeded"
    )
    assert FaultPlan.parse(plan.text()) == plan


def test_an_empty_plan_injects_nothing_and_the_latency_plan_only_delays() -> None:
    assert FaultPlan.parse("") == FaultPlan() == FaultPlan.from_env({})
    assert FaultPlan.latency(8, 2).text() == "latency-ms=8:2"
    assert FaultPlan.from_env({"ORDER_PROCESSOR_FAULTS": "reset=0.5"}).rate("reset", "Scan") == 0.5


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("throttle=1.5", "between 0 and 1"),
        ("throttle=often", "not a number"),
        ("flood=0.1", "unknown fault"),
        ("conflict=maybe", "on or off"),
        ("lag-ms=-1", "must not be negative"),
        ("throttle", "expected name=value"),
        ("lost=0.1:300", "only slow takes a delay"),
        ("throttle-code=SlowDown", "expected one of"),
    ],
)
def test_an_unreadable_setting_is_refused_with_the_reason(text: str, complaint: str) -> None:
    with pytest.raises(PlanError, match=complaint):
        FaultPlan.parse(text)
