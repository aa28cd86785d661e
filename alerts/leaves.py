"""Leave (请假外出) in the command centre: request, decision, cancellation, return.

An officer (operator and above) requests leave for a supervised person:
from, until, the zone rules it suspends and any temporary rules, and the
reason. The request is checked by building the exemption into the person's
current order with the order parser, so a leave that could never be approved
is refused at once with the parser's reason.

A supervisor whose jurisdiction covers the person may approve a leave of at
most ``leave_office_max_days`` days (level ``office``); an administrator
whose jurisdiction covers the person may approve any (level ``county``);
nobody decides their own request. These conditions are the ``WHERE`` of the
``UPDATE`` that decides (the caller's role and jurisdiction are read from
``operators`` in the same statement): a request that does not meet them
changes no row and is answered 403, and the refusal is audited. Approval,
cancellation of an approved leave and the return each store a new version
of the person's order through :func:`alerts.api.store_order_version`, in
the same transaction as the leave's new state, so the stream workers
hot-reload the exemption from the orders topic.

``active`` and ``ended`` follow the clock: they are computed on read, in
SQL, by ``wardstream_leave_state()`` with the service's time (an approved
leave is active from its ``from`` and ended at its ``until``); a return
recorded by an officer ends a leave early and is stored (a return recorded
after ``until`` only records when the person came back).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Union

import asyncpg
import msgspec
from aiohttp import web

from alerts.api import lock_order, order_stored, store_order_version
from alerts.db import utc
from alerts.errors import BadRequestError, ForbiddenError, NotFoundError, WorkflowError
from alerts.http import (
    audit_request,
    caller,
    connection,
    int_param,
    int_path_id,
    json_body,
    path_id,
    require_role,
    str_param,
)
from alerts.store import Principal, check_code, person_in_scope
from geofence.errors import ValidationError
from geofence.model import format_ts, parse_order, parse_ts

STATES: tuple[str, ...] = ("requested", "approved", "rejected", "active", "ended", "cancelled")
"""What a leave can be in; ``active`` and ``ended`` (at its ``until``) follow the clock."""
DAY_MS = 86_400_000
PENDING_APPROVER = "(pending)"
"""``approved_by`` of the exemption a request is checked with before anyone approved it."""

_COLUMNS = ("l.id, l.person_id, l.jurisdiction, l.from_at, l.until_at, l.rules,"
            " l.temporary_rules, l.reason, l.requested_by, l.requested_at, l.decided_by,"
            " l.decided_at, l.level, l.note, l.returned_at,"
            " wardstream_leave_state(l.state, l.from_at, l.until_at, :now) AS current")
_NAME = re.compile(r"(?<!:):([a-z_]+)\b")
_TEXT = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class LeaveRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Body of ``POST /api/persons/{person_id}/leaves``."""

    from_: Union[int, str] = msgspec.field(name="from")
    until: Union[int, str]
    reason: _TEXT
    rules: tuple[str, ...] = ()
    temporary_rules: tuple[dict[str, Any], ...] = ()


def exemption_id(leave_id: int) -> str:
    """The id of the exemption an approved leave adds to its order."""
    return f"L-{leave_id}"


def _ts(value: Any) -> str | None:
    return None if value is None else format_ts(int(value.timestamp() * 1000))


def leave_json(row: asyncpg.Record) -> dict[str, Any]:
    """A leave as the API answers it."""
    span = row["until_at"] - row["from_at"]
    return {
        "leave_id": row["id"], "exemption_id": exemption_id(row["id"]),
        "person_id": row["person_id"], "jurisdiction": row["jurisdiction"],
        "from": _ts(row["from_at"]), "until": _ts(row["until_at"]),
        "days": round(span.total_seconds() / 86_400, 3),
        "rules": row["rules"], "temporary_rules": row["temporary_rules"],
        "reason": row["reason"], "requested_by": row["requested_by"],
        "requested_at": _ts(row["requested_at"]), "state": row["current"],
        "decided_by": row["decided_by"], "decided_at": _ts(row["decided_at"]),
        "level": row["level"], "note": row["note"], "returned_at": _ts(row["returned_at"]),
    }


def _bind(sql: str, **values: Any) -> tuple[str, list[Any]]:
    """``:name`` parameters as ``$n`` and their values in order (each name bound once)."""
    names: list[str] = []

    def number(m: re.Match[str]) -> str:
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    text = _NAME.sub(number, sql)
    return text, [values[n] for n in names]


