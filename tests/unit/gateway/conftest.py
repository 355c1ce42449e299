"""The gateway in process over its fakes: requests through httpx's ASGI transport."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal

import bcrypt
import httpx
import pytest
from fastapi import FastAPI

from order_processor.domain.assets import Asset
from order_processor.domain.balances import Balance
from order_processor.domain.users import User
from order_processor.gateway.app import create_app
from order_processor.gateway.deps import Gateway
from order_processor.gateway.limits import GatewayLimits
from order_processor.gateway.memory import MemoryGatewayReads, RecordingSender
from order_processor.readmodel.memory import MemoryReadModel
from order_processor.security.audit import AuditLogger
from order_processor.security.passwords import PasswordManager
from order_processor.security.tokens import TokenManager

SECRET = "gateway-tests-secret-of-at-least-32-bytes"
PASSWORD = "Corr3ct-horse!"


def a_user(username: str) -> User:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    return User(
        username=username,
        email=f"{username}@example.com",
        first_name="Ada",
        last_name="Lovelace",
        password_hash=hashed,
    )


@dataclass
class World:
    reads: MemoryGatewayReads
    sender: RecordingSender
    model: MemoryReadModel
    tokens: TokenManager
    audit_lines: io.StringIO
    client: httpx.AsyncClient
    gateway: Gateway
    app: FastAPI
    tokens_of: dict[str, str] = field(default_factory=dict)

    def token(self, username: str = "alice1") -> str:
        if username not in self.tokens_of:
            self.tokens_of[username] = self.tokens.create_access_token(username)
        return self.tokens_of[username]

    def auth(self, username: str = "alice1") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username)}"}


def build_world(
    limits: GatewayLimits | None = None, address: str = "203.0.113.7"
) -> tuple[World, httpx.AsyncClient]:
    reads = MemoryGatewayReads(passwords=PasswordManager(rounds=4))
    for name in ("alice1", "bobby1"):
        reads.users[name] = a_user(name)
        reads.cash[name] = [
            Balance(username=name, available=Decimal("1000.00"), held=Decimal("0.00")),
            Balance(username=name, currency="EUR", available=Decimal("50.00")),
        ]
    reads.assets["BTC"] = Asset(asset_id="BTC", name="Bitcoin", price=Decimal("50000.00"))
    model = MemoryReadModel()
    tokens = TokenManager(SECRET)
    lines = io.StringIO()
    gateway = Gateway(
        reads=reads,
        commands=RecordingSender(),
        read_model=model,
        tokens=tokens,
        secret=b"order-ids-and-cursors-secret-32b",
        limits=limits or GatewayLimits(),
        audit=AuditLogger(lines),
    )
    app = create_app(gateway)
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    client = httpx.AsyncClient(transport=transport, base_url="http://gateway.test")
    assert isinstance(gateway.commands, RecordingSender)
    world = World(reads, gateway.commands, model, tokens, lines, client, gateway, app)
    return world, client


@pytest.fixture
async def world() -> AsyncIterator[World]:
    built, client = build_world()
    async with client:
        yield built
