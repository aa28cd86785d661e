"""The command-centre HTTP API (aiohttp), live WebSocket feed and dashboard.

Routes (see ``/api/openapi.json``): login/logout, alerts with filters and
paging, acknowledge, resolve, persons with risk colour, person track and
check-ins, orders
and zones (read; create/update/remove for supervisor and admin, versioned
and audited), jurisdiction counts, daily reports, track export and district
names (:mod:`alerts.reports`), leave requests and decisions
(:mod:`alerts.leaves`), ``/api/live``, ``/metrics``,
``/healthz``, ``/readyz`` and the dashboard at ``/``.

Every ``/api`` route but login needs ``Authorization: Bearer TOKEN`` (401
otherwise). ``/api/live`` also accepts ``?token=`` or a first message
``{"token": "..."}`` because browsers cannot set headers on a WebSocket.
Scope is applied in SQL by :mod:`alerts.store`; a resource outside the
caller's jurisdiction is 403.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from alerts import auth, reports, store, workflow
from alerts.checkins import CheckinStore
from alerts.errors import (
    AuthError,
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    WorkflowError,
)
from alerts.http import AUDITED, MAX_BODY_DEPTH, SERVICE, WHO, remote_of, who_of
from alerts.http import int_param as _int_param
from alerts.http import json_body as _json_body
from alerts.http import path_id as _path_id
from alerts.http import require_role as _require
from alerts.http import str_param as _str_param
from alerts.http import time_param as _time_param
from alerts.notify import api as notify_api
from alerts.openapi import openapi_document
from alerts.service import ORDERS_TOPIC, ZONES_TOPIC, Service
from alerts.tracks import TrackStore
from geofence.errors import ValidationError
from geofence.model import json_depth_exceeds, parse_order

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")
LIMITER: web.AppKey[auth.LoginLimiter] = web.AppKey("limiter", auth.LoginLimiter)
PUBLIC = frozenset({"/healthz", "/readyz", "/metrics", "/", "/api/auth/login", "/api/live",
                    "/static/app.js", "/static/app.css", "/favicon.ico"})
MAX_TRACK_DAYS = 31
LIVE_RECHECK_S = 5.0
"""How often an open /api/live connection re-checks its token (logout elsewhere, expiry)."""
DASHBOARD_CSP = ("default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:;"
                 " style-src 'self'; script-src 'self'; frame-ancestors 'none'")
API_CSP = "default-src 'none'; frame-ancestors 'none'"
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
SERVER_HEADER = "wardstream"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, reason: str, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": reason, "detail": detail}, status=status, headers=headers)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    return None


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authentication, error mapping and request metrics."""
    service = request.app[SERVICE]
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "?"
    status = 500
    try:
        if request.path.startswith("/api/") and request.path not in PUBLIC:
            token = _bearer(request)
            if not token:
                raise AuthError("missing bearer token")
            assert service.pool is not None
            async with service.pool.acquire(timeout=5) as conn:
                request[WHO] = await auth.authenticate(conn, token, service.clock())
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        if exc.status >= 400 and request.path.startswith("/api/"):
            return _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason)
        raise
    except AuthError as exc:
        status = 401
        return _error(401, "unauthorized", str(exc), {"WWW-Authenticate": "Bearer"})
    except ForbiddenError as exc:
        status = 403
        await _audit_refusal(request, exc)
        return _error(403, "forbidden", str(exc))
    except NotFoundError as exc:
        status = 404
        return _error(404, "not_found", str(exc))
    except BadRequestError as exc:
        status = 400
        return _error(400, exc.reason, str(exc))
    except ValidationError as exc:
        status = 400
        return _error(400, "bad_request", exc.detail or str(exc))
    except (asyncpg.DataError, UnicodeError) as exc:  # input the database cannot hold
        status = 400
        return _error(400, "bad_request", f"invalid value: {type(exc).__name__}")
    except WorkflowError as exc:
        status = exc.status
        return _error(exc.status, exc.reason, exc.detail)
    except RateLimitedError as exc:
        status = 429
        return _error(429, "rate_limited", str(exc), {"Retry-After": str(exc.retry_after_s)})
    except (TimeoutError, OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError) as exc:
        status = 503
        log.warning("database unavailable for %s %s: %s", request.method, request.path, exc)
        return _error(503, "unavailable", "the store is unavailable; try again")
    finally:
        service.metrics.http_requests.labels(request.method, route, str(status)).inc()