def _note(body: dict[str, Any], required: bool) -> str | None:
    note = body.get("note")
    if note is None and not required:
        return None
    if not isinstance(note, str) or not note.strip() or len(note) > 1024:
        raise BadRequestError("note must be 1-1024 characters" + ("" if required else " when given"))
    return note.strip()


def _exemption(row: asyncpg.Record | dict[str, Any], approved_by: str, level: str,
               until_ms: int | None = None) -> dict[str, Any]:
    """The exemption a leave adds to its person's order."""
    return {"id": exemption_id(row["id"]), "from": _ts(row["from_at"]),
            "until": format_ts(until_ms) if until_ms is not None else _ts(row["until_at"]),
            "rules": list(row["rules"]), "temporary_rules": list(row["temporary_rules"]),
            "reason": row["reason"], "requested_by": row["requested_by"],
            "approved_by": approved_by, "level": level}


def _with_exemptions(order: dict[str, Any], exemptions: list[dict[str, Any]]) -> dict[str, Any]:
    body = {k: v for k, v in order.items() if k != "exemptions"}
    if exemptions:
        body["exemptions"] = exemptions
    return body


async def _current_order(conn: asyncpg.Connection, who: Principal,
                         person_id: str) -> tuple[str, dict[str, Any]]:
    """Jurisdiction and body of the person's current order, in the caller's scope (in SQL)."""
    row = await conn.fetchrow(
        "SELECT jurisdiction, body FROM (SELECT jurisdiction, body FROM orders"
        " WHERE person_id = $1 ORDER BY version DESC LIMIT 1) cur"
        " WHERE jurisdiction LIKE $2 || '%'",
        person_id, who.jurisdiction)
    if row is None:
        if await conn.fetchval("SELECT 1 FROM orders WHERE person_id = $1 LIMIT 1", person_id):
            raise ForbiddenError(f"person {person_id!r} is outside jurisdiction"
                                 f" {who.jurisdiction!r}")
        raise NotFoundError(f"no order for person {person_id!r}")
    if row["body"] is None:
        raise WorkflowError("no_current_order", f"the order of {person_id!r} has ended")
    return str(row["jurisdiction"]), dict(row["body"])


def _check_order(body: dict[str, Any]) -> None:
    """The order parser's verdict on an order carrying a leave's exemption (400 with its reason)."""
    try:
        parse_order(body)
    except ValidationError as exc:
        raise BadRequestError(exc.detail, exc.reason) from None


# ------------------------------------------------------------------ request


async def request_leave(request: web.Request) -> web.Response:
    """POST /api/persons/{person_id}/leaves: request leave for a person (operator and above)."""
    service, who = caller(request, "operator")
    person_id = path_id(request, "person_id")
    raw = await json_body(request)
    try:
        body = msgspec.convert(raw, LeaveRequest)
        start, end = parse_ts(body.from_, "from"), parse_ts(body.until, "until")
    except msgspec.ValidationError as exc:
        text = str(exc)
        raise BadRequestError(text, "unknown_field" if "unknown field" in text
                              else "bad_request") from None
    except ValidationError as exc:
        raise BadRequestError(exc.detail, exc.reason) from None
    now = service.clock()
    if end <= start:
        raise BadRequestError("`until` is not after `from`", "invalid_value")
    if end <= now:
        raise BadRequestError(f"the leave ends at {format_ts(end)}, which has passed",
                              "invalid_value")
    level = "office" if end - start <= service.settings.leave_office_max_days * DAY_MS else "county"
    async with connection(request) as conn, conn.transaction():
        jurisdiction, order = await _current_order(conn, who, person_id)
        row = await conn.fetchrow(
            "INSERT INTO leaves (person_id, jurisdiction, from_at, until_at, rules, temporary_rules,"
            " reason, requested_by, requested_at, level)"
            " VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, $9, $10)"
            " RETURNING id, from_at, until_at, rules, temporary_rules, reason, requested_by",
            person_id, check_code(jurisdiction), utc(start), utc(end), list(body.rules),
            list(body.temporary_rules), body.reason.strip(), who.username, utc(now), level)
        exemptions = [*order.get("exemptions", []), _exemption(row, PENDING_APPROVER, level)]
        _check_order(_with_exemptions(order, exemptions))
        await audit_request(conn, request, "leave.request", person_id,
                            {"leave_id": row["id"], "from": format_ts(start),
                             "until": format_ts(end), "level": level})
        saved = await _fetch(conn, row["id"], now)
    return web.json_response({"leave": saved}, status=201)


async def _fetch(conn: asyncpg.Connection, leave_id: int, now: int) -> dict[str, Any]:
    sql, args = _bind(f"SELECT {_COLUMNS} FROM leaves l WHERE l.id = :id", id=leave_id,
                      now=utc(now))
    return leave_json(await conn.fetchrow(sql, *args))


