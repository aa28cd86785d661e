"""Reports for superiors and exports: the daily report, track export, district names.

Routes (all authenticated, scoped in SQL to the caller's jurisdiction, audited):

- ``GET /api/reports/daily?date=&jurisdiction=&tz=&format=json|csv``: one
  day (in the operator's time zone, Asia/Shanghai by default) for one
  jurisdiction: alerts by kind and severity, response times by severity,
  persons by risk colour at the end of the day, devices offline.
- ``GET /api/persons/{id}/track/export?from=&to=&tz=``: a person's whole
  history, or any period of it, as CSV, streamed from a server-side cursor a
  batch at a time (never held in memory whole). ``from``/``to`` are RFC 3339
  times, epoch milliseconds or dates (``2026-12-01``: whole days in ``tz``,
  ``to`` inclusive); without ``from`` the export starts at the first fix.
- ``GET /api/districts?prefix=``: ``code -> name`` of the administrative
  divisions in scope (built-in names, overlaid by imported district zones).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
from aiohttp import web

from alerts import store
from alerts.db import utc
from alerts.districts import names_under
from alerts.errors import BadRequestError, ForbiddenError
from alerts.http import AUDITED, SERVICE, path_id, remote_of, str_param, time_param, who_of
from alerts.store import SEVERITY_ORDER, Principal
from alerts.tracks import TrackStore
from geofence.model import format_ts

log = logging.getLogger(__name__)
DEFAULT_TZ = "Asia/Shanghai"
OFFLINE_AFTER = timedelta(minutes=15)
"""A device with no fix in this long before the report's end counts as offline."""
EXPORT_COLUMNS = ("ts", "device_id", "lat", "lon", "accuracy_m", "valid", "speed_mps",
                  "heading_deg", "battery_pct")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TZ = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+){0,2}$")