async def _audit_refusal(request: web.Request, exc: ForbiddenError) -> None:
    """Write an audit row for a refused request (403), unless its handler did."""
    if request.get(AUDITED) or WHO not in request:
        return
    service = request.app[SERVICE]
    resource = request.match_info.route.resource
    route = resource.canonical if resource else request.path
    target = next(iter(request.match_info.values()), None)
    try:
        assert service.pool is not None
        async with service.pool.acquire(timeout=5) as conn:
            await store.audit(conn, service.clock(), who_of(request).username, "access.denied",
                              target, {"method": request.method, "route": route,
                                       "reason": str(exc)[:300]}, remote_of(request))
    except Exception:  # the refusal stands even if its audit row cannot be written
        log.exception("audit of a refused %s %s failed", request.method, route)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Headers every response carries: no framing, no sniffing, no referrer, no
    versions in ``Server``; API answers are never cached."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Content-Security-Policy", API_CSP)
    response.headers["Server"] = SERVER_HEADER
    if request.path.startswith("/api/") or request.path in ("/healthz", "/readyz", "/metrics"):
        response.headers["Cache-Control"] = "no-store"


# ------------------------------------------------------------------ routes


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process serves requests."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: database reachable and every sink writing."""
    ready, details = request.app[SERVICE].readiness()
    return web.json_response({"ready": ready, **details}, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition."""
    service = request.app[SERVICE]
    service.metrics.live_clients.set(len(service.hub.clients))
    body = generate_latest(service.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def index(request: web.Request) -> web.FileResponse:
    """The dashboard page."""
    return web.FileResponse(STATIC / "index.html", headers={
        "Content-Security-Policy": DASHBOARD_CSP, "Cache-Control": "no-store"})


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3 document."""
    return web.json_response(openapi_document())


async def login(request: web.Request) -> web.Response:
    """POST /api/auth/login {"username", "password"} -> {"token", "expires_at", ...}."""
    service = request.app[SERVICE]
    limiter = request.app[LIMITER]
    data = await _json_body(request)
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username \
            or len(username) > 64 or len(password) > 1024:
        raise BadRequestError("username and password are required strings")
    remote = remote_of(request)
    limiter.check(remote, username)
    now = service.clock()
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn:
        try:
            token, who, expires = await auth.login(conn, username, password, now,
                                                   service.settings.token_ttl_s, remote)
        except AuthError:
            limiter.failed(remote, username)
            service.metrics.login_failures.labels("bad_credentials").inc()
            await store.audit(conn, now, username, "auth.login_failed", None, None, remote)
            raise
        limiter.succeeded(remote, username)
        await store.audit(conn, now, who.username, "auth.login", None, None, remote)
    from geofence.model import format_ts

    return web.json_response({"token": token, "expires_at": format_ts(expires),
                              "username": who.username, "role": who.role,
                              "jurisdiction": who.jurisdiction})


async def logout(request: web.Request) -> web.Response:
    """POST /api/auth/logout: end this token's session."""
    service = request.app[SERVICE]
    assert service.pool is not None
    token = _bearer(request) or ""
    async with service.pool.acquire(timeout=5) as conn:
        await auth.logout(conn, token)
        await store.audit(conn, service.clock(), who_of(request).username, "auth.logout", None,
                          None, remote_of(request))
    service.hub.revoke(auth.token_hash(token))  # its open live feeds end now
    return web.json_response({"ok": True})


async def me(request: web.Request) -> web.Response:
    """GET /api/me: the caller."""
    who = who_of(request)
    return web.json_response({"username": who.username, "role": who.role,
                              "jurisdiction": who.jurisdiction})


async def list_alerts(request: web.Request) -> web.Response:
    """GET /api/alerts?status=&severity=&since=&person_id=&jurisdiction=&limit=&offset=."""
    service, who = request.app[SERVICE], who_of(request)
    limit, offset = _int_param(request, "limit", 100), _int_param(request, "offset", 0)
    filters = {k: _str_param(request, k) for k in ("status", "severity", "since", "person_id",
                                                   "jurisdiction")}
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn:
        items, total = await store.list_alerts(conn, who, limit=limit, offset=offset, **filters)
        await store.audit(conn, service.clock(), who.username, "alerts.list", None,
                          {k: v for k, v in filters.items() if v} or None, remote_of(request))
    nxt = offset + len(items) if offset + len(items) < total else None
    return web.json_response({"alerts": items, "total": total, "limit": limit, "offset": offset,
                              "next_offset": nxt})


async def get_alert(request: web.Request) -> web.Response:
    """GET /api/alerts/{id}: one alert with its lifecycle history."""
    service, who = request.app[SERVICE], who_of(request)
    alert_id = _path_id(request, "alert_id")
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn:
        row = await store.get_alert_row(conn, who, alert_id)
        events = await store.alert_events(conn, alert_id)
        await store.audit(conn, service.clock(), who.username, "alert.read", alert_id, None,
                          remote_of(request))
    return web.json_response({"alert": store.row_to_json(row), "events": events})


async def _workflow(request: web.Request, event: str) -> web.Response:
    service, who = request.app[SERVICE], who_of(request)
    alert_id = _path_id(request, "alert_id")
    note: str | None = None
    if event == "resolved":
        body = await _json_body(request) if request.can_read_body else {}
        raw_note = body.get("note")
        if raw_note is not None and not isinstance(raw_note, str):
            raise BadRequestError("note must be a string")
        note = raw_note
    elif request.can_read_body and request.content_length:
        await _json_body(request)  # an ack takes no fields; a malformed body is still an error
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn:
        if event == "acknowledged":
            alert, record = await workflow.acknowledge(conn, who, alert_id, service.clock(),
                                                       remote_of(request))
        else:
            alert, record = await workflow.resolve(conn, who, alert_id, note, service.clock(),
                                                   remote_of(request))
    if record is not None:
        service.wake_outbox()  # the live feed hears of it through PostgreSQL
    return web.json_response({"alert": alert})


async def ack_alert(request: web.Request) -> web.Response:
    """POST /api/alerts/{id}/ack (operator and above)."""
    return await _workflow(request, "acknowledged")


async def resolve_alert(request: web.Request) -> web.Response:
    """POST /api/alerts/{id}/resolve {"note"} (operator and above; note needed for tamper/removed)."""
    return await _workflow(request, "resolved")


async def list_persons(request: web.Request) -> web.Response:
    """GET /api/persons?jurisdiction=&limit=&offset=: persons in scope with risk colour."""
    service, who = request.app[SERVICE], who_of(request)
    assert service.pool is not None
    jur = _str_param(request, "jurisdiction")
    async with service.pool.acquire(timeout=5) as conn:
        items = await store.list_persons(conn, who, service.clock(), jurisdiction=jur,
                                         limit=_int_param(request, "limit", 500),
                                         offset=_int_param(request, "offset", 0))
        await store.audit(conn, service.clock(), who.username, "persons.list", None,
                          {"jurisdiction": jur} if jur else None, remote_of(request))
    return web.json_response({"persons": items, "risk_rule": store.RISK_RULE})


async def get_person(request: web.Request) -> web.Response:
    """GET /api/persons/{id}: risk colour, position and alerts (the timeline's alerts)."""
    service, who = request.app[SERVICE], who_of(request)
    person_id = _path_id(request, "person_id")
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn:
        await store.person_in_scope(conn, who, person_id)
        persons = await store.list_persons(conn, who, service.clock(), person_id=person_id)
        alerts, _ = await store.list_alerts(conn, who, person_id=person_id, limit=500)
        await store.audit(conn, service.clock(), who.username, "person.read", person_id, None,
                          remote_of(request))
    if not persons:
        raise ForbiddenError(f"person {person_id!r} is outside jurisdiction {who.jurisdiction!r}")
    return web.json_response({"person": persons[0], "alerts": alerts})


async def _person_history(request: web.Request, what: str, audit: str, default_days: int,
                          limits: tuple[int, int], read: Any) -> web.Response:
    """A person's history over ``from``..``to`` (default: the last ``default_days``),
    scoped and audited as ``<audit>.read`` / ``<audit>.denied``; the items are
    ``read(conn, person_id, jurisdiction, start, end, limit)`` under key ``what``."""
    service, who = request.app[SERVICE], who_of(request)
    person_id = _path_id(request, "person_id")
    now = service.clock()
    end = _time_param(request, "to") or now
    start = _time_param(request, "from") or end - default_days * 86_400_000
    if end <= start:
        raise BadRequestError("`to` must be after `from`")
    if end - start > MAX_TRACK_DAYS * 86_400_000:
        noun = "track" if what == "fixes" else "check-in"
        raise BadRequestError(f"a {noun} request spans at most {MAX_TRACK_DAYS} days")
    default_limit, max_limit = limits
    limit = _int_param(request, "limit", default_limit)
    if not 1 <= limit <= max_limit:
        raise BadRequestError(f"limit must be 1..{max_limit}")
    from alerts.db import utc
    from geofence.model import format_ts

    span = {"from": format_ts(start), "to": format_ts(end)}
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn:
        try:
            await store.person_in_scope(conn, who, person_id)
        except ForbiddenError:
            await store.audit(conn, now, who.username, f"{audit}.denied", person_id, span,
                              remote_of(request))
            request[AUDITED] = True
            raise
        items = await read(conn, person_id, who.jurisdiction, utc(start), utc(end), limit)
        await store.audit(conn, now, who.username, f"{audit}.read", person_id,
                          {**span, what: len(items)}, remote_of(request))
    return web.json_response({"person_id": person_id, **span, what: items})


async def person_track(request: web.Request) -> web.Response:
    """GET /api/persons/{id}/track?from=&to=: fixes (default: the last 24 h); audited."""
    return await _person_history(request, "fixes", "track", 1, (20_000, 100_000), TrackStore.read)


async def person_checkins(request: web.Request) -> web.Response:
    """GET /api/persons/{id}/checkins?from=&to=: identity check-ins (default: the last
    7 days), each judged and placed against the inclusion zones; audited."""
    return await _person_history(request, "checkins", "checkins", 7, (5000, 20_000),
                                 CheckinStore.read)


async def jurisdictions(request: web.Request) -> web.Response:
    """GET /api/jurisdictions?prefix=: counts per child code (province -> city -> county)."""
    service, who = request.app[SERVICE], who_of(request)
    prefix = _str_param(request, "prefix") or who.jurisdiction
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn:
        data = await store.jurisdiction_counts(conn, who, prefix, service.clock())
    return web.json_response(data)


async def list_orders(request: web.Request) -> web.Response:
    """GET /api/orders: current order of every person in scope."""
    service, who = request.app[SERVICE], who_of(request)
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn:
        items = await store.list_orders(conn, who)
        await store.audit(conn, service.clock(), who.username, "orders.list", None, None,
                          remote_of(request))
    return web.json_response({"orders": items})


async def order_history(request: web.Request) -> web.Response:
    """GET /api/orders/{person_id}: every version of one order."""
    service, who = request.app[SERVICE], who_of(request)
    person_id = _path_id(request, "person_id")
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn:
        await store.person_in_scope(conn, who, person_id)
        versions = await store.order_history(conn, who, person_id)
        await store.audit(conn, service.clock(), who.username, "order.read", person_id, None,
                          remote_of(request))
    return web.json_response({"person_id": person_id, "versions": versions})


async def put_order(request: web.Request) -> web.Response:
    """PUT /api/orders/{person_id}: a new version of an order (supervisor and above)."""
    _require(who_of(request), "supervisor")
    person_id = _path_id(request, "person_id")
    body = await _json_body(request)
    if body.get("person_id", person_id) != person_id:
        raise BadRequestError("person_id in the body differs from the path")
    body["person_id"] = person_id
    return await save_order_version(request, body, "order.put")


async def save_order_version(request: web.Request, body: dict[str, Any], action: str,
                             detail: dict[str, Any] | None = None) -> web.Response:
    """Check ``body`` as an order and store it as a new version of the person's order.

    The one path by which the API changes an order: jurisdiction scope (of
    the order and of the person's current order), versioning, the orders
    topic and the audit row (``action``, with ``detail`` added), answered as
    PUT /api/orders/{person_id} answers. The caller has checked the role.
    """
    service = request.app[SERVICE]
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn, conn.transaction():
        version = await store_order_version(conn, request, body, action, detail)
    order_stored(service)
    return web.json_response({"person_id": body["person_id"], "version": version,
                              "changed": version is not None},
                             status=201 if version == 1 else 200)


async def store_order_version(conn: asyncpg.Connection, request: web.Request,
                              body: dict[str, Any], action: str,
                              detail: dict[str, Any] | None = None) -> int | None:
    """:func:`save_order_version` inside the caller's transaction; the new version or None.

    For a change that must commit or roll back with other rows (a leave's
    decision and the order version carrying it). The caller calls
    :func:`order_stored` after the commit.
    """
    service, who = request.app[SERVICE], who_of(request)
    person_id = body["person_id"]
    order = parse_order(body)
    if not order.jurisdiction.startswith(who.jurisdiction):
        raise ForbiddenError(f"jurisdiction {order.jurisdiction} is outside {who.jurisdiction!r}")
    now = service.clock()
    await lock_order(conn, person_id)
    existing = await conn.fetchval(
        "SELECT jurisdiction FROM orders WHERE person_id = $1 ORDER BY version DESC LIMIT 1",
        person_id)
    if existing is not None and not str(existing).startswith(who.jurisdiction):
        raise ForbiddenError(f"person {person_id!r} is outside jurisdiction {who.jurisdiction!r}")
    version = await store.save_order(
        conn, body, order.jurisdiction, order.valid_from if isinstance(order.valid_from, int) else None,
        order.valid_until if isinstance(order.valid_until, int) else None, order.devices, now,
        who.username)
    if version is not None:
        await workflow.queue_outbox(conn, ORDERS_TOPIC, person_id, body)
    await store.audit(conn, now, who.username, action, person_id,
                      {"version": version, "changed": version is not None, **(detail or {})},
                      remote_of(request))
    return version


async def lock_order(conn: asyncpg.Connection, person_id: str) -> None:
    """Serialise changes of one person's order until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", "order:" + person_id)


def order_stored(service: Service) -> None:
    """After a committed order change: devices are looked up again, the outbox publishes."""
    service.invalidate_device_map()
    service.wake_outbox()


async def delete_order(request: web.Request) -> web.Response:
    """DELETE /api/orders/{person_id}: end an order (a tombstone version)."""
    service, who = request.app[SERVICE], who_of(request)
    _require(who, "supervisor")
    person_id = _path_id(request, "person_id")
    now = service.clock()
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT version, jurisdiction, body FROM orders WHERE person_id = $1"
            " ORDER BY version DESC LIMIT 1 FOR UPDATE", person_id)
        if row is None or row["body"] is None:
            raise NotFoundError(f"no current order for {person_id!r}")
        if not row["jurisdiction"].startswith(who.jurisdiction):
            raise ForbiddenError(f"person {person_id!r} is outside jurisdiction {who.jurisdiction!r}")
        from alerts.db import utc

        await conn.execute(
            "INSERT INTO orders (person_id, version, jurisdiction, body, created_at, created_by)"
            " VALUES ($1, $2, $3, NULL, $4, $5)",
            person_id, row["version"] + 1, row["jurisdiction"], utc(now), who.username)
        await conn.execute("UPDATE devices SET valid_until = $2 WHERE person_id = $1"
                           " AND valid_until > $2", person_id, utc(now))
        await workflow.queue_outbox(conn, ORDERS_TOPIC, person_id, None)
        await store.audit(conn, now, who.username, "order.delete", person_id,
                          {"version": row["version"] + 1}, remote_of(request))
    service.invalidate_device_map()
    service.wake_outbox()
    return web.json_response({"person_id": person_id, "version": row["version"] + 1})


async def list_zones(request: web.Request) -> web.Response:
    """GET /api/zones: current zones visible to the caller, as GeoJSON features."""
    service, who = request.app[SERVICE], who_of(request)
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn:
        items = await store.list_zones(conn, who)
    return web.json_response({"zones": items})


def validate_feature(zone_id: str, feature: dict[str, Any]) -> None:
    """Check a zone feature (the geofence catalogue's rules when available)."""
    if feature.get("type") != "Feature" or not isinstance(feature.get("geometry"), dict):
        raise BadRequestError("a zone is a GeoJSON Feature with a geometry")
    props = feature.get("properties") or {}
    if not isinstance(props, dict):
        raise BadRequestError("properties must be an object")
    gtype = feature["geometry"].get("type")
    if gtype not in ("Polygon", "MultiPolygon", "Point"):
        raise BadRequestError("zone geometry must be Polygon, MultiPolygon or Point (+ radius_m)")
    if gtype == "Point" and not isinstance(props.get("radius_m"), (int, float)):
        raise BadRequestError("a Point zone needs properties.radius_m")
    try:
        from geofence.zones import ZoneCatalogue  # the zones helper's validator, when present
    except ImportError:
        return
    try:
        ZoneCatalogue.from_geojson({"type": "FeatureCollection", "features": [feature]})
    except ValidationError as exc:
        raise BadRequestError(f"zone {zone_id!r}: {exc.detail}") from None
    except Exception as exc:  # any geometry library complaint is the client's input
        raise BadRequestError(f"zone {zone_id!r}: {exc}") from None


async def put_zone(request: web.Request) -> web.Response:
    """PUT /api/zones/{zone_id}: a new version of a zone (supervisor and above)."""
    service, who = request.app[SERVICE], who_of(request)
    _require(who, "supervisor")
    zone_id = _path_id(request, "zone_id")
    feature = await _json_body(request)
    feature = {**feature, "id": zone_id}
    validate_feature(zone_id, feature)
    props = feature.get("properties") or {}
    jur = str(props.get("jurisdiction") or who.jurisdiction)
    store.check_code(jur)
    if not jur.startswith(who.jurisdiction):
        raise ForbiddenError(f"zone jurisdiction {jur!r} is outside {who.jurisdiction!r}")
    now = service.clock()
    assert service.pool is not None
    async with service.pool.acquire(timeout=5) as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", "zone:" + zone_id)
        current = await store.zone_jurisdiction(conn, zone_id)
        if current is not None and not current.startswith(who.jurisdiction):
            raise ForbiddenError(f"zone {zone_id!r} belongs to jurisdiction {current!r}")
        version = await store.save_zone(conn, zone_id, feature, jur, now, who.username)
        if version is not None:
            await workflow.queue_outbox(conn, ZONES_TOPIC, zone_id, feature)
        await store.audit(conn, now, who.username, "zone.put", zone_id,
                          {"version": version, "changed": version is not None}, remote_of(request))
    service.wake_outbox()
    return web.json_response({"zone_id": zone_id, "version": version,
                              "changed": version is not None},
                             status=201 if version == 1 else 200)


async def live(request: web.Request) -> web.WebSocketResponse:
    """GET /api/live: WebSocket of lifecycle records (and risk/positions) in scope."""
    service = request.app[SERVICE]
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=64 * 1024)
    token = _bearer(request) or request.query.get("token")
    if not ws.can_prepare(request).ok:
        raise BadRequestError("/api/live is a WebSocket endpoint")
    await ws.prepare(request)
    assert service.pool is not None
    try:
        if not token:
            msg = await ws.receive(timeout=10.0)
            if msg.type == WSMsgType.TEXT and not json_depth_exceeds(
                    msg.data.encode("utf-8", "replace"), MAX_BODY_DEPTH):
                with contextlib.suppress(ValueError, AttributeError, RecursionError):
                    token = json.loads(msg.data).get("token")
        if not isinstance(token, str) or not token:
            raise AuthError("no token")
        async with service.pool.acquire(timeout=5) as conn:
            who = await auth.authenticate(conn, token, service.clock())
    except (TimeoutError, AuthError, TypeError):
        await ws.send_json({"type": "error", "error": "unauthorized"})
        await ws.close(code=4401, message=b"unauthorized")
        return ws
    client = service.hub.register(who, auth.token_hash(token))
    await ws.send_json({"type": "hello", "username": who.username, "role": who.role,
                        "jurisdiction": who.jurisdiction})

    async def pump() -> None:
        while True:
            text = await client.queue.get()
            if client.revoked:
                await ws.send_json({"type": "error", "error": "unauthorized"})
                await ws.close(code=4401, message=b"session ended")
                return
            if client.overflowed:
                await ws.close(code=1013, message=b"too slow; reconnect")
                return
            await ws.send_str(text)

    async def recheck() -> None:
        # a logout on another replica, a disabled operator, or the token's expiry
        assert service.pool is not None and isinstance(token, str)
        while not client.revoked:
            await asyncio.sleep(LIVE_RECHECK_S)
            try:
                async with service.pool.acquire(timeout=5) as conn:
                    await auth.authenticate(conn, token, service.clock())
            except AuthError:
                service.hub.end(client)
            except Exception as exc:  # the store is away: keep the feed, try again later
                log.warning("re-checking a live session failed: %s", exc)

    sender = asyncio.create_task(pump())
    checker = asyncio.create_task(recheck())
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data == "ping":
                await ws.send_str('{"type":"pong"}')
            if sender.done():
                break
    finally:
        for task in (sender, checker):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        service.hub.unregister(client)
    return ws


def create_app(service: Service, limiter: auth.LoginLimiter | None = None) -> web.Application:
    """The aiohttp application for a started (or to-be-started) service."""
    app = web.Application(middlewares=[middleware], client_max_size=2 * 1024 * 1024)
    app.on_response_prepare.append(_security_headers)
    app[SERVICE] = service
    app[LIMITER] = limiter or auth.LoginLimiter()
    r = app.router
    r.add_get("/", index)
    r.add_static("/static", STATIC, show_index=False)
    r.add_get("/healthz", healthz)
    r.add_get("/readyz", readyz)
    r.add_get("/metrics", metrics)
    r.add_get("/api/openapi.json", openapi)
    r.add_post("/api/auth/login", login)
    r.add_post("/api/auth/logout", logout)
    r.add_get("/api/me", me)
    r.add_get("/api/alerts", list_alerts)
    r.add_get("/api/alerts/{alert_id}", get_alert)
    r.add_post("/api/alerts/{alert_id}/ack", ack_alert)
    r.add_post("/api/alerts/{alert_id}/resolve", resolve_alert)
    r.add_get("/api/persons", list_persons)
    r.add_get("/api/persons/{person_id}", get_person)
    r.add_get("/api/persons/{person_id}/track", person_track)
    r.add_get("/api/persons/{person_id}/checkins", person_checkins)
    r.add_get("/api/jurisdictions", jurisdictions)
    r.add_get("/api/orders", list_orders)
    r.add_get("/api/orders/{person_id}", order_history)
    r.add_put("/api/orders/{person_id}", put_order)
    r.add_delete("/api/orders/{person_id}", delete_order)
    r.add_get("/api/zones", list_zones)
    r.add_put("/api/zones/{zone_id}", put_zone)
    r.add_get("/api/live", live)
    notify_api.register(app)  # notification, dispatch and response-time routes
    reports.register(app)  # reports, exports, district names
    from alerts import order_templates  # its routes store orders through save_order_version

    order_templates.register(app)  # order templates, orders filled in from one
    from alerts import leaves  # approvals store orders through store_order_version

    leaves.register(app)  # leave requests, decisions, returns
    return app