# ------------------------------------------------------------------ read


async def list_leaves(request: web.Request) -> web.Response:
    """GET /api/leaves?state=&person_id=&limit=&offset=: leaves in scope (any role)."""
    return await _list(request, None)


async def person_leaves(request: web.Request) -> web.Response:
    """GET /api/persons/{person_id}/leaves: one person's leaves (any role, in scope)."""
    return await _list(request, path_id(request, "person_id"))


async def _list(request: web.Request, person_id: str | None) -> web.Response:
    service, who = caller(request)
    states = [s for s in (str_param(request, "state") or "").split(",") if s]
    if any(s not in STATES for s in states):
        raise BadRequestError(f"state must be among {', '.join(STATES)} (comma list)")
    person_id = person_id or str_param(request, "person_id")
    limit, offset = int_param(request, "limit", 200), int_param(request, "offset", 0)
    if not 1 <= limit <= 1000:
        raise BadRequestError("limit must be 1..1000")
    now = service.clock()
    async with connection(request) as conn:
        if person_id is not None and request.match_info.get("person_id"):
            await person_in_scope(conn, who, person_id)
        sql, args = _bind(
            f"""SELECT {_COLUMNS} FROM leaves l
                 WHERE l.jurisdiction LIKE :scope || '%'
                   AND (:person::text IS NULL OR l.person_id = :person)
                   AND (cardinality(:states::text[]) = 0
                        OR wardstream_leave_state(l.state, l.from_at, l.until_at, :now)
                           = ANY(:states::text[]))
                 ORDER BY l.from_at DESC, l.id DESC LIMIT :limit OFFSET :offset""",
            scope=who.jurisdiction, person=person_id, states=states, limit=limit, offset=offset,
            now=utc(now))
        rows = await conn.fetch(sql, *args)
        await audit_request(conn, request, "leaves.list", person_id,
                            {"state": states, "rows": len(rows)})
    return web.json_response({"leaves": [leave_json(r) for r in rows]})


# ------------------------------------------------------------------ decisions

_GATES = {
    # who may, in which state, enforced in the UPDATE's WHERE (o = the caller's operator row)
    "approve": """o.role IN ('supervisor', 'admin') AND l.state = 'requested' AND l.until_at > :now
                  AND l.requested_by <> o.username
                  AND (o.role = 'admin'
                       OR l.until_at - l.from_at <= make_interval(days => :max_days::int))""",
    "reject": """o.role IN ('supervisor', 'admin') AND l.state = 'requested'
                 AND l.requested_by <> o.username""",
    "cancel": """o.role IN ('operator', 'supervisor', 'admin')
                 AND (l.state = 'requested' OR (l.state = 'approved' AND l.from_at > :now))""",
    "return": """o.role IN ('operator', 'supervisor', 'admin') AND l.state = 'approved'
                 AND l.from_at <= :now""",
}
_SETS = {
    "approve": "state = 'approved', decided_by = o.username, decided_at = :now,"
               " level = CASE o.role WHEN 'admin' THEN 'county' ELSE 'office' END,"
               " note = COALESCE(:note, l.note)",
    "reject": "state = 'rejected', decided_by = o.username, decided_at = :now, note = :note",
    "cancel": "state = 'cancelled', note = COALESCE(:note, l.note)",
    "return": "state = 'ended', returned_at = :now, note = COALESCE(:note, l.note)",
}
_ROLE = {"approve": "supervisor", "reject": "supervisor", "cancel": "operator",
         "return": "operator"}


async def approve_leave(request: web.Request) -> web.Response:
    """POST /api/leaves/{leave_id}/approve {"note"}: approve; the order gains the exemption."""
    return await _decide(request, "approve")


async def reject_leave(request: web.Request) -> web.Response:
    """POST /api/leaves/{leave_id}/reject {"note"}: reject a request (note required)."""
    return await _decide(request, "reject")


async def cancel_leave(request: web.Request) -> web.Response:
    """POST /api/leaves/{leave_id}/cancel {"note"}: withdraw a leave that has not begun."""
    return await _decide(request, "cancel")


async def return_leave(request: web.Request) -> web.Response:
    """POST /api/leaves/{leave_id}/return {"note"}: the person is back; the leave ends now.

    A return after ``until`` (back late) is recorded with its time and leaves
    the order as it is: the exemption ended at its ``until``.
    """
    return await _decide(request, "return")


