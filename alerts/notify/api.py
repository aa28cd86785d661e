"""HTTP routes of notifications: policies, duty rosters, the delivery log.

Policies and rosters are managed by supervisors and above; the delivery log
is readable by operators and above. Every route is limited in SQL to the
caller's jurisdiction prefix and written to the audit log.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from alerts.api import SERVICE, _int_param, _json_body, _require, _str_param, remote_of, who_of
from alerts.db import utc
from alerts.errors import BadRequestError, ForbiddenError, NotFoundError
from alerts.notify import dispatch, store
from alerts.notify.policy import CHANNELS, DELIVERY_STATUSES, check_policy_body
from alerts.store import audit
from geofence.errors import ValidationError
from geofence.model import parse_ts


def _id(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise BadRequestError(f"{name} must be a positive integer")
    return int(raw)


def _in_scope(scope: str, jurisdiction: str) -> None:
    if not jurisdiction.startswith(scope):
        raise ForbiddenError(f"jurisdiction {jurisdiction!r} is outside your scope {scope!r}")


async def list_policies(request: web.Request) -> web.Response:
    """GET /api/notify/policies."""
    service, who = request.app[SERVICE], who_of(request)
    _require(who, "supervisor")
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn:
        rows = await store.list_policies(conn, who.jurisdiction)
        await audit(conn, service.clock(), who.username, "notify.policy.list", None, None,
                    remote_of(request))
    return web.json_response({"policies": rows})


async def add_policy(request: web.Request) -> web.Response:
    """POST /api/notify/policies."""
    service, who = request.app[SERVICE], who_of(request)
    _require(who, "supervisor")
    body = check_policy_body(await _json_body(request))
    if not body["jurisdiction_prefix"]:
        body["jurisdiction_prefix"] = who.jurisdiction
    _in_scope(who.jurisdiction, body["jurisdiction_prefix"])
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn, conn.transaction():
        row = await store.add_policy(conn, body, who.username)
        await audit(conn, service.clock(), who.username, "notify.policy.add",
                    str(row["policy_id"]), {k: v for k, v in row.items() if k != "created_at"},
                    remote_of(request))
    return web.json_response(row, status=201)


async def delete_policy(request: web.Request) -> web.Response:
    """DELETE /api/notify/policies/{policy_id}."""
    service, who = request.app[SERVICE], who_of(request)
    _require(who, "supervisor")
    policy_id = _id(request, "policy_id")
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn, conn.transaction():
        if not await store.delete_policy(conn, policy_id, who.jurisdiction):
            raise NotFoundError(f"no policy {policy_id} in your scope")
        await audit(conn, service.clock(), who.username, "notify.policy.delete", str(policy_id),
                    None, remote_of(request))
    return web.json_response({"deleted": policy_id})


def _when(value: Any, name: str) -> Any:
    try:
        return utc(parse_ts(value, name))
    except ValidationError as exc:
        raise BadRequestError(str(exc)) from None


async def list_roster(request: web.Request) -> web.Response:
    """GET /api/notify/roster?since=&until=."""
    service, who = request.app[SERVICE], who_of(request)
    _require(who, "supervisor")
    since, until = _str_param(request, "since"), _str_param(request, "until")
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn:
        rows = await store.list_shifts(conn, who.jurisdiction,
                                       None if since is None else _when(since, "since"),
                                       None if until is None else _when(until, "until"))
        await audit(conn, service.clock(), who.username, "notify.roster.list", None, None,
                    remote_of(request))
    return web.json_response({"shifts": rows})


async def add_shift(request: web.Request) -> web.Response:
    """POST /api/notify/roster {jurisdiction, officer, starts_at, ends_at, contacts}."""
    service, who = request.app[SERVICE], who_of(request)
    _require(who, "supervisor")
    body = await _json_body(request)
    unknown = sorted(set(body) - {"jurisdiction", "officer", "starts_at", "ends_at", "contacts"})
    if unknown:
        raise BadRequestError(f"unknown shift field(s): {', '.join(unknown)}")
    jurisdiction, officer = body.get("jurisdiction"), body.get("officer")
    if not isinstance(jurisdiction, str) or not jurisdiction.isdigit() or len(jurisdiction) > 12:
        raise BadRequestError("jurisdiction must be 1-12 digits")
    if not isinstance(officer, str) or not officer.strip() or len(officer) > 100:
        raise BadRequestError("officer must be 1-100 characters")
    starts, ends = _when(body.get("starts_at"), "starts_at"), _when(body.get("ends_at"), "ends_at")
    if ends <= starts:
        raise BadRequestError("ends_at must be after starts_at")
    contacts = body.get("contacts", {})
    if (not isinstance(contacts, dict) or not set(contacts) <= set(CHANNELS)
            or not all(isinstance(v, str) and 0 < len(v) <= 500 for v in contacts.values())):
        raise BadRequestError(f"contacts maps channels ({', '.join(CHANNELS)}) to addresses")
    _in_scope(who.jurisdiction, jurisdiction)
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn, conn.transaction():
        row = await store.add_shift(conn, jurisdiction, officer.strip(), starts, ends, contacts,
                                    who.username)
        await audit(conn, service.clock(), who.username, "notify.roster.add",
                    str(row["shift_id"]), {"jurisdiction": jurisdiction, "officer": officer,
                                           "starts_at": row["starts_at"],
                                           "ends_at": row["ends_at"]},
                    remote_of(request))
    return web.json_response(row, status=201)


async def delete_shift(request: web.Request) -> web.Response:
    """DELETE /api/notify/roster/{shift_id}."""
    service, who = request.app[SERVICE], who_of(request)
    _require(who, "supervisor")
    shift_id = _id(request, "shift_id")
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn, conn.transaction():
        if not await store.delete_shift(conn, shift_id, who.jurisdiction):
            raise NotFoundError(f"no shift {shift_id} in your scope")
        await audit(conn, service.clock(), who.username, "notify.roster.delete", str(shift_id),
                    None, remote_of(request))
    return web.json_response({"deleted": shift_id})


async def list_deliveries(request: web.Request) -> web.Response:
    """GET /api/notify/deliveries?alert_id=&status=&limit=."""
    service, who = request.app[SERVICE], who_of(request)
    _require(who, "operator")
    status = _str_param(request, "status")
    if status is not None and status not in DELIVERY_STATUSES:
        raise BadRequestError(f"status must be one of {', '.join(DELIVERY_STATUSES)}")
    alert_id = _str_param(request, "alert_id")
    limit = max(1, min(1000, _int_param(request, "limit", 200)))
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn:
        rows = await store.list_deliveries(conn, who.jurisdiction, alert_id, status, limit)
        await audit(conn, service.clock(), who.username, "notify.deliveries.read", alert_id,
                    None if status is None else {"status": status}, remote_of(request))
    return web.json_response({"deliveries": rows})


def register(app: web.Application) -> None:
    """Add the notification routes to the command-centre application."""
    r = app.router
    r.add_get("/api/notify/policies", list_policies)
    r.add_post("/api/notify/policies", add_policy)
    r.add_delete("/api/notify/policies/{policy_id}", delete_policy)
    r.add_get("/api/notify/roster", list_roster)
    r.add_post("/api/notify/roster", add_shift)
    r.add_delete("/api/notify/roster/{shift_id}", delete_shift)
    r.add_get("/api/notify/deliveries", list_deliveries)
    dispatch.register(app)

