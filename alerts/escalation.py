"""Tiered escalation of unacknowledged alerts: county -> city -> province.

An alert that nobody has acknowledged (or resolved) escalates from the county
command centre to the city after ``city_after_s`` and to the province after
``province_after_s``, counted from when the store first saw it (wall clock,
so an offline backfill from last week does not jump straight to the
province). Defaults: red 120 s / 300 s; other severities do not escalate
unless configured (``WARDSTREAM_ESCALATION="red=120/300,orange=900/1800"``).
Each step is an ``escalated`` lifecycle record with ``tier`` set, applied to
the store and published through the outbox. Acknowledgement stops it. The
clock is injected, so tests drive time by hand; rows are locked with
``SKIP LOCKED`` so several API processes never escalate one alert twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from alerts.db import Clock, utc
from alerts.errors import AlertsError
from alerts.metrics import Metrics
from alerts.store import ALERT_COLUMNS, apply_records, record_json, row_to_alert
from alerts.workflow import ALERTS_TOPIC, queue_outbox
from geofence.model import AlertRecord, format_ts

log = logging.getLogger(__name__)
TIERS = ("county", "city", "province")


@dataclass(frozen=True)
class Step:
    """Delays (seconds after first seen) for one severity."""

    city_after_s: float
    province_after_s: float


DEFAULT_POLICY: Mapping[str, Step] = {"red": Step(120.0, 300.0)}


def parse_policy(text: str) -> dict[str, Step]:
    """Parse ``"red=120/300,orange=900/1800"`` (empty text -> the default)."""
    if not text.strip():
        return dict(DEFAULT_POLICY)
    out: dict[str, Step] = {}
    for part in text.split(","):
        try:
            sev, delays = part.split("=")
            city, province = (float(x) for x in delays.split("/"))
        except ValueError:
            raise AlertsError(f"escalation policy {part!r}: use severity=CITY_S/PROVINCE_S") from None
        sev = sev.strip()
        if sev not in ("red", "orange", "yellow", "blue") or not 0 <= city <= province:
            raise AlertsError(f"escalation policy {part!r}: unknown severity or city > province")
        out[sev] = Step(city, province)
    return out


class Escalator:
    """Periodic escalation pass over unacknowledged alerts.

    Parameters
    ----------
    pool : asyncpg.Pool
        The store.
    clock : callable
        Epoch milliseconds; the test clock in tests.
    policy : mapping
        Severity -> :class:`Step`.
    on_records : callable
        Called after commit with ``[(record, jurisdiction)]`` (live feed, outbox wake-up).
    """

    def __init__(
        self, pool: asyncpg.Pool, clock: Clock, metrics: Metrics,
        policy: Mapping[str, Step] = DEFAULT_POLICY,
        on_records: Callable[[list[tuple[dict[str, Any], str]]], Awaitable[None]] | None = None,
        interval_s: float = 5.0,
    ) -> None:
        self.pool = pool
        self.clock = clock
        self.metrics = metrics
        self.policy = dict(policy)
        self.on_records = on_records
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> list[dict[str, Any]]:
        """One pass; returns the ``escalated`` records emitted."""
        now = self.clock()
        emitted: list[tuple[dict[str, Any], str]] = []
        async with self.pool.acquire() as conn, conn.transaction():
            for severity, step in self.policy.items():
                rows = await conn.fetch(
                    f"""SELECT {ALERT_COLUMNS} FROM alerts
                         WHERE acknowledged_at IS NULL AND resolved_at IS NULL
                           AND severity = $1
                           AND ((tier = 'county' AND first_seen_at <= $2)
                             OR (tier = 'city' AND first_seen_at <= $3))
                         ORDER BY first_seen_at
                         FOR UPDATE SKIP LOCKED""",
                    severity, utc(now - int(step.city_after_s * 1000)),
                    utc(now - int(step.province_after_s * 1000)),
                )
                for row in rows:
                    seen_ms = int(row["first_seen_at"].timestamp() * 1000)
                    targets = []
                    if row["tier"] == "county":
                        targets.append("city")
                    if now - seen_ms >= step.province_after_s * 1000:
                        targets.append("province")
                    for tier in targets:
                        alert = msgspec.structs.replace(row_to_alert(row))
                        rec = record_json(AlertRecord(event="escalated", alert=alert,
                                                      at=format_ts(now), tier=tier))
                        await apply_records(conn, [rec], now)
                        await queue_outbox(conn, ALERTS_TOPIC, row["alert_id"], rec)
                        emitted.append((rec, row["jurisdiction"]))
                        self.metrics.escalations.labels(tier).inc()
        if emitted and self.on_records:
            await self.on_records(emitted)
        return [rec for rec, _ in emitted]

    def start(self) -> None:
        """Run :meth:`tick` every ``interval_s``."""
        self._task = asyncio.create_task(self._loop(), name="escalator")

    async def stop(self) -> None:
        """Stop the loop."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:  # database away: try again next interval
                log.warning("escalation pass failed: %s", exc)
            await asyncio.sleep(self.interval_s)