async def _decide(request: web.Request, action: str) -> web.Response:
    service, who = caller(request)
    leave_id = int_path_id(request, "leave_id")
    body = await json_body(request) if request.can_read_body and request.content_length else {}
    note = _note(body, required=action == "reject")
    now = service.clock()
    max_days = service.settings.leave_office_max_days
    version: int | None = None
    async with connection(request) as conn, conn.transaction():
        person_id = await conn.fetchval("SELECT person_id FROM leaves WHERE id = $1", leave_id)
        if person_id is None:
            raise NotFoundError(f"no leave {leave_id}")
        await lock_order(conn, person_id)  # the leave's new state and its order version, together
        before = await conn.fetchval("SELECT state FROM leaves WHERE id = $1", leave_id)
        sql, args = _bind(
            f"""UPDATE leaves l SET {_SETS[action]}
                  FROM operators o
                 WHERE l.id = :id AND o.id = :operator AND NOT o.disabled
                   AND l.jurisdiction LIKE o.jurisdiction || '%'
                   AND ({_GATES[action]})
             RETURNING l.id, l.person_id, l.from_at, l.until_at, l.rules, l.temporary_rules,
                       l.reason, l.requested_by, l.decided_by, l.level""",
            id=leave_id, operator=who.operator_id, max_days=max_days, note=note, now=utc(now))
        row = await conn.fetchrow(sql, *args)
        if row is None:
            await _refusal(conn, who, leave_id, action, now, max_days)
        detail = {"leave_id": leave_id, "exemption": exemption_id(leave_id), "state_before": before,
                  "note": note}
        order_body = await _order_change(conn, who, row, action, before, now)
        if order_body is None:
            await audit_request(conn, request, f"leave.{action}", row["person_id"],
                                {**detail, "version": None, "changed": False})
        else:
            try:
                version = await store_order_version(conn, request, order_body,
                                                    f"leave.{action}", detail)
            except ValidationError as exc:  # the order no longer admits this exemption
                raise BadRequestError(exc.detail, exc.reason) from None
        leave = await _fetch(conn, leave_id, now)
    if version is not None:
        order_stored(service)
    return web.json_response({"leave": leave, "order_version": version})


async def _order_change(conn: asyncpg.Connection, who: Principal, row: asyncpg.Record,
                        action: str, before: str, now: int) -> dict[str, Any] | None:
    """The person's order as it must be after ``action`` (None: the order is unaffected)."""
    if action == "reject" or (action == "cancel" and before == "requested"):
        return None
    if action == "return" and now >= int(row["until_at"].timestamp() * 1000):
        return None  # back late: the exemption ended at its until, the return is only recorded
    _, order = await _current_order(conn, who, row["person_id"])
    ex_id = exemption_id(row["id"])
    exemptions = [dict(e) for e in order.get("exemptions", []) if isinstance(e, dict)]
    others = [e for e in exemptions if e.get("id") != ex_id]
    if action == "approve":
        return _with_exemptions(order, [*others, _exemption(row, row["decided_by"],
                                                            row["level"])])
    if len(others) == len(exemptions):
        return None  # the exemption was already taken out of the order by hand
    if action == "return" and now > int(row["from_at"].timestamp() * 1000):
        return _with_exemptions(order, [
            _exemption(row, row["decided_by"], row["level"], until_ms=now)
            if e.get("id") == ex_id else e for e in exemptions])
    return _with_exemptions(order, others)  # cancelled, or back at the very instant it began


async def _refusal(conn: asyncpg.Connection, who: Principal, leave_id: int, action: str,
                   now: int, max_days: int) -> None:
    """Why the deciding UPDATE changed nothing, as the error to answer with (always raises)."""
    sql, args = _bind("""SELECT l.jurisdiction, l.requested_by, l.until_at - l.from_at AS span,
                                l.returned_at,
                                wardstream_leave_state(l.state, l.from_at, l.until_at, :now)
                                  AS current
                           FROM leaves l WHERE l.id = :id""", id=leave_id, now=utc(now))
    row = await conn.fetchrow(sql, *args)
    if row is None:
        raise NotFoundError(f"no leave {leave_id}")
    if not who.covers(row["jurisdiction"]):
        raise ForbiddenError(f"leave {leave_id} is outside jurisdiction {who.jurisdiction!r}")
    require_role(who, _ROLE[action])
    state = row["current"]
    allowed = {"approve": ("requested",), "reject": ("requested",),
               "cancel": ("requested", "approved"), "return": ("active", "ended")}[action]
    if state not in allowed:
        hint = " (record the return instead)" if action == "cancel" and state == "active" else ""
        raise WorkflowError("leave_state", f"leave {leave_id} is {state}; it cannot be"
                            f" {action}{'d' if action.endswith('e') else 'ed'}{hint}")
    if action == "return" and row["returned_at"] is not None:
        raise WorkflowError("leave_state", f"leave {leave_id}: the return was recorded at"
                            f" {_ts(row['returned_at'])}")
    if action in ("approve", "reject") and row["requested_by"] == who.username:
        raise ForbiddenError(f"leave {leave_id} was requested by {who.username!r}, who may"
                             " not decide it")
    if action == "approve" and row["span"].total_seconds() > max_days * 86_400:
        days = row["span"].total_seconds() / 86_400
        raise ForbiddenError(f"a leave of {days:g} days needs a county administrator; a"
                             f" supervisor approves up to {max_days} days")
    if action == "approve":
        raise WorkflowError("leave_state", f"leave {leave_id} ends before it could begin")
    raise ForbiddenError(f"operator {who.username!r} may not {action} leave {leave_id}")


