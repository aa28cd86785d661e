"""The throwaway PostgreSQL the fixtures and the demo fall back to really works."""

from __future__ import annotations

import asyncio
import os

import asyncpg
import pytest

from stream.embedded_pg import EmbeddedPostgres, can_connect, pg_binary


@pytest.mark.skipif(pg_binary("initdb") is None, reason="no PostgreSQL server binaries here")
def test_throwaway_cluster_starts_answers_and_is_removed() -> None:
    cluster = EmbeddedPostgres().start()
    root = cluster.root
    try:
        assert can_connect(cluster.dsn)

        async def roundtrip() -> int:
            conn = await asyncpg.connect(cluster.dsn)
            try:
                await conn.execute("CREATE TABLE t (n int); INSERT INTO t VALUES (41)")
                return int(await conn.fetchval("SELECT n + 1 FROM t"))
            finally:
                await conn.close()

        assert asyncio.run(roundtrip()) == 42
    finally:
        cluster.stop()
    assert not can_connect(cluster.dsn, timeout=1)
    assert not os.path.exists(root)


def test_unreachable_server_is_reported_not_raised() -> None:
    assert can_connect("postgresql://postgres@127.0.0.1:1/none", timeout=1) is False
