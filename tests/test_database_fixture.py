"""The database fixture gives a real, empty PostgreSQL database."""

from __future__ import annotations

import asyncpg


async def test_database_is_real_and_writable(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        version = await conn.fetchval("SHOW server_version_num")
        assert int(version) >= 130000
        await conn.execute("CREATE TABLE fixture_probe (n int)")
        await conn.execute("INSERT INTO fixture_probe VALUES (1), (2)")
        assert await conn.fetchval("SELECT sum(n) FROM fixture_probe") == 3
        assert (await conn.fetchval("SELECT current_database()")).startswith("wardstream_test_")
    finally:
        await conn.close()
