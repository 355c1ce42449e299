"""The fault hook's clock seam: the expiry tests move the worker's clock instead of
waiting for it in real time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from order_processor.domain.base import utc_now
from order_processor.saga.faults import FAULT_VARIABLE, Faults


def test_a_clock_ahead_moves_the_workers_clock_by_that_many_seconds() -> None:
    faults = Faults.from_env({FAULT_VARIABLE: "crash-after=expired,clock-ahead=7200"})

    before = utc_now()
    now = faults.now()

    assert faults.crash_after == "expired"
    assert before + timedelta(hours=2) <= now <= utc_now() + timedelta(hours=2)


def test_without_the_hook_the_worker_keeps_the_machines_clock() -> None:
    before = utc_now()
    now = Faults.from_env({}).now()

    assert before <= now <= utc_now()


@pytest.mark.parametrize("seconds", ["soon", "inf", "nan"])
def test_a_clock_ahead_that_is_not_a_number_of_seconds_is_refused(seconds: str) -> None:
    with pytest.raises(ValueError, match=seconds):
        Faults.from_env({FAULT_VARIABLE: f"clock-ahead={seconds}"})
