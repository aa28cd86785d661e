"""Dispatch, note threads and response-time figures of alerts.

An operator assigns an alert to an officer (and optionally a unit); the
dispatch then moves forward only: ``dispatched`` -> ``en_route`` ->
``on_scene`` -> ``resolved``, each step stamped with its time. Any operator
in scope may add a note to an alert. Response times are counted from when
the command centre first saw the alert (``first_seen_at``) to its
acknowledgement, to the dispatched officer on scene, and to its resolution,
as median and 90th percentile per severity and jurisdiction. Every route is
limited in SQL to the caller's jurisdiction prefix and audited.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from alerts.api import SERVICE, _json_body, _path_id, _require, _time_param, remote_of, who_of
from alerts.db import utc
from alerts.errors import BadRequestError, WorkflowError
from alerts.notify.store import _plain
from alerts.store import Principal, audit, get_alert_row

STEPS = ("dispatched", "en_route", "on_scene", "resolved")


def _text(body: dict[str, Any], name: str, limit: int, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise BadRequestError(f"{name} must be 1-{limit} characters")
    return value.strip()


async def _alert_in_scope(conn: asyncpg.Connection, who: Principal, alert_id: str) -> None:
    await get_alert_row(conn, who, alert_id)  # NotFoundError / ForbiddenError


async def dispatch(request: web.Request) -> web.Response:
    """POST /api/alerts/{alert_id}/dispatch {"assignee", "unit"} (operator+)."""
    service, who = request.app[SERVICE], who_of(request)
    _require(who, "operator")
    alert_id = _path_id(request, "alert_id")
    body = await _json_body(request)
    assignee = _text(body, "assignee", 100)
    unit = _text(body, "unit", 100, required=False)
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn, conn.transaction():
        await _alert_in_scope(conn, who, alert_id)
        row = await conn.fetchrow(
            "INSERT INTO dispatches AS d (alert_id, assignee, unit, status, dispatched_at,"
            " dispatched_by) VALUES ($1, $2, $3, 'dispatched', $4, $5)"
            " ON CONFLICT (alert_id) DO UPDATE SET assignee = $2, unit = $3, dispatched_by = $5"
            " WHERE d.status <> 'resolved' RETURNING *",
            alert_id, assignee, unit, utc(service.clock()), who.username)
        if row is None:
            raise WorkflowError("already_resolved", "the dispatch is resolved")
        await audit(conn, service.clock(), who.username, "alert.dispatch", alert_id,
                    {"assignee": assignee, "unit": unit}, remote_of(request))
    return web.json_response(_plain(row), status=201)


async def dispatch_status(request: web.Request) -> web.Response:
    """POST /api/alerts/{alert_id}/dispatch/status {"status"}: one step forward."""
    service, who = request.app[SERVICE], who_of(request)
    _require(who, "operator")
    alert_id = _path_id(request, "alert_id")
    body = await _json_body(request)
    status = body.get("status")
    if status not in STEPS[1:]:
        raise BadRequestError(f"status must be one of {', '.join(STEPS[1:])}")
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn, conn.transaction():
        await _alert_in_scope(conn, who, alert_id)
        current = await conn.fetchval(
            "SELECT status FROM dispatches WHERE alert_id = $1 FOR UPDATE", alert_id)
        if current is None:
            raise WorkflowError("not_dispatched", "the alert has no dispatch", 409)
        if STEPS.index(status) <= STEPS.index(current):
            raise WorkflowError("out_of_order", f"the dispatch is already {current}", 409)
        row = await conn.fetchrow(
            f"UPDATE dispatches SET status = $2, {status}_at = $3 WHERE alert_id = $1 RETURNING *",
            alert_id, status, utc(service.clock()))
        await audit(conn, service.clock(), who.username, "alert.dispatch.status", alert_id,
                    {"status": status}, remote_of(request))
    assert row is not None
    return web.json_response(_plain(row))


async def get_dispatch(request: web.Request) -> web.Response:
    """GET /api/alerts/{alert_id}/dispatch: the dispatch and the note thread."""
    service, who = request.app[SERVICE], who_of(request)
    alert_id = _path_id(request, "alert_id")
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn:
        await _alert_in_scope(conn, who, alert_id)
        row = await conn.fetchrow("SELECT * FROM dispatches WHERE alert_id = $1", alert_id)
        notes = await conn.fetch("SELECT note_id, at, operator, body FROM alert_notes"
                                 " WHERE alert_id = $1 ORDER BY at, note_id", alert_id)
        await audit(conn, service.clock(), who.username, "alert.dispatch.read", alert_id, None,
                    remote_of(request))
    return web.json_response({"dispatch": None if row is None else _plain(row),
                              "notes": [_plain(n) for n in notes]})


async def add_note(request: web.Request) -> web.Response:
    """POST /api/alerts/{alert_id}/notes {"body"} (operator+)."""
    service, who = request.app[SERVICE], who_of(request)
    _require(who, "operator")
    alert_id = _path_id(request, "alert_id")
    text = _text(await _json_body(request), "body", 4000)
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn, conn.transaction():
        await _alert_in_scope(conn, who, alert_id)
        row = await conn.fetchrow(
            "INSERT INTO alert_notes (alert_id, at, operator, body) VALUES ($1, $2, $3, $4)"
            " RETURNING note_id, at, operator, body",
            alert_id, utc(service.clock()), who.username, text)
        assert row is not None
        await audit(conn, service.clock(), who.username, "alert.note", alert_id,
                    {"note_id": row["note_id"]}, remote_of(request))
    return web.json_response(_plain(row), status=201)


async def response_times(request: web.Request) -> web.Response:
    """GET /api/response-times?since=&until=: median and p90 seconds per severity, jurisdiction."""
    service, who = request.app[SERVICE], who_of(request)
    since, until = _time_param(request, "since"), _time_param(request, "until")
    assert service.pool is not None

    def pair(end: str) -> str:
        d = f"extract(epoch FROM {end} - a.first_seen_at)"
        return (f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {d}) AS {end.split('.')[1]}_p50,"
                f" percentile_cont(0.9) WITHIN GROUP (ORDER BY {d}) AS {end.split('.')[1]}_p90,"
                f" count({end}) AS {end.split('.')[1]}_n")

    async with service.pool.acquire(timeout=5) as conn:
        rows = await conn.fetch(
            f"SELECT a.severity, a.jurisdiction, count(*) AS alerts,"
            f" {pair('a.acknowledged_at')}, {pair('d.on_scene_at')}, {pair('a.resolved_at')}"
            " FROM alerts a LEFT JOIN dispatches d USING (alert_id)"
            " WHERE a.jurisdiction LIKE $1 || '%'"
            " AND ($2::timestamptz IS NULL OR a.first_seen_at >= $2)"
            " AND ($3::timestamptz IS NULL OR a.first_seen_at < $3)"
            " GROUP BY a.severity, a.jurisdiction ORDER BY a.severity, a.jurisdiction",
            who.jurisdiction, None if since is None else utc(since),
            None if until is None else utc(until))
        await audit(conn, service.clock(), who.username, "alert.response_times.read", None, None,
                    remote_of(request))
    out = []
    for r in rows:
        item: dict[str, Any] = {"severity": r["severity"], "jurisdiction": r["jurisdiction"],
                                "alerts": r["alerts"]}
        for name, col in (("to_acknowledge", "acknowledged_at"), ("to_on_scene", "on_scene_at"),
                          ("to_resolve", "resolved_at")):
            item[name] = {"n": r[f"{col}_n"],
                          "median_s": None if r[f"{col}_p50"] is None else round(r[f"{col}_p50"], 1),
                          "p90_s": None if r[f"{col}_p90"] is None else round(r[f"{col}_p90"], 1)}
        out.append(item)
    return web.json_response({"response_times": out})


def register(app: web.Application) -> None:
    """Add the dispatch, note and response-time routes."""
    r = app.router
    r.add_get("/api/alerts/{alert_id}/dispatch", get_dispatch)
    r.add_post("/api/alerts/{alert_id}/dispatch", dispatch)
    r.add_post("/api/alerts/{alert_id}/dispatch/status", dispatch_status)
    r.add_post("/api/alerts/{alert_id}/notes", add_note)
    r.add_get("/api/response-times", response_times)
