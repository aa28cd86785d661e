"""Request helpers shared by the command-centre routes.

The caller and its service, role and scope checks, JSON bodies bounded in
size and depth, query and path parameters, text fields, and audit rows
written for a request. The routes of :mod:`alerts.api` and of
:mod:`alerts.notify` use these; the authentication middleware that sets the
caller lives in :mod:`alerts.api`.
"""

from __future__ import annotations

import json
from typing import Any, overload

import asyncpg
from aiohttp import web

from alerts.errors import BadRequestError, ForbiddenError
from alerts.service import Service
from alerts.store import Principal, audit
from geofence.model import json_depth_exceeds, parse_ts

SERVICE: web.AppKey[Service] = web.AppKey("service", Service)
WHO: web.RequestKey[Principal] = web.RequestKey("who", Principal)
AUDITED: web.RequestKey[bool] = web.RequestKey("audited", bool)
"""Set by a handler that wrote its own audit row (the middleware then writes none)."""
MAX_BODY_BYTES = 2_000_000
"""Largest request body; larger is 400 ``too_large`` before it is read."""
MAX_BODY_DEPTH = 32
"""Deepest nesting of a JSON body; deeper is 400 ``too_deep`` before it is parsed."""


def remote_of(request: web.Request) -> str:
    """The peer address (the API is meant to sit on the command-centre LAN)."""
    return request.remote or "unknown"


def who_of(request: web.Request) -> Principal:
    """The authenticated caller."""
    who: Principal = request[WHO]
    return who


def require_role(who: Principal, role: str) -> None:
    """403 unless the caller's role is at least ``role``."""
    if not who.can(role):
        raise ForbiddenError(f"role {who.role!r} cannot do this (needs {role} or above)")


def require_scope(who: Principal, jurisdiction: str) -> None:
    """403 unless ``jurisdiction`` lies inside the caller's scope."""
    if not who.covers(jurisdiction):
        raise ForbiddenError(f"jurisdiction {jurisdiction!r} is outside your scope "
                             f"{who.jurisdiction!r}")


def caller(request: web.Request, role: str | None = None) -> tuple[Service, Principal]:
    """The service and the authenticated caller, whose role is at least ``role`` if given."""
    who = who_of(request)
    if role is not None:
        require_role(who, role)
    return request.app[SERVICE], who


def connection(request: web.Request) -> Any:
    """``async with connection(request) as conn``: a store connection (5 s to get one)."""
    pool = request.app[SERVICE].pool
    assert pool is not None
    return pool.acquire(timeout=5)


async def audit_request(conn: asyncpg.Connection, request: web.Request, action: str,
                        target: str | None = None, detail: dict[str, Any] | None = None) -> None:
    """Write the audit row of this request: its caller, the service's time, its peer."""
    await audit(conn, request.app[SERVICE].clock(), who_of(request).username, action, target,
                detail, remote_of(request))


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, bounded in size and depth before it is parsed."""
    if request.content_length and request.content_length > MAX_BODY_BYTES:
        raise BadRequestError(f"the body is larger than {MAX_BODY_BYTES} bytes", "too_large")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BadRequestError(f"the body is larger than {MAX_BODY_BYTES} bytes",
                              "too_large") from None
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequestError(f"the body is larger than {MAX_BODY_BYTES} bytes", "too_large")
    if json_depth_exceeds(raw, MAX_BODY_DEPTH):
        raise BadRequestError(f"the body nests more than {MAX_BODY_DEPTH} levels deep",
                              "too_deep")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequestError("body is not valid JSON") from None
    except RecursionError:  # bounded above; kept for text the scan cannot read
        raise BadRequestError("the body nests too deep", "too_deep") from None
    if not isinstance(data, dict):
        raise BadRequestError("body must be a JSON object")
    check_text(data)
    return data


def check_text(value: Any, depth: int = 0) -> None:
    """Refuse what PostgreSQL text cannot hold: NUL characters and lone surrogates."""
    if depth > 64:
        raise BadRequestError("body nests too deeply")
    if isinstance(value, str):
        if "\x00" in value:
            raise BadRequestError("text must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequestError("text must be valid UTF-8 (no lone surrogates)") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            check_text(k, depth + 1)
            check_text(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            check_text(v, depth + 1)


@overload
def text_field(body: dict[str, Any], name: str, limit: int) -> str: ...
@overload
def text_field(body: dict[str, Any], name: str, limit: int, required: bool) -> str | None: ...


def text_field(body: dict[str, Any], name: str, limit: int, required: bool = True) -> str | None:
    """A body field of 1..``limit`` characters, stripped; None if absent and not required."""
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise BadRequestError(f"{name} must be 1-{limit} characters")
    return value.strip()


def int_param(request: web.Request, name: str, default: int) -> int:
    """A query integer in 0..2**31-1, ``default`` when absent or empty."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestError(f"{name} must be an integer") from None
    if not 0 <= value <= 2**31 - 1:
        raise BadRequestError(f"{name} must be 0..{2**31 - 1}")
    return value


def str_param(request: web.Request, name: str) -> str | None:
    """A query string of at most 256 characters, None when absent or empty."""
    value = request.query.get(name)
    if value is not None and len(value) > 256:
        raise BadRequestError(f"{name} is longer than 256 characters")
    if value is not None:
        check_text(value)
    return value or None


def time_param(request: web.Request, name: str) -> int | None:
    """A query time (RFC 3339 or epoch milliseconds) as epoch milliseconds."""
    raw = str_param(request, name)
    if raw is None:
        return None
    value: object = int(raw) if raw.isascii() and raw.isdigit() else raw
    return parse_ts(value, name)


def path_id(request: web.Request, name: str) -> str:
    """A path part of 1..256 characters."""
    value = request.match_info[name]
    if not value or len(value) > 256:
        raise BadRequestError(f"{name} must be 1..256 characters")
    check_text(value)
    return value


def int_path_id(request: web.Request, name: str) -> int:
    """A path part that is a positive integer (a row id)."""
    raw = request.match_info[name]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise BadRequestError(f"{name} must be a positive integer")
    return int(raw)
