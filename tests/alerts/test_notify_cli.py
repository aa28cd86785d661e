"""``wardstream notify``: policies and rosters from the command line, bad input exits 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(database_url: str) -> Iterator[dict[str, str]]:
    import asyncio

    schema = "t_" + uuid.uuid4().hex[:12]
    yield {**os.environ, "PYTHONPATH": str(ROOT), "WARDSTREAM_DATABASE_URL": database_url,
           "WARDSTREAM_DATABASE_SCHEMA": schema}

    async def drop() -> None:
        conn = await asyncpg.connect(database_url)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()

    asyncio.run(drop())


def notify(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stream.cli", "notify", *args], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_policy_and_roster_round_trip_and_bad_input(env: dict[str, str]) -> None:
    r = notify(env, "policy", "add", "--channel", "email", "--recipient", "duty", "--prefix",
               "3201", "--quiet", "22:00-06:00", "--severities", "red,orange")
    assert r.returncode == 0, r.stderr
    made = json.loads(r.stdout)
    assert made["severities"] == ["red", "orange"] and made["quiet_end"] == "06:00"
    r = notify(env, "roster", "add", "--jurisdiction", "320102", "--officer", "li",
               "--from", "2026-12-05T00:00:00Z", "--to", "2026-12-06T00:00:00Z",
               "--contact", "email=li@example.org")
    assert r.returncode == 0, r.stderr
    listed = json.loads(notify(env, "roster", "list").stdout)
    assert [(s["officer"], s["contacts"]) for s in listed] == [("li", {"email": "li@example.org"})]
    for bad in (["policy", "add", "--channel", "email", "--recipient", "duty", "--quiet", "22"],
                ["roster", "add", "--jurisdiction", "1", "--officer", "x", "--from", "soon",
                 "--to", "2026-12-06T00:00:00Z"],
                ["roster", "add", "--jurisdiction", "32010x", "--officer", "x", "--from",
                 "2026-12-05T00:00:00Z", "--to", "2026-12-06T00:00:00Z"],
                ["roster", "add", "--jurisdiction", "320102", "--officer", "x", "--from",
                 "2026-12-05T00:00:00Z", "--to", "2026-12-06T00:00:00Z", "--contact", "pager=1"],
                ["policy", "rm", "999"]):
        r = notify(env, *bad)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "Traceback" not in r.stderr
    assert notify(env, "policy", "rm", str(made["policy_id"])).returncode == 0
    assert json.loads(notify(env, "policy", "list").stdout) == []
