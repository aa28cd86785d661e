"""Fixtures for the command-centre tests: a fresh schema, a clock, a running API."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for alerts_testkit

from alerts_testkit import Api, FakeClock

from alerts.api import create_app
from alerts.auth import LoginLimiter
from alerts.db import create_pool
from alerts.service import Service, ServiceOptions
from stream.settings import Settings


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with minimal cost inside this process's tests (production keeps the defaults)."""
    from argon2 import PasswordHasher

    import alerts.auth

    monkeypatch.setattr(alerts.auth, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024,
                                                                parallelism=1))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def schema() -> str:
    return "t_" + uuid.uuid4().hex[:12]


@pytest.fixture
async def pool(database_url: str, schema: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(database_url, schema)
    try:
        yield p
    finally:
        await p.close()
        conn = await asyncpg.connect(database_url)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


@pytest.fixture
async def make_api(database_url: str, clock: FakeClock) -> AsyncIterator[Callable[..., Any]]:
    """Factory: ``api = await make_api(kafka=None)``; everything stopped at teardown."""
    started: list[tuple[TestClient, Service, str]] = []

    async def factory(kafka: str | None = None, database: str | None = None, **options: Any) -> Api:
        schema = "t_" + uuid.uuid4().hex[:12]
        settings = Settings(database_url=database or database_url, database_schema=schema,
                            kafka=kafka or "")
        opts = ServiceOptions(**{"run_escalator": False, "run_retention": False,
                                 "alerts_group": f"g-alerts-{schema}",
                                 "tracks_group": f"g-tracks-{schema}",
                                 "session_timeout_ms": 6000,
                                 "orders_topic": f"orders-{schema}",
                                 "control_group": f"g-control-{schema}",
                                 "zones_topic": f"zones-{schema}", **options})
        service = Service(settings, clock=clock, options=opts)
        await service.start()
        client = TestClient(TestServer(create_app(service, LoginLimiter(max_failures=5))))
        await client.start_server()
        started.append((client, service, schema))
        assert service.pool is not None
        return Api(client, service, clock, service.pool)

    yield factory
    for client, service, schema in started:
        await client.close()
        await service.stop()
        conn = await asyncpg.connect(database_url)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
