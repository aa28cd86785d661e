"""The alert store: idempotent record application, scoped queries, audit.

Every query that returns command-centre data takes the caller's
:class:`Principal` and restricts rows **in SQL** with
``jurisdiction LIKE $n || '%'`` (the caller's admin-code prefix as a bound
parameter; codes are digits only, enforced by a CHECK constraint, so no
wildcard can sneak in). Nothing is filtered in Python after a query.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from alerts.db import utc
from alerts.errors import BadRequestError, ForbiddenError, NotFoundError
from geofence.model import Alert, AlertRecord, format_ts

ROLES: tuple[str, ...] = ("viewer", "operator", "supervisor", "admin")
STATUSES: tuple[str, ...] = ("open", "cleared", "acknowledged", "resolved")
SEVERITY_ORDER: tuple[str, ...] = ("red", "orange", "yellow", "blue")
_CODE = re.compile(r"^[0-9]{0,6}$")
_RECORD_DECODER = msgspec.json.Decoder(AlertRecord)


@dataclass(frozen=True)
class Principal:
    """An authenticated operator: who, which role, which jurisdiction prefix."""

    operator_id: int
    username: str
    role: str
    jurisdiction: str

    def can(self, role: str) -> bool:
        """Whether this operator's role is at least ``role``."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def covers(self, jurisdiction: str | None) -> bool:
        """Whether a code lies inside this operator's scope (for pushed live data)."""
        return (jurisdiction or "").startswith(self.jurisdiction)


def check_code(value: str, what: str = "jurisdiction") -> str:
    """Validate an admin-code prefix (0-6 digits)."""
    if not _CODE.match(value):
        raise BadRequestError(f"{what} must be 0-6 digits (a GB/T 2260 prefix)")
    return value


def _ts(dt: datetime | None) -> str | None:
    return None if dt is None else format_ts(int(dt.timestamp() * 1000))


ALERT_COLUMNS = (
    "alert_id, person_id, rule_id, kind, severity, jurisdiction, opened_at, cleared_at,"
    " snapshot_at, lat, lon, late, device_id, zone, evidence, reason, first_seen_at,"
    " acknowledged_at, acknowledged_by, resolved_at, resolved_by, resolution_note, tier,"
    " escalated_at, status"
)


def row_to_alert(row: asyncpg.Record) -> Alert:
    """The contract :class:`Alert` for a row of ``alerts``."""
    return Alert(
        alert_id=row["alert_id"], person_id=row["person_id"], rule_id=row["rule_id"],
        kind=row["kind"], severity=row["severity"], opened_at=_ts(row["opened_at"]) or "",
        lat=row["lat"], lon=row["lon"], jurisdiction=row["jurisdiction"] or None,
        cleared_at=_ts(row["cleared_at"]), late=row["late"], status=row["status"],
        device_id=row["device_id"], zone=row["zone"], evidence=row["evidence"],
        updated_at=_ts(row["snapshot_at"]), reason=row["reason"],
    )


def row_to_json(row: asyncpg.Record) -> dict[str, Any]:
    """An alert as the API returns it: the contract fields plus the workflow state."""
    out: dict[str, Any] = msgspec.to_builtins(row_to_alert(row))
    out.update(
        tier=row["tier"], first_seen_at=_ts(row["first_seen_at"]),
        acknowledged_at=_ts(row["acknowledged_at"]), acknowledged_by=row["acknowledged_by"],
        resolved_at=_ts(row["resolved_at"]), resolved_by=row["resolved_by"],
        resolution_note=row["resolution_note"], escalated_at=_ts(row["escalated_at"]),
    )
    return out


def record_json(record: AlertRecord) -> dict[str, Any]:
    """A lifecycle record as plain JSON data."""
    data: dict[str, Any] = msgspec.to_builtins(record)
    return data


def decode_record(raw: bytes) -> AlertRecord:
    """Decode one lifecycle record from the alerts topic (raises msgspec errors)."""
    return _RECORD_DECODER.decode(raw)


async def apply_records(
    conn: asyncpg.Connection, records: Sequence[dict[str, Any]], seen_at_ms: int
) -> list[int]:
    """Apply lifecycle records in order, idempotently; returns indexes of the new ones.

    A record already applied (same content) changes nothing, so replaying the
    alerts topic any number of times leaves the store as it was.
    """
    if not records:
        return []
    rows = await conn.fetch(
        "SELECT i FROM wardstream_apply_records($1::jsonb, $2) AS i",
        json.dumps(list(records), separators=(",", ":")), utc(seen_at_ms),
    )
    return [r["i"] - 1 for r in rows]


