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

    async def call(self, method: str, path: str, token: str,
                   body: Any = None) -> tuple[int, Any]:
        """One request as the holder of ``token``: its status and its JSON answer."""
        resp = await self.client.request(method, path, headers=auth(token), json=body)
        return resp.status, await resp.json()

    async def apply(self, *records: dict[str, Any]) -> list[int]:
        from alerts.store import apply_records

        async with self.pool.acquire() as conn, conn.transaction():
            return await apply_records(conn, list(records), self.clock())


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}




async def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll an async predicate until it returns something truthy."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        await asyncio.sleep(interval)


async def produce(bootstrap: str, topic: str, values: list[bytes], keys: list[str] | None = None) -> None:
    """Publish values with a real aiokafka producer (acks=all, no idempotence: Tansu)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        for i, v in enumerate(values):
            await producer.send(topic, v, key=None if keys is None else keys[i].encode())
        await producer.flush()
    finally:
        await producer.stop()


async def create_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    """Create a topic for one test."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


class TcpProxy:
    """A TCP proxy in front of PostgreSQL that a test can cut and restore.

    ``cut()`` closes every open connection and refuses new ones (accepts and
    closes at once), as a database restart or a network cut looks to a client.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.is_cut = False
        self._server: Any = None
        self._writers: set[Any] = set()

    async def start(self) -> None:
        import asyncio

        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: Any, writer: Any) -> None:
        import asyncio
        import contextlib

        if self.is_cut:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: Any, dst: Any) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def cut(self) -> None:
        self.is_cut = True
        for w in list(self._writers):
            transport = w.transport
            if transport is not None:
                transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.is_cut = False

    async def stop(self) -> None:
        self.cut()
        self._server.close()
        await self._server.wait_closed()
