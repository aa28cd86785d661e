"""Order templates in the command centre: list them, store an order filled in from one.

``GET /api/order-templates`` (any signed-in role) lists the templates of the
file named by ``WARDSTREAM_ORDER_TEMPLATES``; ``POST
/api/orders/{person_id}/from-template`` (supervisor and above) fills one in
(:mod:`geofence.templates`) and stores the result exactly as ``PUT
/api/orders/{person_id}`` stores an order: same scope checks, versioning,
orders topic and audit row (action ``order.from_template``, naming the
template). The file is read again when it changes on disk.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Union

import msgspec
from aiohttp import web

from alerts.api import save_order_version
from alerts.errors import BadRequestError
from alerts.http import caller, json_body, path_id
from geofence.errors import OrderError
from geofence.templates import TemplateSet, order_document, parse_templates
from stream.order_templates import templates_path

log = logging.getLogger(__name__)
_LOADED: dict[Path, tuple[int, TemplateSet]] = {}


class FromTemplate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /api/orders/{person_id}/from-template``."""

    template: str
    devices: tuple[str, ...]
    jurisdiction: str
    version: Union[int, None] = None
    params: dict[str, Any] = {}  # checked by geofence.templates: unknown_parameter, ...
    timezone: str = "Asia/Shanghai"
    valid_from: Union[int, str, None] = None
    valid_until: Union[int, str, None] = None


def templates_of(request: web.Request) -> TemplateSet:
    """The templates of the configured file (re-read when the file changes).

    An unreadable or invalid file is 503 with the reason: the command centre
    cannot offer templates until it is fixed, and nothing else is affected.
    """
    service, _ = caller(request)
    path = templates_path(service.settings.order_templates)
    try:
        mtime = path.stat().st_mtime_ns
        cached = _LOADED.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        templates = parse_templates(path.read_bytes())
    except (OSError, OrderError) as exc:
        detail = f"order templates {str(path)!r}: {exc.strerror if isinstance(exc, OSError) else exc}"
        log.warning("%s", detail)
        raise web.HTTPServiceUnavailable(text=detail) from None
    _LOADED[path] = (mtime, templates)
    return templates


async def list_templates(request: web.Request) -> web.Response:
    """GET /api/order-templates: every template, its parameters and rules (any role)."""
    return web.json_response({"templates": [t.describe() for t in templates_of(request)]})


async def order_from_template(request: web.Request) -> web.Response:
    """POST /api/orders/{person_id}/from-template: a new order version from a template."""
    caller(request, "supervisor")
    person_id = path_id(request, "person_id")
    raw = await json_body(request)
    try:
        body = msgspec.convert(raw, FromTemplate)
    except msgspec.ValidationError as exc:
        text = str(exc)
        reason = "unknown_field" if "unknown field" in text else "bad_request"
        raise BadRequestError(text, reason) from None
    try:
        template = templates_of(request).get(body.template, body.version)
        doc = order_document(template, person_id, body.devices, body.jurisdiction, body.params,
                             timezone=body.timezone, valid_from=body.valid_from,
                             valid_until=body.valid_until)
    except OrderError as exc:
        raise BadRequestError(exc.detail, exc.reason) from None
    return await save_order_version(request, doc, "order.from_template",
                                    {"template": template.name,
                                     "template_version": template.version})


def register(app: web.Application) -> None:
    """Add the order-template routes."""
    app.router.add_get("/api/order-templates", list_templates)
    app.router.add_post("/api/orders/{person_id}/from-template", order_from_template)


def openapi_paths() -> dict[str, Any]:
    """The OpenAPI description of these routes (merged into ``/api/openapi.json``)."""
    err = {"description": "error", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}
    ok = {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}
    text = {"type": "string", "minLength": 1, "maxLength": 256}
    when = {"oneOf": [{"type": "string"}, {"type": "integer"}],
            "description": "RFC 3339 or epoch ms"}
    params = {"type": "object", "additionalProperties": False, "properties": {
        "residence": text, "workplace": text, "county": text,
        "victims": {"type": "array", "items": {
            "type": "object", "required": ["person"], "additionalProperties": False,
            "properties": {"person": text, "home": text}}},
        "places": {"type": "array", "items": text}}}
    person = {"name": "person_id", "in": "path", "required": True,
              "schema": {"type": "string", "minLength": 1, "maxLength": 256}}
    return {
        "/api/order-templates": {"get": {
            "summary": "Order templates: offence type, parameters and rules",
            "responses": {"200": ok, "401": err, "503": err}}},
        "/api/orders/{person_id}/from-template": {"post": {
            "summary": "New order version filled in from a template (supervisor and above;"
                       " audited)",
            "parameters": [person],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["template", "devices", "jurisdiction"],
                "additionalProperties": False,
                "properties": {
                    "template": text,
                    "version": {"type": "integer", "minimum": 1},
                    "devices": {"type": "array", "minItems": 1, "items": text},
                    "jurisdiction": {"type": "string", "pattern": "^[0-9]{6}$"},
                    "params": params, "timezone": text,
                    "valid_from": when, "valid_until": when}}}}},
            "responses": {"200": ok, "201": ok, "400": err, "401": err, "403": err,
                          "503": err}}},
    }
