"""`order-processor price` sends and waits, within bounds: a wait of NaN or infinity is
refused as usage, never an endless poll."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from order_processor.cli import admin, build_parser
from order_processor.config import Settings
from order_processor.domain.assets import Asset

POLLS = 500  # 100 s of the CLI's 0.2 s polls


class StillWaiting(Exception):
    pass


def test_a_wait_of_nan_seconds_is_refused_or_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """README: `price ID P [--wait-seconds S]` waits "until it applied it ... (exit 1 if
    it did not within S s)"; 0 sends only. `--wait-seconds` is `type=float`, so "nan"
    (and "inf") are accepted: `nan <= 0` is false, the deadline is nan, and
    `time.monotonic() > nan` is never true. With the matcher down (or the update refused
    as stale), the CLI polls DynamoDB every 0.2 s forever: a script or cron job running
    `order-processor price` never ends and never reports the refusal."""
    sent: list[Any] = []
    polls: list[str] = []

    class Producer:
        async def send(self, update: Any) -> None:
            sent.append(update)

    class Inventory:  # the matcher never applies it
        async def get_asset(self, asset_id: str) -> Asset:
            polls.append(asset_id)
            if len(polls) > POLLS:
                raise StillWaiting
            return Asset(asset_id=asset_id, name="Bitcoin", price=Decimal("100"))

    async def producer(settings: Settings, clients: Any) -> Producer:
        return Producer()

    async def no_sleep(seconds: float) -> None:
        return None

    monkeypatch.setattr(admin, "with_clients", lambda settings, action: asyncio.run(action(None)))
    monkeypatch.setattr(admin, "price_producer_for", producer)
    monkeypatch.setattr(admin, "get_asset_dao", lambda clients: Inventory())
    monkeypatch.setattr(admin, "asyncio", SimpleNamespace(sleep=no_sleep))

    try:
        args = build_parser().parse_args(["price", "BTC", "101", "--wait-seconds", "nan"])
    except SystemExit:
        return  # refused as usage: fine
    try:
        status = admin.cmd_price(args, Settings(jwt_secret="attack20-cli-" + "c" * 32))
    except StillWaiting:
        pytest.fail(f"still polling after {POLLS} polls ({POLLS * 0.2:g} s): it never ends")
    assert status == 1