# ------------------------------------------------------------------ audit


async def audit(
    conn: asyncpg.Connection, at_ms: int, operator: str | None, action: str,
    target: str | None, detail: dict[str, Any] | None, remote: str | None,
) -> None:
    """Append one audit row (who, when, what, on what, from where)."""
    await conn.execute(
        "INSERT INTO audit_log (at, operator, action, target, detail, remote)"
        " VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
        utc(at_ms), operator, action, target,
        None if detail is None else json.dumps(detail), remote,
    )


# ------------------------------------------------------------------ alerts


def _parse_since(since: str | None) -> datetime | None:
    if since is None or since == "":
        return None
    from geofence.errors import ValidationError
    from geofence.model import parse_ts

    try:
        value: object = int(since) if since.isascii() and since.isdigit() else since
        return utc(parse_ts(value, "since"))
    except ValidationError as exc:
        raise BadRequestError(exc.detail) from None


async def list_alerts(
    conn: asyncpg.Connection, who: Principal, *, status: str | None = None,
    severity: str | None = None, since: str | None = None, person_id: str | None = None,
    jurisdiction: str | None = None, limit: int = 100, offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """Alerts in the caller's scope, newest first, with the total for paging."""
    where = ["jurisdiction LIKE $1 || '%'"]
    args: list[Any] = [who.jurisdiction]
    if status:
        statuses = [s for s in status.split(",") if s]
        bad = [s for s in statuses if s not in STATUSES]
        if bad:
            raise BadRequestError(f"status must be among {', '.join(STATUSES)}")
        args.append(statuses)
        where.append(f"status = ANY(${len(args)}::text[])")
    if severity:
        sevs = [s for s in severity.split(",") if s]
        if any(s not in SEVERITY_ORDER for s in sevs):
            raise BadRequestError(f"severity must be among {', '.join(SEVERITY_ORDER)}")
        args.append(sevs)
        where.append(f"severity = ANY(${len(args)}::text[])")
    since_dt = _parse_since(since)
    if since_dt is not None:
        args.append(since_dt)
        where.append(f"opened_at >= ${len(args)}")
    if person_id:
        args.append(person_id)
        where.append(f"person_id = ${len(args)}")
    if jurisdiction:
        args.append(check_code(jurisdiction))
        where.append(f"jurisdiction LIKE ${len(args)} || '%'")
    if not 1 <= limit <= 1000:
        raise BadRequestError("limit must be 1..1000")
    if offset < 0:
        raise BadRequestError("offset must be >= 0")
    clause = " AND ".join(where)
    total = await conn.fetchval(f"SELECT count(*) FROM alerts WHERE {clause}", *args)
    rows = await conn.fetch(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE {clause}"
        f" ORDER BY opened_at DESC, alert_id LIMIT {int(limit)} OFFSET {int(offset)}",
        *args,
    )
    return [row_to_json(r) for r in rows], int(total)


async def get_alert_row(
    conn: asyncpg.Connection, who: Principal, alert_id: str, *, for_update: bool = False
) -> asyncpg.Record:
    """One alert in scope; NotFoundError if absent, ForbiddenError if outside scope."""
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE alert_id = $1"
        f" AND jurisdiction LIKE $2 || '%'{lock}",
        alert_id, who.jurisdiction,
    )
    if row is not None:
        return row
    exists = await conn.fetchval("SELECT 1 FROM alerts WHERE alert_id = $1", alert_id)
    if exists:
        raise ForbiddenError(f"alert {alert_id!r} is outside jurisdiction {who.jurisdiction!r}")
    raise NotFoundError(f"no alert {alert_id!r}")


async def alert_events(conn: asyncpg.Connection, alert_id: str) -> list[dict[str, Any]]:
    """The lifecycle history of one alert (caller has checked scope)."""
    rows = await conn.fetch(
        "SELECT event, at, recorded_at, operator, note, tier FROM alert_events"
        " WHERE alert_id = $1 ORDER BY id", alert_id,
    )
    return [
        {"event": r["event"], "at": _ts(r["at"]), "recorded_at": _ts(r["recorded_at"]),
         "operator": r["operator"], "note": r["note"], "tier": r["tier"]}
        for r in rows
    ]


# ------------------------------------------------------------------ persons and risk

