"""The check-in store: identity check-ins from phones, kept like fixes.

Check-ins from ``wardstream.telemetry`` are written into ``checkins``, a
table partitioned by UTC day with the track store's retention
(:class:`alerts.tracks.DailyPartitions`). A phone maps to its person through
the ``devices`` rows of the orders, exactly as a wristband's fixes do, and a
read is scoped to the caller's jurisdiction in the same SQL
(:func:`alerts.tracks.person_rows`).

Each check-in is judged when it is stored, with the engine's rule
(:func:`geofence.checkin.checkin_verified`) against ``min_score`` of
the checkin rule of the order then naming the phone: it is *verified* when
it carries a face score or an action result and no result failed. The
judgement and the threshold are stored with the check-in, so its history
shows what was decided at the time even after the order changes;
:func:`failures` says which result failed. A check-in from a phone no order
with a checkin rule names is stored but not judged (``verified`` and
``min_score`` are null).

When read, each check-in is also placed against the inclusion zones of the
person's current order with the engine's formula for fixes
(:func:`geofence.engine.classify.zone_codes`): ``outside`` when its
accuracy circle lies wholly outside one of them, ``inside`` when it lies
wholly inside every one, ``uncertain`` otherwise, and null when the order
has no inclusion zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import asyncpg
import numpy as np

from alerts.db import utc
from alerts.tracks import DailyPartitions, person_rows
from geofence.checkin import checkin_verified, placement
from geofence.engine.classify import zone_codes
from geofence.errors import ValidationError
from geofence.model import CheckIn, Rule, format_ts, parse_order
from geofence.rules import INCLUSION
from geofence.zones import ZoneCatalogue

__all__ = ["CheckinStore", "Failure", "Placement", "failures", "place"]

Failure = Literal["face_score", "action", "no_result"]
"""Why a check-in is not verified: the face score is below the rule's
``min_score``, the action (liveness) check failed, or it carries no result
(the decoder refuses such a check-in, so none is ever stored)."""
Placement = Literal["outside", "inside", "uncertain"]
_PLACEMENTS: tuple[Placement, ...] = ("outside", "inside", "uncertain")  # by geofence.checkin.placement

COLUMNS = ("device_id", "ts", "lat", "lon", "accuracy_m", "face_score", "action_ok", "method",
           "request_id", "min_score", "verified")
_READ_COLUMNS = ("c.device_id, c.ts, c.lat, c.lon, c.accuracy_m, c.face_score, c.action_ok,"
                 " c.method, c.request_id, c.min_score, c.verified, d.person_id")
_FROM = person_rows("checkins", "c")


def failures(face_score: float | None, action_ok: bool | None,
             min_score: float) -> tuple[Failure, ...]:
    """Which of a check-in's results failed under a rule's ``min_score``, for
    the operator (empty exactly when the engine's rule verifies it; a test
    holds the two to each other).

    Examples
    --------
    >>> failures(0.93, True, 0.8), failures(0.62, None, 0.8), failures(None, False, 0.8)
    ((), ('face_score',), ('action',))
    >>> failures(0.5, False, 0.8), failures(None, None, 0.8)
    (('face_score', 'action'), ('no_result',))
    """
    out: list[Failure] = []
    if face_score is not None and face_score < min_score:
        out.append("face_score")
    if action_ok is False:
        out.append("action")
    if not out and face_score is None and action_ok is not True:
        out.append("no_result")
    return tuple(out)


def checkin_rule(body: Any) -> Rule | None:
    """The checkin rule of a stored order body (None: no order, or no such rule)."""
    if not isinstance(body, dict):
        return None
    try:
        order = parse_order(body)
    except ValidationError:  # stored orders were checked; an unreadable one judges nothing
        return None
    return next((r for r in order.rules if r.type == "checkin"), None)


class CheckinStore:
    """Write check-ins (judged on arrival), drop expired days, read a person's history.

    Parameters
    ----------
    retention_days : int
        Days of history kept (the track store's setting).
    """

    def __init__(self, retention_days: int = 30) -> None:
        self.days = DailyPartitions("checkins", retention_days)

    async def thresholds(self, conn: asyncpg.Connection,
                         devices: Sequence[str]) -> dict[str, list[tuple[datetime, datetime, float]]]:
        """``device -> [(valid_from, valid_until, min_score)]`` from the current orders."""
        rows = await conn.fetch(
            """SELECT d.device_id, d.person_id, d.valid_from, d.valid_until, o.version, o.body
                 FROM devices d
                 JOIN LATERAL (SELECT version, body FROM orders WHERE person_id = d.person_id
                                ORDER BY version DESC LIMIT 1) o ON true
                WHERE d.device_id = ANY($1::text[])""",
            sorted(set(devices)),
        )
        out: dict[str, list[tuple[datetime, datetime, float]]] = {}
        rules: dict[tuple[str, int], Rule | None] = {}
        for r in rows:
            key = (r["person_id"], r["version"])
            if key not in rules:
                rules[key] = checkin_rule(r["body"])
            rule = rules[key]
            if rule is not None:
                out.setdefault(r["device_id"], []).append(
                    (r["valid_from"], r["valid_until"], rule.effective_min_score()))
        return out

    def rows(self, checkins: Sequence[CheckIn], now_ms: int,
             limits: dict[str, list[tuple[datetime, datetime, float]]]
             ) -> tuple[list[tuple[Any, ...]], set[int], int]:
        """Rows for the check-ins inside retention, judged; ``(rows, days, expired)``."""
        kept, days, expired = self.days.kept(checkins, now_ms)
        out: list[tuple[Any, ...]] = []
        for c in kept:
            at = utc(c.ts)
            min_score = next((m for lo, hi, m in limits.get(c.device_id, ()) if lo <= at < hi), None)
            ok = None if min_score is None else checkin_verified(c, min_score)
            out.append((c.device_id, at, c.lat, c.lon, c.accuracy_m, c.face_score, c.action_ok,
                        c.method, c.request_id, min_score, ok))
        return out, days, expired

    async def write(self, conn: asyncpg.Connection, checkins: Sequence[CheckIn], now_ms: int) -> int:
        """Store one batch (a check-in already stored is kept as it was); returns
        the check-ins expired on arrival."""
        if not checkins:
            return 0
        async with conn.transaction():
            limits = await self.thresholds(conn, [c.device_id for c in checkins])
            rows, days, expired = self.rows(checkins, now_ms, limits)
            if not rows:
                return expired
            await self.days.ensure(conn, days)
            cols = list(zip(*rows, strict=True))
            await conn.execute(
                f"""INSERT INTO checkins ({", ".join(COLUMNS)})
                    SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::float8[], $4::float8[],
                                         $5::float8[], $6::float8[], $7::bool[], $8::text[],
                                         $9::text[], $10::float8[], $11::bool[])
                    ON CONFLICT (device_id, ts) DO NOTHING""",
                *[list(c) for c in cols],
            )
        return expired

    async def drop_expired(self, conn: asyncpg.Connection, now_ms: int) -> list[str]:
        """Drop the days wholly older than the retention horizon; returns their names."""
        return await self.days.drop_expired(conn, now_ms)

    @staticmethod
    async def read(conn: asyncpg.Connection, person_id: str, scope: str, start: datetime,
                   end: datetime, limit: int = 5000) -> list[dict[str, Any]]:
        """A person's check-ins in ``[start, end)``, oldest first, placed against
        the inclusion zones of their current order."""
        rows = await conn.fetch(
            f"SELECT {_READ_COLUMNS} {_FROM} ORDER BY c.ts, c.device_id LIMIT $5",
            person_id, scope, start, end, limit,
        )
        items = [_checkin_json(r) for r in rows]
        if items:
            catalogue = await inclusion_zones(conn, person_id)
            for item, where in zip(items, place(catalogue, items), strict=True):
                item["placement"] = where
        return items


def _checkin_json(r: asyncpg.Record) -> dict[str, Any]:
    min_score = r["min_score"]
    why = None if min_score is None else list(failures(r["face_score"], r["action_ok"], min_score))
    return {"person_id": r["person_id"], "device_id": r["device_id"],
            "ts": format_ts(int(r["ts"].timestamp() * 1000)), "lat": r["lat"], "lon": r["lon"],
            "accuracy_m": r["accuracy_m"], "face_score": r["face_score"],
            "action_ok": r["action_ok"], "method": r["method"], "request_id": r["request_id"],
            "min_score": min_score, "verified": r["verified"], "failures": why,
            "placement": None}


async def inclusion_zones(conn: asyncpg.Connection, person_id: str) -> ZoneCatalogue | None:
    """The current zones of the inclusion rules of a person's current order (None: none)."""
    body = await conn.fetchval(
        "SELECT body FROM orders WHERE person_id = $1 ORDER BY version DESC LIMIT 1", person_id)
    if not isinstance(body, dict):
        return None
    try:
        order = parse_order(body)
    except ValidationError:
        return None
    ids = sorted({r.zone for r in order.rules if r.type == "inclusion" and r.zone})
    if not ids:
        return None
    rows = await conn.fetch(
        """SELECT DISTINCT ON (zone_id) zone_id, feature FROM zones
            WHERE zone_id = ANY($1::text[]) ORDER BY zone_id, version DESC""", ids)
    features = [{**r["feature"], "id": r["zone_id"]} for r in rows if r["feature"] is not None]
    if not features:
        return None
    try:
        return ZoneCatalogue.from_geojson({"type": "FeatureCollection", "features": features})
    except ValidationError:
        return None


def place(catalogue: ZoneCatalogue | None, items: Sequence[dict[str, Any]]) -> list[Placement | None]:
    """Where each check-in lies against every zone of ``catalogue`` (the person's
    inclusion zones): ``outside`` when certainly outside one, ``inside`` when
    certainly inside all, ``uncertain`` otherwise; None without zones."""
    if catalogue is None or not len(catalogue) or not items:
        return [None] * len(items)
    n, k = len(items), len(catalogue)
    lon = np.repeat(np.array([i["lon"] for i in items], np.float64), k)
    lat = np.repeat(np.array([i["lat"] for i in items], np.float64), k)
    acc = np.repeat(np.array([i["accuracy_m"] for i in items], np.float64), k)
    zone = np.tile(np.arange(k, dtype=np.int64), n)
    d = catalogue.signed_distance_m(zone, lon, lat, acc)
    c1, _ = zone_codes(d, acc, np.zeros(n * k), np.full(n * k, INCLUSION, np.int8))
    which = placement(np.asarray(c1).reshape(n, k))
    return [_PLACEMENTS[i] for i in which.tolist()]
