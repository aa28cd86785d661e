"""Connections and schema migrations for the command-centre store.

Every object lives in one PostgreSQL schema (``WARDSTREAM_DATABASE_SCHEMA``,
default ``wardstream``): connections set ``search_path`` to it, so tests and
several sites can share one database. Migrations are the versioned files
``alerts/migrations/NNNN_name.sql``, applied in order inside one transaction
each under an advisory lock, and recorded in ``schema_migrations``; a file
already applied is never run again, and a changed file is refused (its
checksum is kept).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from alerts.errors import MigrationError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_LOCK_KEY = 0x5741524453  # "WARDS"


@dataclass(frozen=True)
class Migration:
    """One versioned SQL file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in version order; malformed names are an error."""
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(f"migration file {path.name!r} is not named NNNN_name.sql")
        found.append(Migration(int(m.group(1)), path.name, path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version: {versions}")
    return found


def check_schema_name(schema: str) -> str:
    """Validate a schema name (it is interpolated into DDL, so it must be plain)."""
    if not _SCHEMA.match(schema):
        raise MigrationError(f"schema name {schema!r} must match {_SCHEMA.pattern}")
    return schema


async def migrate(conn: asyncpg.Connection, schema: str) -> list[int]:
    """Create ``schema`` if needed and apply pending migrations; returns versions applied."""
    check_schema_name(schema)
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'SET search_path TO "{schema}"')
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        done = {r["version"]: r for r in rows}
        for mig in load_migrations():
            if mig.version in done:
                if done[mig.version]["checksum"] != mig.checksum:
                    raise MigrationError(
                        f"migration {mig.name} changed after it was applied; add a new file instead"
                    )
                continue
            try:
                async with conn.transaction():
                    await conn.execute(mig.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        mig.version, mig.name, mig.checksum,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"migration {mig.name} failed: {exc}") from exc
            applied_now.append(mig.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("jsonb", "json"):
        await conn.set_type_codec(
            typ, encoder=_json_dumps, decoder=_json_loads, schema="pg_catalog"
        )


def _json_dumps(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _json_loads(text: str) -> Any:
    import json

    return json.loads(text)


async def create_pool(
    dsn: str, schema: str, *, min_size: int = 1, max_size: int = 8, migrate_on_start: bool = True,
    timeout: float = 10.0,
) -> asyncpg.Pool:
    """A connection pool bound to ``schema`` (migrated first unless told not to)."""
    check_schema_name(schema)
    if migrate_on_start:
        conn = await asyncpg.connect(dsn, timeout=timeout)
        try:
            await migrate(conn, schema)
        finally:
            await conn.close()
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, timeout=timeout, init=_init_connection,
        server_settings={"search_path": schema, "application_name": "wardstream"},
        command_timeout=60,
    )
    assert pool is not None
    return pool


def utc(ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def epoch_ms(dt: datetime) -> int:
    """An aware datetime as epoch milliseconds."""
    return int(dt.timestamp() * 1000)


Clock = Callable[[], int]
"""A wall clock in epoch milliseconds (injectable for tests)."""


def system_clock() -> int:
    """The real wall clock in epoch milliseconds."""
    return int(datetime.now(UTC).timestamp() * 1000)
