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

from aiohttp import web

from alerts.db import utc
from alerts.errors import BadRequestError, WorkflowError
from alerts.http import (
    audit_request,
    caller,
    connection,
    json_body,
    path_id,
    text_field,
    time_param,
)
from alerts.notify.store import json_row
from alerts.store import get_alert_row

STEPS = ("dispatched", "en_route", "on_scene", "resolved")


async def dispatch(request: web.Request) -> web.Response:
    """POST /api/alerts/{alert_id}/dispatch {"assignee", "unit"} (operator+)."""
    service, who = caller(request, "operator")
    alert_id = path_id(request, "alert_id")
    body = await json_body(request)
    assignee = text_field(body, "assignee", 100)
    unit = text_field(body, "unit", 100, required=False)
    async with connection(request) as conn, conn.transaction():
        await get_alert_row(conn, who, alert_id)  # 404 / 403 outside scope
        row = await conn.fetchrow(
            "INSERT INTO dispatches AS d (alert_id, assignee, unit, status, dispatched_at,"
            " dispatched_by) VALUES ($1, $2, $3, 'dispatched', $4, $5)"
            " ON CONFLICT (alert_id) DO UPDATE SET assignee = $2, unit = $3, dispatched_by = $5"
            " WHERE d.status <> 'resolved' RETURNING *",
            alert_id, assignee, unit, utc(service.clock()), who.username)
        if row is None:
            raise WorkflowError("already_resolved", "the dispatch is resolved")
        await audit_request(conn, request, "alert.dispatch", alert_id,
                            {"assignee": assignee, "unit": unit})
    return web.json_response(json_row(row), status=201)


async def dispatch_status(request: web.Request) -> web.Response:
    """POST /api/alerts/{alert_id}/dispatch/status {"status"}: one step forward."""
    service, who = caller(request, "operator")
    alert_id = path_id(request, "alert_id")
    body = await json_body(request)
    status = body.get("status")
    if status not in STEPS[1:]:
        raise BadRequestError(f"status must be one of {', '.join(STEPS[1:])}")
    async with connection(request) as conn, conn.transaction():
        await get_alert_row(conn, who, alert_id)  # 404 / 403 outside scope
        current = await conn.fetchval(
            "SELECT status FROM dispatches WHERE alert_id = $1 FOR UPDATE", alert_id)
        if current is None:
            raise WorkflowError("not_dispatched", "the alert has no dispatch", 409)
        if STEPS.index(status) <= STEPS.index(current):
            raise WorkflowError("out_of_order", f"the dispatch is already {current}", 409)
        row = await conn.fetchrow(
            f"UPDATE dispatches SET status = $2, {status}_at = $3 WHERE alert_id = $1 RETURNING *",
            alert_id, status, utc(service.clock()))
        await audit_request(conn, request, "alert.dispatch.status", alert_id, {"status": status})
    assert row is not None
    return web.json_response(json_row(row))


async def get_dispatch(request: web.Request) -> web.Response:
    """GET /api/alerts/{alert_id}/dispatch: the dispatch and the note thread."""
    _, who = caller(request)
    alert_id = path_id(request, "alert_id")
    async with connection(request) as conn:
        await get_alert_row(conn, who, alert_id)  # 404 / 403 outside scope
        row = await conn.fetchrow("SELECT * FROM dispatches WHERE alert_id = $1", alert_id)
        notes = await conn.fetch("SELECT note_id, at, operator, body FROM alert_notes"
                                 " WHERE alert_id = $1 ORDER BY at, note_id", alert_id)
        await audit_request(conn, request, "alert.dispatch.read", alert_id)
    return web.json_response({"dispatch": None if row is None else json_row(row),
                              "notes": [json_row(n) for n in notes]})


async def add_note(request: web.Request) -> web.Response:
    """POST /api/alerts/{alert_id}/notes {"body"} (operator+)."""
    service, who = caller(request, "operator")
    alert_id = path_id(request, "alert_id")
    text = text_field(await json_body(request), "body", 4000)
    async with connection(request) as conn, conn.transaction():
        await get_alert_row(conn, who, alert_id)  # 404 / 403 outside scope
        row = await conn.fetchrow(
            "INSERT INTO alert_notes (alert_id, at, operator, body) VALUES ($1, $2, $3, $4)"
            " RETURNING note_id, at, operator, body",
            alert_id, utc(service.clock()), who.username, text)
        assert row is not None
        await audit_request(conn, request, "alert.note", alert_id, {"note_id": row["note_id"]})
    return web.json_response(json_row(row), status=201)


FIGURES = (("to_acknowledge", "a.acknowledged_at"), ("to_on_scene", "d.on_scene_at"),
           ("to_resolve", "a.resolved_at"))
"""Each response-time figure and the time it counts to from ``first_seen_at``."""


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


async def response_times(request: web.Request) -> web.Response:
    """GET /api/response-times?since=&until=: median and p90 seconds per severity, jurisdiction."""
    _, who = caller(request)
    since, until = time_param(request, "since"), time_param(request, "until")
    columns = "".join(
        f", percentile_cont(0.5) WITHIN GROUP (ORDER BY {d}) AS {name}_p50"
        f", percentile_cont(0.9) WITHIN GROUP (ORDER BY {d}) AS {name}_p90"
        f", count({end}) AS {name}_n"
        for name, end in FIGURES for d in (f"extract(epoch FROM {end} - a.first_seen_at)",))
    async with connection(request) as conn:
        rows = await conn.fetch(
            f"SELECT a.severity, a.jurisdiction, count(*) AS alerts{columns}"
            " FROM alerts a LEFT JOIN dispatches d USING (alert_id)"
            " WHERE a.jurisdiction LIKE $1 || '%'"
            " AND ($2::timestamptz IS NULL OR a.first_seen_at >= $2)"
            " AND ($3::timestamptz IS NULL OR a.first_seen_at < $3)"
            " GROUP BY a.severity, a.jurisdiction ORDER BY a.severity, a.jurisdiction",
            who.jurisdiction, None if since is None else utc(since),
            None if until is None else utc(until))
        await audit_request(conn, request, "alert.response_times.read")
    out = []
    for r in rows:
        item: dict[str, Any] = {"severity": r["severity"], "jurisdiction": r["jurisdiction"],
                                "alerts": r["alerts"]}
        for name, _end in FIGURES:
            item[name] = {"n": r[f"{name}_n"], "median_s": _seconds(r[f"{name}_p50"]),
                          "p90_s": _seconds(r[f"{name}_p90"])}
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