RISK_RULE = """\
Risk colour of a person, from their alerts (first match wins; `now` is the
store's clock):
  red    - an unresolved red alert that has not cleared, or an unresolved
           tamper or removed alert (those never clear by themselves);
  orange - an unresolved orange alert that has not cleared, or any red alert
           opened in the last 72 h;
  yellow - an unresolved yellow alert that has not cleared, or any orange
           alert opened in the last 72 h, or 3 or more alerts opened in the
           last 30 days;
  blue   - otherwise (under supervision, nothing recent).
"""

RISK_SQL = """
    CASE
      WHEN count(*) FILTER (WHERE a.resolved_at IS NULL AND
             ((a.severity = 'red' AND a.cleared_at IS NULL) OR a.kind IN ('tamper', 'removed'))) > 0
        THEN 'red'
      WHEN count(*) FILTER (WHERE (a.resolved_at IS NULL AND a.cleared_at IS NULL AND a.severity = 'orange')
             OR (a.severity = 'red' AND a.opened_at >= {now} - interval '72 hours')) > 0
        THEN 'orange'
      WHEN count(*) FILTER (WHERE (a.resolved_at IS NULL AND a.cleared_at IS NULL AND a.severity = 'yellow')
             OR (a.severity = 'orange' AND a.opened_at >= {now} - interval '72 hours')) > 0
        OR count(*) FILTER (WHERE a.opened_at >= {now} - interval '30 days') >= 3
        THEN 'yellow'
      ELSE 'blue'
    END
"""


async def list_persons(
    conn: asyncpg.Connection, who: Principal, now_ms: int, *, person_id: str | None = None,
    jurisdiction: str | None = None, limit: int = 500, offset: int = 0,
) -> list[dict[str, Any]]:
    """Persons in scope with their risk colour, open alert count and last position."""
    where = ["p.jurisdiction LIKE $1 || '%'"]
    args: list[Any] = [who.jurisdiction, utc(now_ms)]
    if person_id:
        args.append(person_id)
        where.append(f"p.person_id = ${len(args)}")
    if jurisdiction:
        args.append(check_code(jurisdiction))
        where.append(f"p.jurisdiction LIKE ${len(args)} || '%'")
    if not 1 <= limit <= 5000 or offset < 0:
        raise BadRequestError("limit must be 1..5000 and offset >= 0")
    risk = RISK_SQL.format(now="$2::timestamptz")
    rows = await conn.fetch(
        f"""
        SELECT p.person_id, p.jurisdiction, r.risk, r.open_alerts, pos.ts, pos.lat, pos.lon,
               pos.device_id
          FROM persons p
          LEFT JOIN LATERAL (
              SELECT {risk} AS risk,
                     count(*) FILTER (WHERE a.status IN ('open', 'acknowledged')) AS open_alerts
                FROM alerts a WHERE a.person_id = p.person_id) r ON true
          LEFT JOIN LATERAL (
              SELECT lp.device_id, lp.ts, lp.lat, lp.lon
                FROM devices d JOIN latest_positions lp ON lp.device_id = d.device_id
               WHERE d.person_id = p.person_id
               ORDER BY lp.ts DESC LIMIT 1) pos ON true
         WHERE {' AND '.join(where)}
         ORDER BY p.person_id LIMIT {int(limit)} OFFSET {int(offset)}
        """,
        *args,
    )
    return [
        {"person_id": r["person_id"], "jurisdiction": r["jurisdiction"], "risk": r["risk"],
         "open_alerts": r["open_alerts"],
         "position": None if r["ts"] is None else
         {"ts": _ts(r["ts"]), "lat": r["lat"], "lon": r["lon"], "device_id": r["device_id"]}}
        for r in rows
    ]


async def person_in_scope(conn: asyncpg.Connection, who: Principal, person_id: str) -> str:
    """The person's jurisdiction if in scope; ForbiddenError / NotFoundError otherwise."""
    code = await conn.fetchval(
        "SELECT jurisdiction FROM persons WHERE person_id = $1 AND jurisdiction LIKE $2 || '%'",
        person_id, who.jurisdiction,
    )
    if code is not None:
        return str(code)
    if await conn.fetchval("SELECT 1 FROM persons WHERE person_id = $1", person_id):
        raise ForbiddenError(f"person {person_id!r} is outside jurisdiction {who.jurisdiction!r}")
    raise NotFoundError(f"no person {person_id!r}")


