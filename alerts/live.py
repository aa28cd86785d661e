"""The live feed hub behind ``GET /api/live``.

Every message pushed to a WebSocket client is a JSON object: alert lifecycle
records as on ``wardstream.alerts`` (keys ``event``, ``alert``, ...), and side
messages with a ``type`` key: ``risk`` (a person's colour changed) and
``positions`` (latest fixes, batched once a second). A client only receives
data whose jurisdiction starts with its operator's code. Each client has a
bounded queue: a client too slow to keep up is disconnected (code 1013)
rather than slowing the sinks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from alerts.store import Principal

QUEUE_SIZE = 1000


@dataclass(eq=False)
class Client:
    """One connected WebSocket client."""

    who: Principal
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False
    session: bytes = b""
    """Hash of the token the client signed in with (see :meth:`LiveHub.revoke`)."""
    revoked: bool = False


class LiveHub:
    """Fan-out of lifecycle records, risk changes and positions to clients in scope."""

    def __init__(self, position_interval_s: float = 1.0) -> None:
        self.clients: set[Client] = set()
        self._positions: dict[str, dict[str, Any]] = {}
        self._interval = position_interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the position flusher."""
        self._task = asyncio.create_task(self._flush_positions(), name="live-positions")

    async def stop(self) -> None:
        """Stop the flusher."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def register(self, who: Principal, session: bytes = b"") -> Client:
        """Add a client signed in with the session whose token hashes to ``session``."""
        client = Client(who, session=session)
        self.clients.add(client)
        return client

    def revoke(self, session: bytes) -> int:
        """Disconnect every client of a session that ended (logout); returns how many."""
        n = 0
        for client in list(self.clients):
            if session and client.session == session:
                self.end(client)
                n += 1
        return n

    @staticmethod
    def end(client: Client) -> None:
        """Mark a client's session as over and wake its sender, which closes it."""
        client.revoked = True
        with contextlib.suppress(asyncio.QueueFull):
            client.queue.put_nowait("")

    def unregister(self, client: Client) -> None:
        """Remove a client."""
        self.clients.discard(client)

    def publish(self, message: dict[str, Any], jurisdiction: str | None) -> None:
        """Queue ``message`` for every client whose scope covers ``jurisdiction``."""
        if not self.clients:
            return
        text = json.dumps(message, separators=(",", ":"))
        for client in list(self.clients):
            if client.who.covers(jurisdiction):
                try:
                    client.queue.put_nowait(text)
                except asyncio.QueueFull:
                    client.overflowed = True

    def position(self, person_id: str, jurisdiction: str, fix: dict[str, Any]) -> None:
        """Remember a person's latest position for the next batch."""
        prev = self._positions.get(person_id)
        if prev is None or prev["ts_ms"] <= fix["ts_ms"]:
            self._positions[person_id] = {**fix, "person_id": person_id,
                                          "jurisdiction": jurisdiction}

    async def _flush_positions(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if not self._positions:
                continue
            batch, self._positions = self._positions, {}
            for client in list(self.clients):
                items = [
                    {k: v for k, v in p.items() if k != "ts_ms"}
                    for p in batch.values() if client.who.covers(p["jurisdiction"])
                ]
                if items:
                    try:
                        client.queue.put_nowait(
                            json.dumps({"type": "positions", "items": items}, separators=(",", ":"))
                        )
                    except asyncio.QueueFull:
                        client.overflowed = True
