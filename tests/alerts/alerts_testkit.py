"""Helpers shared by the command-centre tests (records, clock, API handle)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from alerts.auth import add_operator
from alerts.service import Service
from geofence.model import format_ts

T0 = 1_795_356_210_000  # 2026-11-22T14:03:30Z


class FakeClock:
    """A wall clock the test moves by hand (epoch ms)."""

    def __init__(self, start: int = T0) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


def alert(alert_id: str = "A-1", *, person_id: str | None = "P-1", jurisdiction: str = "320102",
          kind: str = "exclusion_entered", rule_id: str = "r1", severity: str = "red",
          opened_at: int = T0, **extra: Any) -> dict[str, Any]:
    body = {"alert_id": alert_id, "person_id": person_id, "rule_id": rule_id, "kind": kind,
            "severity": severity, "opened_at": format_ts(opened_at), "cleared_at": None,
            "lat": 32.05, "lon": 118.79, "jurisdiction": jurisdiction, "late": False,
            "status": "open"}
    body.update(extra)
    return body


def record(event: str = "opened", at: int | None = None, **kw: Any) -> dict[str, Any]:
    a = alert(**kw)
    return {"event": event, "alert": a, "at": a["opened_at"] if at is None else format_ts(at)}


@dataclass
class Api:
    """A running API on a fresh schema (no Kafka unless asked)."""

    client: TestClient
    service: Service
    clock: FakeClock
    pool: asyncpg.Pool

    async def user(self, username: str, role: str, jurisdiction: str) -> str:
        """Create an operator and return a token for it."""
        async with self.pool.acquire() as conn:
            await add_operator(conn, username, "correct horse battery", role, jurisdiction)
        resp = await self.client.post("/api/auth/login",
                                      json={"username": username, "password": "correct horse battery"})
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["token"])

    async def login(self, username: str) -> str:
        """A fresh token for an existing operator (made by :meth:`user`)."""
        resp = await self.client.post("/api/auth/login",
                                      json={"username": username, "password": "correct horse battery"})
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["token"])

    async def apply(self, *records: dict[str, Any]) -> list[int]:
        from alerts.store import apply_records

        async with self.pool.acquire() as conn, conn.transaction():
            return await apply_records(conn, list(records), self.clock())


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


