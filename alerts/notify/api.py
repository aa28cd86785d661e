"""HTTP routes of notifications: policies, duty rosters, the delivery log.

Policies and rosters are managed by supervisors and above; the delivery log
is readable by operators and above. Every route is limited in SQL to the
caller's jurisdiction prefix and written to the audit log.
"""

from __future__ import annotations

from aiohttp import web

from alerts.db import utc
from alerts.errors import BadRequestError, NotFoundError
from alerts.http import (
    audit_request,
    caller,
    connection,
    int_param,
    int_path_id,
    json_body,
    require_scope,
    str_param,
    time_param,
)
from alerts.notify import dispatch, store
from alerts.notify.policy import DELIVERY_STATUSES, check_policy_body, check_shift_body


async def list_policies(request: web.Request) -> web.Response:
    """GET /api/notify/policies."""
    _, who = caller(request, "supervisor")
    async with connection(request) as conn:
        rows = await store.list_policies(conn, who.jurisdiction)
        await audit_request(conn, request, "notify.policy.list")
    return web.json_response({"policies": rows})


async def add_policy(request: web.Request) -> web.Response:
    """POST /api/notify/policies."""
    _, who = caller(request, "supervisor")
    body = check_policy_body(await json_body(request))
    if not body["jurisdiction_prefix"]:
        body["jurisdiction_prefix"] = who.jurisdiction
    require_scope(who, body["jurisdiction_prefix"])
    async with connection(request) as conn, conn.transaction():
        row = await store.add_policy(conn, body, who.username)
        await audit_request(conn, request, "notify.policy.add", str(row["policy_id"]),
                            {k: v for k, v in row.items() if k != "created_at"})
    return web.json_response(row, status=201)


async def delete_policy(request: web.Request) -> web.Response:
    """DELETE /api/notify/policies/{policy_id}."""
    _, who = caller(request, "supervisor")
    policy_id = int_path_id(request, "policy_id")
    async with connection(request) as conn, conn.transaction():
        if not await store.delete_policy(conn, policy_id, who.jurisdiction):
            raise NotFoundError(f"no policy {policy_id} in your scope")
        await audit_request(conn, request, "notify.policy.delete", str(policy_id))
    return web.json_response({"deleted": policy_id})


async def list_roster(request: web.Request) -> web.Response:
    """GET /api/notify/roster?since=&until=."""
    _, who = caller(request, "supervisor")
    since, until = time_param(request, "since"), time_param(request, "until")
    async with connection(request) as conn:
        rows = await store.list_shifts(conn, who.jurisdiction,
                                       None if since is None else utc(since),
                                       None if until is None else utc(until))
        await audit_request(conn, request, "notify.roster.list")
    return web.json_response({"shifts": rows})


async def add_shift(request: web.Request) -> web.Response:
    """POST /api/notify/roster {jurisdiction, officer, starts_at, ends_at, contacts}."""
    _, who = caller(request, "supervisor")
    shift = check_shift_body(await json_body(request))
    require_scope(who, shift["jurisdiction"])
    async with connection(request) as conn, conn.transaction():
        row = await store.add_shift(conn, shift["jurisdiction"], shift["officer"],
                                    utc(shift["starts_at"]), utc(shift["ends_at"]),
                                    shift["contacts"], who.username)
        await audit_request(conn, request, "notify.roster.add", str(row["shift_id"]),
                            {k: row[k] for k in ("jurisdiction", "officer", "starts_at",
                                                 "ends_at")})
    return web.json_response(row, status=201)


async def delete_shift(request: web.Request) -> web.Response:
    """DELETE /api/notify/roster/{shift_id}."""
    _, who = caller(request, "supervisor")
    shift_id = int_path_id(request, "shift_id")
    async with connection(request) as conn, conn.transaction():
        if not await store.delete_shift(conn, shift_id, who.jurisdiction):
            raise NotFoundError(f"no shift {shift_id} in your scope")
        await audit_request(conn, request, "notify.roster.delete", str(shift_id))
    return web.json_response({"deleted": shift_id})


async def list_deliveries(request: web.Request) -> web.Response:
    """GET /api/notify/deliveries?alert_id=&status=&resent=&limit=."""
    _, who = caller(request, "operator")
    status = str_param(request, "status")
    if status is not None and status not in DELIVERY_STATUSES:
        raise BadRequestError(f"status must be one of {', '.join(DELIVERY_STATUSES)}")
    resent_arg = str_param(request, "resent")
    if resent_arg not in (None, "true", "false"):
        raise BadRequestError("resent must be true or false")
    resent = None if resent_arg is None else resent_arg == "true"
    alert_id = str_param(request, "alert_id")
    limit = max(1, min(1000, int_param(request, "limit", 200)))
    filters = {k: v for k, v in (("status", status), ("resent", resent)) if v is not None}
    async with connection(request) as conn:
        rows = await store.list_deliveries(conn, who.jurisdiction, alert_id, status, limit,
                                           resent=resent)
        await audit_request(conn, request, "notify.deliveries.read", alert_id, filters or None)
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