async def risk_of(conn: asyncpg.Connection, person_ids: Sequence[str], now_ms: int) -> dict[str, tuple[str, str]]:
    """``person_id -> (risk colour, jurisdiction)`` for live updates (no scope: internal)."""
    if not person_ids:
        return {}
    risk = RISK_SQL.format(now="$2::timestamptz")
    rows = await conn.fetch(
        f"""SELECT p.person_id, p.jurisdiction, (SELECT {risk} FROM alerts a
                   WHERE a.person_id = p.person_id) AS risk
              FROM persons p WHERE p.person_id = ANY($1::text[])""",
        list(person_ids), utc(now_ms),
    )
    return {r["person_id"]: (r["risk"], r["jurisdiction"]) for r in rows}


async def jurisdiction_counts(
    conn: asyncpg.Connection, who: Principal, prefix: str, now_ms: int
) -> dict[str, Any]:
    """Open alerts by severity and persons by risk, per child code of ``prefix``.

    ``prefix`` '' -> provinces (2 digits), '32' -> cities (4), '3201' -> counties (6).
    A prefix broader than the caller's scope is narrowed to the scope.
    """
    check_code(prefix, "prefix")
    if not prefix.startswith(who.jurisdiction):
        if who.jurisdiction.startswith(prefix):
            prefix = who.jurisdiction
        else:
            raise ForbiddenError(f"prefix {prefix!r} is outside jurisdiction {who.jurisdiction!r}")
    width = min(6, len(prefix) + 2) if len(prefix) < 6 else 6
    width = max(width, 2)
    risk = RISK_SQL.format(now="$3::timestamptz")
    alert_rows = await conn.fetch(
        f"""SELECT left(jurisdiction, {width}) AS code, severity, count(*) AS n
              FROM alerts
             WHERE jurisdiction LIKE $1 || '%' AND jurisdiction LIKE $2 || '%'
               AND status IN ('open', 'acknowledged')
             GROUP BY 1, 2""",
        who.jurisdiction, prefix,
    )
    person_rows = await conn.fetch(
        f"""SELECT left(p.jurisdiction, {width}) AS code, r.risk, count(*) AS n
              FROM persons p
              LEFT JOIN LATERAL (SELECT {risk} AS risk FROM alerts a
                                  WHERE a.person_id = p.person_id) r ON true
             WHERE p.jurisdiction LIKE $1 || '%' AND p.jurisdiction LIKE $2 || '%'
             GROUP BY 1, 2""",
        who.jurisdiction, prefix, utc(now_ms),
    )
    out: dict[str, dict[str, Any]] = {}

    def entry(code: str) -> dict[str, Any]:
        return out.setdefault(code, {"code": code, "alerts": dict.fromkeys(SEVERITY_ORDER, 0),
                                     "persons": dict.fromkeys(SEVERITY_ORDER, 0)})

    for r in alert_rows:
        entry(r["code"])["alerts"][r["severity"]] = r["n"]
    for r in person_rows:
        entry(r["code"])["persons"][r["risk"]] = r["n"]
    return {"prefix": prefix, "level": {2: "province", 4: "city", 6: "county"}[width],
            "items": [out[k] for k in sorted(out)]}


# ------------------------------------------------------------------ orders and zones


async def list_orders(conn: asyncpg.Connection, who: Principal) -> list[dict[str, Any]]:
    """The current version of every order in scope (removed ones omitted)."""
    rows = await conn.fetch(
        """SELECT DISTINCT ON (person_id) person_id, version, jurisdiction, body, created_at,
                  created_by
             FROM orders WHERE jurisdiction LIKE $1 || '%'
            ORDER BY person_id, version DESC""",
        who.jurisdiction,
    )
    return [
        {"person_id": r["person_id"], "version": r["version"], "order": r["body"],
         "created_at": _ts(r["created_at"]), "created_by": r["created_by"]}
        for r in rows if r["body"] is not None
    ]


async def order_history(conn: asyncpg.Connection, who: Principal, person_id: str) -> list[dict[str, Any]]:
    """Every version of one person's order (in scope)."""
    rows = await conn.fetch(
        """SELECT version, body, created_at, created_by FROM orders
            WHERE person_id = $1 AND jurisdiction LIKE $2 || '%' ORDER BY version""",
        person_id, who.jurisdiction,
    )
    return [{"version": r["version"], "order": r["body"], "created_at": _ts(r["created_at"]),
             "created_by": r["created_by"]} for r in rows]


