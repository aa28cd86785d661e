"""The track store: position history partitioned by UTC day.

Fixes from ``wardstream.telemetry`` are written in batches with COPY
(``copy_records_to_table``) into ``track_fixes``, a table partitioned by
range of ``ts`` with one partition per UTC day, created on demand. Positioning
data is confidential: partitions older than ``retention_days`` are dropped
whole (cheap, and nothing lingers in dead tuples), and fixes already older
than the horizon are not written at all (:class:`DailyPartitions`, shared
with the check-in store of :mod:`alerts.checkins`). A replayed batch may
write a fix twice; reads collapse duplicates with ``DISTINCT ON (device_id, ts)``.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import asyncpg

from alerts.db import utc
from geofence.model import Fix, format_ts

COLUMNS = ("device_id", "ts", "lat", "lon", "accuracy_m", "valid", "speed_mps", "heading_deg",
           "battery_pct")
DAY_MS = 86_400_000


def partition_name(day_ms: int, table: str = "track_fixes") -> str:
    """``<table>_YYYYMMDD`` for the UTC day containing ``day_ms``."""
    return f"{table}_" + datetime.fromtimestamp(day_ms / 1000, tz=UTC).strftime("%Y%m%d")


def person_rows(table: str, alias: str) -> str:
    """``FROM ... WHERE ...`` of a device-keyed history table read for one person.

    Rows map to the person through ``devices`` (from the orders, with
    validity at each row's ``ts``), and the person's jurisdiction is checked
    against the caller's prefix in the same query: ``$1`` person, ``$2``
    scope, ``$3``..``$4`` the span ``[from, to)``.
    """
    a = alias
    return f"""FROM {table} {a}
                 JOIN devices d ON d.device_id = {a}.device_id
                                AND {a}.ts >= d.valid_from AND {a}.ts < d.valid_until
                 JOIN persons p ON p.person_id = d.person_id
                WHERE d.person_id = $1 AND p.jurisdiction LIKE $2 || '%'
                  AND {a}.ts >= $3 AND {a}.ts < $4"""


class _HasTs(Protocol):
    @property
    def ts(self) -> int: ...


_Stamped = TypeVar("_Stamped", bound=_HasTs)


class DailyPartitions:
    """One UTC day per partition of a table partitioned by range of ``ts``.

    Partitions are created on demand and dropped whole once wholly older
    than ``retention_days`` (cheap, and nothing lingers in dead tuples);
    rows already older than the horizon are not written at all.

    Parameters
    ----------
    table : str
        The partitioned table (a fixed name from the migrations).
    retention_days : int
        Days of history kept, today included.
    """

    def __init__(self, table: str, retention_days: int) -> None:
        self.table = table
        self.retention_days = retention_days
        self._pattern = re.compile(rf"^{re.escape(table)}_(\d{{8}})$")
        self._known: set[int] = set()

    def oldest_kept(self, now_ms: int) -> int:
        """Start (epoch ms) of the oldest UTC day still kept at ``now_ms``."""
        return (now_ms // DAY_MS - self.retention_days + 1) * DAY_MS

    def kept(self, items: Sequence[_Stamped], now_ms: int) -> tuple[list[_Stamped], set[int], int]:
        """The items (each with a ``ts`` in epoch ms) still inside retention at
        ``now_ms``, the days they fall on, and how many expired on arrival."""
        oldest = self.oldest_kept(now_ms)
        kept = [m for m in items if m.ts >= oldest]
        return kept, {m.ts // DAY_MS for m in kept}, len(items) - len(kept)

    async def ensure(self, conn: asyncpg.Connection, days: set[int]) -> None:
        """Create the daily partitions (day numbers since epoch) not known yet."""
        for day in sorted(days - self._known):
            start = day * DAY_MS
            name = partition_name(start, self.table)
            await conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF {self.table}'
                f" FOR VALUES FROM ('{format_ts(start)}') TO ('{format_ts(start + DAY_MS)}')"
            )
            self._known.add(day)

    async def names(self, conn: asyncpg.Connection) -> list[str]:
        """Names of the existing daily partitions, oldest first."""
        rows = await conn.fetch(
            """SELECT c.relname FROM pg_inherits i
                 JOIN pg_class c ON c.oid = i.inhrelid
                 JOIN pg_class p ON p.oid = i.inhparent
                 JOIN pg_namespace n ON n.oid = p.relnamespace
                WHERE p.relname = $1 AND n.nspname = current_schema()
                ORDER BY c.relname""", self.table,
        )
        return [r["relname"] for r in rows]

    async def drop_expired(self, conn: asyncpg.Connection, now_ms: int) -> list[str]:
        """Drop partitions wholly older than the retention horizon; returns their names."""
        cutoff = partition_name(self.oldest_kept(now_ms), self.table)
        dropped = []
        for name in await self.names(conn):
            if self._pattern.match(name) and name < cutoff:
                await conn.execute(f'DROP TABLE IF EXISTS "{name}"')
                dropped.append(name)
                day = int(datetime.strptime(name[-8:], "%Y%m%d").replace(
                    tzinfo=UTC).timestamp() * 1000) // DAY_MS
                self._known.discard(day)
        return dropped


_FIX_COLUMNS = ("f.device_id, f.ts, f.lat, f.lon, f.accuracy_m, f.valid, f.speed_mps,"
                " f.heading_deg, f.battery_pct")
_TRACK_FROM = person_rows("track_fixes", "f")
"""A person's fixes, scoped to a jurisdiction prefix in SQL ($1 person, $2 scope, $3..$4 span)."""

EXPORT_BATCH = 2000
"""Rows fetched per round trip by a track export (the most it holds at once)."""


class TrackStore:
    """Write fixes with COPY, create and drop daily partitions, read tracks.

    Parameters
    ----------
    retention_days : int
        Days of history kept; older partitions are dropped by :meth:`drop_expired`.
    """

    def __init__(self, retention_days: int = 30, latest_interval_s: float = 1.0) -> None:
        self.retention_days = retention_days
        self.latest_interval_s = latest_interval_s
        self.days = DailyPartitions("track_fixes", retention_days)
        self._latest: dict[str, tuple[Any, ...]] = {}
        self._latest_flushed = 0.0

    async def ensure_partitions(self, conn: asyncpg.Connection, days: set[int]) -> None:
        """Create the daily partitions (day numbers since epoch) not known yet."""
        await self.days.ensure(conn, days)

    def rows(self, fixes: Sequence[Fix], now_ms: int) -> tuple[list[tuple[Any, ...]], set[int], int]:
        """COPY rows for the fixes inside retention; ``(rows, days, expired)``."""
        kept, days, expired = self.days.kept(fixes, now_ms)
        return [(f.device_id, utc(f.ts), f.lat, f.lon, f.accuracy_m, f.valid, f.speed_mps,
                 f.heading_deg, f.battery_pct) for f in kept], days, expired

    async def write(self, conn: asyncpg.Connection, fixes: Sequence[Fix], now_ms: int) -> int:
        """COPY one batch (and refresh latest positions); returns fixes expired on arrival."""
        rows, days, expired = self.rows(fixes, now_ms)
        if not rows:
            return expired
        async with conn.transaction():
            await self.ensure_partitions(conn, days)
            await conn.copy_records_to_table("track_fixes", records=rows, columns=COLUMNS)
            await self.note_positions(conn, [r[:5] for r in rows if r[5]])
        return expired

    async def note_positions(self, conn: asyncpg.Connection,
                             positions: Sequence[tuple[str, datetime, float, float, float]]) -> None:
        """Remember the newest position per device for the live map, flushing when due.

        ``positions`` are ``(device_id, ts, lat, lon, accuracy_m)``: the valid
        fixes of a batch, or the positions of a phone's check-ins (which are
        not fixes and stay out of the track, but are where the phone was).
        """
        latest = self._latest
        for r in positions:
            if r[0] not in latest or r[1] > latest[r[0]][1]:
                latest[r[0]] = r
        if latest and time.monotonic() - self._latest_flushed >= self.latest_interval_s:
            await self.flush_latest(conn)

    async def flush_latest(self, conn: asyncpg.Connection) -> None:
        """Upsert the latest position per device gathered since the last flush.

        Latest positions only feed the live map, so they are written at most
        once per ``latest_interval_s`` rather than with every batch (the
        history itself is in ``track_fixes``, written with every batch).
        """
        if not self._latest:
            return
        vals = list(self._latest.values())
        await conn.execute(
            """INSERT INTO latest_positions (device_id, ts, lat, lon, accuracy_m)
               SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::float8[],
                                    $4::float8[], $5::float8[])
               ON CONFLICT (device_id) DO UPDATE SET ts = EXCLUDED.ts, lat = EXCLUDED.lat,
                   lon = EXCLUDED.lon, accuracy_m = EXCLUDED.accuracy_m
               WHERE latest_positions.ts < EXCLUDED.ts""",
            [v[0] for v in vals], [v[1] for v in vals], [v[2] for v in vals],
            [v[3] for v in vals], [v[4] for v in vals],
        )
        self._latest = {}
        self._latest_flushed = time.monotonic()

    async def partitions(self, conn: asyncpg.Connection) -> list[str]:
        """Names of the existing daily partitions, oldest first."""
        return await self.days.names(conn)

    async def drop_expired(self, conn: asyncpg.Connection, now_ms: int) -> list[str]:
        """Drop partitions wholly older than the retention horizon; returns their names."""
        return await self.days.drop_expired(conn, now_ms)

    @staticmethod
    async def read(
        conn: asyncpg.Connection, person_id: str, scope: str, start: datetime, end: datetime,
        limit: int = 20_000,
    ) -> list[dict[str, Any]]:
        """A person's fixes in ``[start, end)``, oldest first.

        Devices map to the person through ``devices`` (from the orders, with
        validity), and the person's jurisdiction is checked in the same query.
        """
        rows = await conn.fetch(
            f"SELECT DISTINCT ON (f.device_id, f.ts) {_FIX_COLUMNS} {_TRACK_FROM}"
            " ORDER BY f.device_id, f.ts LIMIT $5",
            person_id, scope, start, end, limit,
        )
        out = [_fix_json(r) for r in rows]
        out.sort(key=lambda f: (f["ts"], f["device_id"]))
        return out

    @staticmethod
    async def stream(
        conn: asyncpg.Connection, person_id: str, scope: str, start: datetime, end: datetime,
        batch: int = EXPORT_BATCH,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """A person's fixes in ``[start, end)`` in time order, ``batch`` at a time.

        Reads through a server-side cursor inside a read-only transaction, so
        an export of any length holds one batch in memory, never the whole
        history. Same scope and de-duplication as :meth:`read`.
        """
        async with conn.transaction(readonly=True):
            cursor = await conn.cursor(
                f"SELECT DISTINCT ON (f.ts, f.device_id) {_FIX_COLUMNS} {_TRACK_FROM}"
                " ORDER BY f.ts, f.device_id", person_id, scope, start, end)
            while True:
                rows = await cursor.fetch(batch)
                if not rows:
                    return
                yield [_fix_json(r) for r in rows]


def _fix_json(r: asyncpg.Record) -> dict[str, Any]:
    return {"device_id": r["device_id"], "ts": format_ts(int(r["ts"].timestamp() * 1000)),
            "lat": r["lat"], "lon": r["lon"], "accuracy_m": r["accuracy_m"], "valid": r["valid"],
            "speed_mps": r["speed_mps"], "heading_deg": r["heading_deg"],
            "battery_pct": r["battery_pct"]}


def day_bounds(now_ms: int, days: int) -> tuple[datetime, datetime]:
    """``(now - days, now)`` as datetimes (the default track window)."""
    end = utc(now_ms)
    return end - timedelta(days=days), end
