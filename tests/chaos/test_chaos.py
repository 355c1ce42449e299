"""The short chaos run of the normal suite: 8 traders, about 120 commands over 25 s
(market, limit and conditional orders, some of assets quoted in euros and yen, some buys
paid in another currency, cancels, deposits and withdrawals in four currencies,
conversions among them, exact and conflicting repeats) beside a price move per
asset per second and a rate move per currency every 2 s, while two order workers,
the limit matcher, the expiry sweeper and the analytics worker are SIGKILLed six times
and restarted, and the analytics worker gets copies of events, shuffled; then the drain,
the recount from raw items and the analytics views against their rebuild. About 40-55 s
on 2 cores. `make chaos` runs a longer one; CHAOS_SEED picks another seed."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from tests.chaos.run import ChaosConfig, run_chaos

SHORT = ChaosConfig(
    seed=int(os.environ.get("CHAOS_SEED", "7")),
    users=8,
    orders=90,
    kills=6,
    workers=2,
    seconds=25,
    drain_seconds=45,
)


@pytest.mark.timeout(240)
async def test_the_books_survive_processes_killed_under_load(
    aws_endpoint: str, tmp_path: Path
) -> None:
    report = await run_chaos(aws_endpoint, replace(SHORT, log_dir=tmp_path), say=print)

    assert report.passed, report.text()