def register(app: web.Application) -> None:
    """Add the leave routes."""
    r = app.router
    r.add_get("/api/leaves", list_leaves)
    r.add_get("/api/persons/{person_id}/leaves", person_leaves)
    r.add_post("/api/persons/{person_id}/leaves", request_leave)
    r.add_post("/api/leaves/{leave_id}/approve", approve_leave)
    r.add_post("/api/leaves/{leave_id}/reject", reject_leave)
    r.add_post("/api/leaves/{leave_id}/cancel", cancel_leave)
    r.add_post("/api/leaves/{leave_id}/return", return_leave)


def openapi_paths() -> dict[str, Any]:
    """The OpenAPI description of these routes (merged into ``/api/openapi.json``)."""
    err = {"description": "error", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}
    ok = {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}
    when = {"oneOf": [{"type": "string"}, {"type": "integer"}],
            "description": "RFC 3339 or epoch ms"}
    text = {"type": "string", "minLength": 1, "maxLength": 1024}
    person = {"name": "person_id", "in": "path", "required": True,
              "schema": {"type": "string", "minLength": 1, "maxLength": 256}}
    leave = {"name": "leave_id", "in": "path", "required": True,
             "schema": {"type": "integer", "minimum": 1}}
    query = [
        {"name": "state", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "comma list of " + ", ".join(STATES)},
        {"name": "limit", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
        {"name": "offset", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 0}},
    ]
    note = {"required": False, "content": {"application/json": {"schema": {
        "type": "object", "additionalProperties": False, "properties": {"note": text}}}}}

    def step(summary: str, required_note: bool = False) -> dict[str, Any]:
        body = note if not required_note else {"required": True, "content": {
            "application/json": {"schema": {"type": "object", "required": ["note"],
                                            "additionalProperties": False,
                                            "properties": {"note": text}}}}}
        return {"post": {"summary": summary, "parameters": [leave], "requestBody": body,
                         "responses": {"200": ok, "400": err, "401": err, "403": err,
                                       "404": err, "409": err}}}

    return {
        "/api/leaves": {"get": {
            "summary": "Leaves in scope, latest first (state follows the clock)",
            "parameters": [*query, {"name": "person_id", "in": "query", "required": False,
                                    "schema": {"type": "string"}}],
            "responses": {"200": ok, "400": err, "401": err}}},
        "/api/persons/{person_id}/leaves": {
            "get": {"summary": "One person's leaves", "parameters": [person, *query],
                    "responses": {"200": ok, "400": err, "401": err, "403": err, "404": err}},
            "post": {
                "summary": "Request leave (operator and above; checked against the current"
                           " order; audited)",
                "parameters": [person],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["from", "until", "reason"],
                    "additionalProperties": False,
                    "properties": {"from": when, "until": when, "reason": text,
                                   "rules": {"type": "array", "items": {"type": "string"}},
                                   "temporary_rules": {"type": "array",
                                                       "items": {"type": "object"}}}}}}},
                "responses": {"201": ok, "400": err, "401": err, "403": err, "404": err,
                              "409": err}}},
        "/api/leaves/{leave_id}/approve": step(
            "Approve (supervisor up to leave_office_max_days days, admin beyond; not the"
            " requester); the order gains the exemption"),
        "/api/leaves/{leave_id}/reject": step("Reject a request (supervisor and above)", True),
        "/api/leaves/{leave_id}/cancel": step("Cancel a leave that has not begun (operator and"
                                              " above); an approved one leaves the order"),
        "/api/leaves/{leave_id}/return": step("Record the return (operator and above): the"
                                              " leave ends now, in the order too"),
    }