async def save_order(
    conn: asyncpg.Connection, order: dict[str, Any], jurisdiction: str, valid_from_ms: int | None,
    valid_until_ms: int | None, devices: Sequence[str], at_ms: int, by: str,
) -> int | None:
    """Store a new version of an order if it differs from the current one.

    Returns the new version, or ``None`` when the content was unchanged
    (importing the same file twice creates no versions). Devices and the
    person's jurisdiction follow the new version.
    """
    person_id = order["person_id"]
    current = await conn.fetchrow(
        "SELECT version, body FROM orders WHERE person_id = $1 ORDER BY version DESC LIMIT 1",
        person_id,
    )
    if current is not None and current["body"] == order:
        return None
    version = 1 if current is None else current["version"] + 1
    await conn.execute(
        "INSERT INTO orders (person_id, version, jurisdiction, valid_from, valid_until, body,"
        " created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)",
        person_id, version, jurisdiction,
        None if valid_from_ms is None else utc(valid_from_ms),
        None if valid_until_ms is None else utc(valid_until_ms),
        json.dumps(order), utc(at_ms), by,
    )
    await conn.execute(
        "INSERT INTO persons (person_id, jurisdiction, updated_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (person_id) DO UPDATE SET jurisdiction = EXCLUDED.jurisdiction,"
        " updated_at = EXCLUDED.updated_at",
        person_id, jurisdiction, utc(at_ms),
    )
    await conn.execute("DELETE FROM devices WHERE person_id = $1", person_id)
    for dev in devices:
        await conn.execute(
            "INSERT INTO devices (device_id, person_id, valid_from, valid_until)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            dev, person_id,
            utc(0) if valid_from_ms is None else utc(valid_from_ms),
            utc(253402300799000) if valid_until_ms is None else utc(valid_until_ms),
        )
    return version


async def list_zones(conn: asyncpg.Connection, who: Principal) -> list[dict[str, Any]]:
    """Current zones visible to the caller: zones of their jurisdiction, zones
    without one only to national scope, and zones used by an order in scope."""
    rows = await conn.fetch(
        """WITH cur AS (
               SELECT DISTINCT ON (zone_id) zone_id, version, jurisdiction, feature,
                      created_at, created_by
                 FROM zones ORDER BY zone_id, version DESC)
           SELECT * FROM cur
            WHERE feature IS NOT NULL AND (
                  (jurisdiction <> '' AND jurisdiction LIKE $1 || '%')
               OR ($1 = '')
               OR EXISTS (SELECT 1 FROM orders o
                            CROSS JOIN LATERAL jsonb_array_elements(o.body -> 'rules') AS r(rule)
                           WHERE o.jurisdiction LIKE $1 || '%' AND o.body IS NOT NULL
                             AND r.rule ->> 'zone' = cur.zone_id))
            ORDER BY zone_id""",
        who.jurisdiction,
    )
    return [
        {"zone_id": r["zone_id"], "version": r["version"], "jurisdiction": r["jurisdiction"],
         "feature": r["feature"], "created_at": _ts(r["created_at"]), "created_by": r["created_by"]}
        for r in rows
    ]


async def save_zone(
    conn: asyncpg.Connection, zone_id: str, feature: dict[str, Any] | None, jurisdiction: str,
    at_ms: int, by: str,
) -> int | None:
    """Store a new version of a zone (``None`` feature removes it); unchanged -> None."""
    current = await conn.fetchrow(
        "SELECT version, feature, jurisdiction FROM zones WHERE zone_id = $1"
        " ORDER BY version DESC LIMIT 1", zone_id,
    )
    if current is not None and current["feature"] == feature:
        return None
    version = 1 if current is None else current["version"] + 1
    await conn.execute(
        "INSERT INTO zones (zone_id, version, jurisdiction, feature, created_at, created_by)"
        " VALUES ($1, $2, $3, $4::jsonb, $5, $6)",
        zone_id, version, jurisdiction, None if feature is None else json.dumps(feature),
        utc(at_ms), by,
    )
    return version


async def zone_jurisdiction(conn: asyncpg.Connection, zone_id: str) -> str | None:
    """Jurisdiction of a zone's latest version (None if the zone is new)."""
    value = await conn.fetchval(
        "SELECT jurisdiction FROM zones WHERE zone_id = $1 ORDER BY version DESC LIMIT 1", zone_id
    )
    return None if value is None else str(value)


def horizon(now_ms: int, days: int) -> datetime:
    """``now - days`` as a datetime."""
    return utc(now_ms) - timedelta(days=days)
