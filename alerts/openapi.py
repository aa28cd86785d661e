"""The OpenAPI 3.0 document served at ``/api/openapi.json``."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from alerts.notify.openapi import openapi_paths as notify_openapi_paths

_ERR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _q(name: str, schema: dict[str, Any], desc: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": desc}


def _p(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 256}}


def _ok(desc: str, ref: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"$ref": f"#/components/schemas/{ref}"} if ref else {"type": "object"}
    return {"description": desc, "content": {"application/json": {"schema": schema}}}


def _std(ok: dict[str, Any], *codes: str) -> dict[str, Any]:
    out: dict[str, Any] = {"200": ok, "401": _ERR}
    for c in codes:
        out[c] = _ERR
    return out


def openapi_document() -> dict[str, Any]:
    """Build the document (a fresh dict each call)."""
    doc = _core_document()
    doc["paths"].update(notify_openapi_paths())
    doc["paths"].update(import_module("alerts.reports").openapi_paths())
    doc["paths"].update(import_module("alerts.order_templates").openapi_paths())
    doc["paths"].update(import_module("alerts.leaves").openapi_paths())
    return doc


def _core_document() -> dict[str, Any]:
    alert_id, person_id = _p("alert_id"), _p("person_id")
    paging = [_q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"),
              _q("offset", {"type": "integer", "minimum": 0}, "rows to skip")]
    return {
        "openapi": "3.0.3",
        "info": {"title": "wardstream command-centre API", "version": "1.0.0",
                 "description": "Alerts, workflow, tracks, orders and zones of the command "
                                "centres. Every /api route except login needs a bearer token; "
                                "data is limited to the caller's jurisdiction prefix."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"],
                          "properties": {"error": {"type": "string"}, "detail": {"type": "string"}}},
                "Alert": {"type": "object", "required": ["alert_id", "rule_id", "kind", "severity",
                                                         "opened_at", "status"],
                          "properties": {
                              "alert_id": {"type": "string"},
                              "person_id": {"type": "string", "nullable": True},
                              "rule_id": {"type": "string"}, "kind": {"type": "string"},
                              "severity": {"type": "string", "enum": ["red", "orange", "yellow", "blue"]},
                              "opened_at": {"type": "string"},
                              "cleared_at": {"type": "string", "nullable": True},
                              "status": {"type": "string",
                                         "enum": ["open", "cleared", "acknowledged", "resolved"]},
                              "tier": {"type": "string", "enum": ["county", "city", "province"]},
                              "jurisdiction": {"type": "string", "nullable": True}}},
                "Checkin": {"type": "object",
                            "required": ["device_id", "ts", "lat", "lon", "accuracy_m", "verified"],
                            "properties": {
                                "person_id": {"type": "string"}, "device_id": {"type": "string"},
                                "ts": {"type": "string"}, "lat": {"type": "number"},
                                "lon": {"type": "number"}, "accuracy_m": {"type": "number"},
                                "face_score": {"type": "number", "nullable": True},
                                "action_ok": {"type": "boolean", "nullable": True},
                                "method": {"type": "string", "nullable": True,
                                           "enum": ["face", "face_action", "action", None]},
                                "request_id": {"type": "string", "nullable": True},
                                "min_score": {"type": "number", "nullable": True},
                                "verified": {"type": "boolean", "nullable": True},
                                "failures": {"type": "array", "nullable": True, "items": {
                                    "type": "string", "enum": ["face_score", "action", "no_result"]}},
                                "placement": {"type": "string", "nullable": True,
                                              "enum": ["inside", "outside", "uncertain", None]}}},
                "CheckinList": {"type": "object", "required": ["person_id", "from", "to", "checkins"],
                                "properties": {"person_id": {"type": "string"},
                                               "from": {"type": "string"}, "to": {"type": "string"},
                                               "checkins": {"type": "array", "items": {
                                                   "$ref": "#/components/schemas/Checkin"}}}},
                "AlertList": {"type": "object", "required": ["alerts", "total"],
                              "properties": {"alerts": {"type": "array",
                                                        "items": {"$ref": "#/components/schemas/Alert"}},
                                             "total": {"type": "integer"},
                                             "next_offset": {"type": "integer", "nullable": True}}},
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/auth/login": {"post": {
                "summary": "Log in; returns a token", "security": [],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["username", "password"],
                    "properties": {"username": {"type": "string"}, "password": {"type": "string"}}}}}},
                "responses": {"200": _ok("token"), "400": _ERR, "401": _ERR, "429": _ERR}}},
            "/api/auth/logout": {"post": {"summary": "End this token's session",
                                          "responses": _std(_ok("ok"))}},
            "/api/me": {"get": {"summary": "The caller", "responses": _std(_ok("operator"))}},
            "/api/alerts": {"get": {
                "summary": "Alerts in scope, newest first",
                "parameters": [
                    _q("status", {"type": "string"}, "open, cleared, acknowledged, resolved (comma list)"),
                    _q("severity", {"type": "string"}, "red, orange, yellow, blue (comma list)"),
                    _q("since", {"type": "string"}, "RFC 3339 or epoch ms: opened at or after"),
                    _q("person_id", {"type": "string"}, "one person"),
                    _q("jurisdiction", {"type": "string"}, "a narrower admin-code prefix"),
                    *paging],
                "responses": _std(_ok("alerts", "AlertList"), "400")}},
            "/api/alerts/{alert_id}": {"get": {
                "summary": "One alert with its lifecycle history", "parameters": [alert_id],
                "responses": _std(_ok("alert"), "403", "404")}},
            "/api/alerts/{alert_id}/ack": {"post": {
                "summary": "Acknowledge (operator and above)", "parameters": [alert_id],
                "responses": _std(_ok("alert"), "400", "403", "404", "409")}},
            "/api/alerts/{alert_id}/resolve": {"post": {
                "summary": "Resolve (note required for tamper and removed)", "parameters": [alert_id],
                "requestBody": {"required": False, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"note": {"type": "string"}}}}}},
                "responses": _std(_ok("alert"), "400", "403", "404", "409", "422")}},
            "/api/persons": {"get": {
                "summary": "Persons in scope with risk colour",
                "parameters": [_q("jurisdiction", {"type": "string"}, "narrower prefix"),
                               _q("limit", {"type": "integer", "minimum": 1, "maximum": 5000}, "page size"),
                               _q("offset", {"type": "integer", "minimum": 0}, "rows to skip")],
                "responses": _std(_ok("persons"), "400")}},
            "/api/persons/{person_id}": {"get": {
                "summary": "A person's risk, position and alerts", "parameters": [person_id],
                "responses": _std(_ok("person"), "403", "404")}},
            "/api/persons/{person_id}/track": {"get": {
                "summary": "A person's fixes (audited)",
                "parameters": [person_id,
                               _q("from", {"type": "string"}, "RFC 3339 or epoch ms (default to - 24 h)"),
                               _q("to", {"type": "string"}, "RFC 3339 or epoch ms (default now)"),
                               _q("limit", {"type": "integer", "minimum": 1, "maximum": 100000}, "max fixes")],
                "responses": _std(_ok("track"), "400", "403", "404")}},
            "/api/persons/{person_id}/checkins": {"get": {
                "summary": "A person's identity check-ins, judged and placed (audited)",
                "parameters": [person_id,
                               _q("from", {"type": "string"}, "RFC 3339 or epoch ms (default to - 7 days)"),
                               _q("to", {"type": "string"}, "RFC 3339 or epoch ms (default now)"),
                               _q("limit", {"type": "integer", "minimum": 1, "maximum": 20000},
                                  "max check-ins")],
                "responses": _std(_ok("check-ins", "CheckinList"), "400", "403", "404")}},
            "/api/jurisdictions": {"get": {
                "summary": "Counts per child jurisdiction (province -> city -> county)",
                "parameters": [_q("prefix", {"type": "string"}, "admin-code prefix")],
                "responses": _std(_ok("counts"), "400", "403")}},
            "/api/orders": {"get": {"summary": "Current orders in scope",
                                    "responses": _std(_ok("orders"))}},
            "/api/orders/{person_id}": {
                "get": {"summary": "Every version of an order", "parameters": [person_id],
                        "responses": _std(_ok("versions"), "403", "404")},
                "put": {"summary": "New order version (supervisor and above)", "parameters": [person_id],
                        "requestBody": {"required": True, "content": {"application/json": {
                            "schema": {"type": "object"}}}},
                        "responses": {**_std(_ok("version"), "400", "403"), "201": _ok("created")}},
                "delete": {"summary": "End an order (supervisor and above)", "parameters": [person_id],
                           "responses": _std(_ok("version"), "403", "404")}},
            "/api/zones": {"get": {"summary": "Zones visible to the caller",
                                   "responses": _std(_ok("zones"))}},
            "/api/zones/{zone_id}": {"put": {
                "summary": "New zone version (supervisor and above)", "parameters": [_p("zone_id")],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"type": "object"}}}},
                "responses": {**_std(_ok("version"), "400", "403"), "201": _ok("created")}}},
            "/api/live": {"get": {
                "summary": "WebSocket: lifecycle records in scope (token via header, ?token= or "
                           "a first message {\"token\": ...})", "security": [],
                "responses": {"101": {"description": "switching protocols"}, "400": _ERR}}},
            "/healthz": {"get": {"summary": "Liveness", "security": [],
                                 "responses": {"200": _ok("ok")}}},
            "/readyz": {"get": {"summary": "Readiness (database and sinks)", "security": [],
                                "responses": {"200": _ok("ready"), "503": _ok("not ready")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "security": [],
                                 "responses": {"200": {"description": "text exposition"}}}},
        },
    }