def _zone(request: web.Request) -> ZoneInfo:
    name = str_param(request, "tz") or DEFAULT_TZ
    if not _TZ.match(name):  # checked before it reaches the file system
        raise BadRequestError(f"tz {name[:64]!r} is not an IANA time zone name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise BadRequestError(f"tz {name!r} is not a known IANA time zone") from None


def _date(text: str, name: str) -> date:
    if not _DATE.match(text):
        raise BadRequestError(f"{name} must be a date YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequestError(f"{name} {text!r} is not a calendar date") from None


def _scope(who: Principal, code: str | None) -> str:
    jur = store.check_code(code) if code else who.jurisdiction
    if not jur.startswith(who.jurisdiction):
        raise ForbiddenError(f"jurisdiction {jur!r} is outside {who.jurisdiction!r}")
    return jur


# ------------------------------------------------------------------ daily report


async def daily_report(conn: asyncpg.Connection, who: Principal, jurisdiction: str,
                       start: datetime, end: datetime, now: datetime) -> dict[str, Any]:
    """The report's figures for ``[start, end)`` inside ``jurisdiction`` (and the caller's scope)."""
    scope = (who.jurisdiction, jurisdiction)
    kinds = await conn.fetch(
        """SELECT kind, severity, count(*) AS n FROM alerts
            WHERE jurisdiction LIKE $1 || '%' AND jurisdiction LIKE $2 || '%'
              AND opened_at >= $3 AND opened_at < $4
            GROUP BY kind, severity ORDER BY kind""", *scope, start, end)
    by_kind: dict[str, dict[str, Any]] = {}
    for r in kinds:
        item = by_kind.setdefault(r["kind"], {"kind": r["kind"], **dict.fromkeys(SEVERITY_ORDER, 0),
                                              "total": 0})
        item[r["severity"]] += r["n"]
        item["total"] += r["n"]

    def median(col: str) -> str:
        return (f"percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM {col} - a.first_seen_at))"
                f" FILTER (WHERE {col} IS NOT NULL)")

    response = await conn.fetch(
        f"""SELECT a.severity, count(*) AS alerts, {median('a.acknowledged_at')} AS ack,
                   {median('d.on_scene_at')} AS scene, {median('a.resolved_at')} AS res
              FROM alerts a LEFT JOIN dispatches d USING (alert_id)
             WHERE a.jurisdiction LIKE $1 || '%' AND a.jurisdiction LIKE $2 || '%'
               AND a.opened_at >= $3 AND a.opened_at < $4
             GROUP BY a.severity""", *scope, start, end)
    at = min(end, now)
    risk = store.RISK_SQL.format(now="$3::timestamptz")
    persons = await conn.fetch(
        f"""SELECT r.risk, count(*) AS n FROM persons p
              LEFT JOIN LATERAL (SELECT {risk} AS risk FROM alerts a
                                  WHERE a.person_id = p.person_id AND a.opened_at < $3) r ON true
             WHERE p.jurisdiction LIKE $1 || '%' AND p.jurisdiction LIKE $2 || '%'
             GROUP BY r.risk""", *scope, at)
    offline = await conn.fetch(
        """SELECT device_id, person_id, last_seen FROM (
               SELECT d.device_id, d.person_id,
                      (SELECT max(f.ts) FROM track_fixes f
                        WHERE f.device_id = d.device_id AND f.ts < $3) AS last_seen
                 FROM devices d JOIN persons p ON p.person_id = d.person_id
                WHERE p.jurisdiction LIKE $1 || '%' AND p.jurisdiction LIKE $2 || '%'
                  AND d.valid_from < $3 AND d.valid_until > $3) x
            WHERE last_seen IS NULL OR last_seen < $4
            ORDER BY device_id""", *scope, at, at - OFFLINE_AFTER)
    rank = {s: i for i, s in enumerate(SEVERITY_ORDER)}
    return {
        "by_kind": list(by_kind.values()),
        "response": sorted(({"severity": r["severity"], "alerts": r["alerts"],
                             "to_acknowledge_s": _round(r["ack"]), "to_on_scene_s": _round(r["scene"]),
                             "to_resolve_s": _round(r["res"])} for r in response),
                           key=lambda x: rank.get(x["severity"], 9)),
        "persons_by_risk": {**dict.fromkeys(SEVERITY_ORDER, 0),
                            **{r["risk"]: r["n"] for r in persons if r["risk"]}},
        "devices_offline": [{"device_id": r["device_id"], "person_id": r["person_id"],
                             "last_seen": None if r["last_seen"] is None else
                             format_ts(int(r["last_seen"].timestamp() * 1000))} for r in offline],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def report_csv(report: dict[str, Any]) -> str:
    """The daily report as CSV: one figure a row (``section,item,severity,value``)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["section", "item", "severity", "value"])
    w.writerow(["report", "jurisdiction", "", report["jurisdiction"]])
    w.writerow(["report", "jurisdiction_name", "", report["jurisdiction_name"]])
    w.writerow(["report", "date", "", report["date"]])
    w.writerow(["report", "timezone", "", report["timezone"]])
    for k in report["by_kind"]:
        for sev in SEVERITY_ORDER:
            if k[sev]:
                w.writerow(["alerts_by_kind", k["kind"], sev, k[sev]])
    for r in report["response"]:
        w.writerow(["alerts_by_severity", "", r["severity"], r["alerts"]])
        for name in ("to_acknowledge_s", "to_on_scene_s", "to_resolve_s"):
            w.writerow([f"median_{name}", "", r["severity"], "" if r[name] is None else r[name]])
    for sev in SEVERITY_ORDER:
        w.writerow(["persons_by_risk", "", sev, report["persons_by_risk"][sev]])
    for d in report["devices_offline"]:
        w.writerow(["device_offline", f"{d['device_id']} ({d['person_id']})", "", d["last_seen"] or ""])
    return buf.getvalue()


async def get_daily_report(request: web.Request) -> web.Response:
    """GET /api/reports/daily?date=&jurisdiction=&tz=&format=json|csv."""
    service, who = request.app[SERVICE], who_of(request)
    zone = _zone(request)
    fmt = str_param(request, "format") or "json"
    if fmt not in ("json", "csv"):
        raise BadRequestError("format must be json or csv")
    now = utc(service.clock())
    raw_date = str_param(request, "date")
    day = _date(raw_date, "date") if raw_date else now.astimezone(zone).date()
    jur = _scope(who, str_param(request, "jurisdiction"))
    start = datetime.combine(day, time(), zone)
    end = datetime.combine(day + timedelta(days=1), time(), zone)
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn:
        figures = await daily_report(conn, who, jur, start, end, now)
        extra = await district_names(conn, who)
        await store.audit(conn, service.clock(), who.username, "report.daily", jur,
                          {"date": day.isoformat(), "format": fmt}, remote_of(request))
    report = {"jurisdiction": jur, "jurisdiction_name": names_under(jur, extra).get(jur, jur),
              "date": day.isoformat(), "timezone": zone.key, "from": start.isoformat(),
              "to": end.isoformat(), **figures}
    if fmt == "csv":
        return web.Response(
            text=report_csv(report), content_type="text/csv", charset="utf-8",
            headers={"Content-Disposition":
                     f'attachment; filename="report-{jur or "all"}-{day.isoformat()}.csv"'})
    return web.json_response(report)


# ------------------------------------------------------------------ track export


def _bound(request: web.Request, name: str, zone: ZoneInfo, end_of_day: bool) -> int | None:
    raw = str_param(request, name)
    if raw is None or not _DATE.match(raw):
        return time_param(request, name)
    day = _date(raw, name) + timedelta(days=1 if end_of_day else 0)
    return int(datetime.combine(day, time(), zone).timestamp() * 1000)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:64]


async def export_track(request: web.Request) -> web.StreamResponse:
    """GET /api/persons/{id}/track/export?from=&to=&tz=: the track as streamed CSV; audited."""
    service, who = request.app[SERVICE], who_of(request)
    person_id = path_id(request, "person_id")
    zone = _zone(request)
    now = service.clock()
    end = _bound(request, "to", zone, True) or now
    start = _bound(request, "from", zone, False)
    start = 0 if start is None else start
    if end <= start:
        raise BadRequestError("`to` must be after `from`")
    span = {"from": format_ts(start), "to": format_ts(end)}
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn:
        try:
            await store.person_in_scope(conn, who, person_id)
        except ForbiddenError:
            await store.audit(conn, now, who.username, "track.export_denied", person_id, span,
                              remote_of(request))
            request[AUDITED] = True
            raise
        await store.audit(conn, now, who.username, "track.export", person_id, span,
                          remote_of(request))
        response = web.StreamResponse(headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="track-{_safe_name(person_id)}.csv"'})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write((",".join(EXPORT_COLUMNS) + "\r\n").encode())
        try:
            async for batch in TrackStore.stream(conn, person_id, who.jurisdiction, utc(start),
                                                 utc(end)):
                buf = io.StringIO()
                w = csv.writer(buf, lineterminator="\r\n")
                for f in batch:
                    w.writerow(["" if f[c] is None else f[c] for c in EXPORT_COLUMNS])
                await response.write(buf.getvalue().encode())
        except (ConnectionResetError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            log.warning("track export of %s stopped: %s", person_id, exc)
            if not isinstance(exc, ConnectionResetError):
                await response.write(b"# export interrupted: the store failed; export again\r\n")
            return response
    await response.write_eof()
    return response


# ------------------------------------------------------------------ district names


async def district_names(conn: asyncpg.Connection, who: Principal) -> dict[str, str]:
    """``code -> name`` of the imported district zones in the caller's scope."""
    rows = await conn.fetch(
        """SELECT DISTINCT ON (zone_id) zone_id, feature FROM zones
            WHERE jurisdiction LIKE $1 || '%' ORDER BY zone_id, version DESC""",
        who.jurisdiction)
    out: dict[str, str] = {}
    for r in rows:
        props = (r["feature"] or {}).get("properties") or {}
        code, name = props.get("code") or props.get("jurisdiction"), props.get("name")
        if props.get("category") == "district" and isinstance(code, str) and isinstance(name, str) \
                and code.startswith(who.jurisdiction):
            out[code] = name
    return out


async def get_districts(request: web.Request) -> web.Response:
    """GET /api/districts?prefix=: names of the divisions at and below a code in scope."""
    service, who = request.app[SERVICE], who_of(request)
    prefix = store.check_code(str_param(request, "prefix") or who.jurisdiction, "prefix")
    if not prefix.startswith(who.jurisdiction):
        if not who.jurisdiction.startswith(prefix):
            raise ForbiddenError(f"prefix {prefix!r} is outside jurisdiction {who.jurisdiction!r}")
        prefix = who.jurisdiction
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn:
        extra = await district_names(conn, who)
        await store.audit(conn, service.clock(), who.username, "districts.read", prefix or None,
                          None, remote_of(request))
    return web.json_response({"prefix": prefix, "names": names_under(prefix, extra)})


def openapi_paths() -> dict[str, Any]:
    """The OpenAPI description of these routes (merged into ``/api/openapi.json``)."""
    err = {"description": "error", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}

    def q(name: str, schema: dict[str, Any], desc: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": schema, "description": desc}

    text = {"type": "string", "maxLength": 64}
    tz = q("tz", text, "IANA time zone of dates (default Asia/Shanghai)")
    csv_body = {"content": {"text/csv": {"schema": {"type": "string"}}}}
    return {
        "/api/reports/daily": {"get": {
            "summary": "Daily report of one jurisdiction (audited)",
            "parameters": [q("date", text, "YYYY-MM-DD (default today)"),
                           q("jurisdiction", text, "GB/T 2260 prefix inside the caller's scope"),
                           tz, q("format", {"type": "string", "enum": ["json", "csv"]}, "json or csv")],
            "responses": {"200": {"description": "the report", "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}}}},
                "400": err, "401": err, "403": err}}},
        "/api/persons/{person_id}/track/export": {"get": {
            "summary": "A person's track for any period as streamed CSV (audited)",
            "parameters": [{"name": "person_id", "in": "path", "required": True,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 256}},
                           q("from", text, "RFC 3339, epoch ms or a date (default: the first fix)"),
                           q("to", text, "RFC 3339, epoch ms or a date, inclusive (default now)"), tz],
            "responses": {"200": {"description": "CSV", **csv_body},
                          "400": err, "401": err, "403": err, "404": err}}},
        "/api/districts": {"get": {
            "summary": "Names of the administrative divisions in scope",
            "parameters": [q("prefix", text, "GB/T 2260 prefix")],
            "responses": {"200": {"description": "code -> name", "content": {
                "application/json": {"schema": {"type": "object"}}}},
                "400": err, "401": err, "403": err}}},
    }


def register(app: web.Application) -> None:
    """Add the report, export and district routes."""
    r = app.router
    r.add_get("/api/reports/daily", get_daily_report)
    r.add_get("/api/persons/{person_id}/track/export", export_track)
    r.add_get("/api/districts", get_districts)
