"""The read model's breaker: a model that failed is not asked again for a pause (each ask
of a Redis that never answers costs its timeouts), then asked again."""

from __future__ import annotations

import pytest

from order_processor.readmodel.breaker import Breaker
from order_processor.readmodel.memory import MemoryReadModel
from order_processor.readmodel.ports import ReadModelUnavailable
from tests.contracts.read_model import deposit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_model_that_failed_is_not_asked_again_until_the_pause_has_passed() -> None:
    model, clock = MemoryReadModel(available=False), Clock()
    breaker = Breaker(model, pause_seconds=5, clock=clock)
    with pytest.raises(ReadModelUnavailable):
        await breaker.tail("alice1")
    model.available = True
    await model.apply(deposit("alice1"))

    with pytest.raises(ReadModelUnavailable, match="not asked"):
        await breaker.tail("alice1")
    clock.now += 5
    assert await breaker.tail("alice1") == "1-0"


async def test_the_readiness_ping_always_asks_the_model() -> None:
    model = MemoryReadModel(available=False)
    breaker = Breaker(model, pause_seconds=60)
    with pytest.raises(ReadModelUnavailable):
        await breaker.ping()
    model.available = True

    await breaker.ping()
    assert await breaker.generation("alice1") == 0
