"""OpenAPI description of the notification routes (merged into ``/api/openapi.json``)."""

from __future__ import annotations

from typing import Any

from alerts.notify.policy import CHANNELS, DELIVERY_STATUSES


def openapi_paths() -> dict[str, Any]:
    """The OpenAPI description of these routes."""
    err = {"description": "error", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}
    obj = {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}

    def std(ok: str = "200", *codes: str) -> dict[str, Any]:
        return {ok: obj, "401": err, "403": err, **{c: err for c in codes}}

    def q(name: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": schema}

    def p(name: str) -> dict[str, Any]:
        return {"name": name, "in": "path", "required": True,
                "schema": {"type": "integer", "minimum": 1, "maximum": 2**62}}

    text = {"type": "string", "maxLength": 500}
    policy = {"type": "object", "required": ["channel", "recipient"], "properties": {
        "jurisdiction_prefix": {"type": "string", "pattern": "^[0-9]{0,12}$"},
        "channel": {"type": "string", "enum": list(CHANNELS)},
        "recipient": {"type": "string", "minLength": 1, "maxLength": 500,
                      "description": "'duty' (the roster's officer) or an address"},
        "tier": {"type": "string", "enum": ["county", "city", "province"]},
        "events": {"type": "array", "items": {"type": "string"}},
        "severities": {"type": "array", "items": {"type": "string"}, "nullable": True},
        "kinds": {"type": "array", "items": {"type": "string"}, "nullable": True},
        "quiet_start": {"type": "string", "example": "22:00"},
        "quiet_end": {"type": "string", "example": "06:30"},
        "quiet_tz": {"type": "string", "example": "Asia/Shanghai"}}}
    shift = {"type": "object", "required": ["jurisdiction", "officer", "starts_at", "ends_at"],
             "properties": {"jurisdiction": {"type": "string"}, "officer": text,
                            "starts_at": {"type": "string"}, "ends_at": {"type": "string"},
                            "contacts": {"type": "object",
                                         "additionalProperties": {"type": "string"}}}}

    def body(schema: dict[str, Any]) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    aid = {"name": "alert_id", "in": "path", "required": True,
           "schema": {"type": "string", "minLength": 1, "maxLength": 256}}
    return {
        "/api/alerts/{alert_id}/dispatch": {
            "get": {"summary": "The alert's dispatch and note thread", "parameters": [aid],
                    "responses": std("200", "400", "404")},
            "post": {"summary": "Dispatch an officer (operator+)", "parameters": [aid],
                     "requestBody": body({"type": "object", "required": ["assignee"],
                                          "properties": {"assignee": text, "unit": text}}),
                     "responses": std("201", "400", "404", "409")}},
        "/api/alerts/{alert_id}/dispatch/status": {
            "post": {"summary": "Move the dispatch forward (operator+)", "parameters": [aid],
                     "requestBody": body({"type": "object", "required": ["status"], "properties": {
                         "status": {"type": "string",
                                    "enum": ["en_route", "on_scene", "resolved"]}}}),
                     "responses": std("200", "400", "404", "409")}},
        "/api/alerts/{alert_id}/notes": {
            "post": {"summary": "Add a note to the alert's thread (operator+)",
                     "parameters": [aid],
                     "requestBody": body({"type": "object", "required": ["body"], "properties": {
                         "body": {"type": "string", "minLength": 1, "maxLength": 4000}}}),
                     "responses": std("201", "400", "404")}},
        "/api/response-times": {
            "get": {"summary": "Median and p90 seconds to acknowledge, to on scene and to "
                               "resolve, per severity and jurisdiction",
                    "parameters": [q("since", {"type": "string"}), q("until", {"type": "string"})],
                    "responses": std("200", "400")}},
        "/api/notify/policies": {
            "get": {"summary": "Notification policies in scope (supervisor+)",
                    "responses": std()},
            "post": {"summary": "Add a notification policy (supervisor+)",
                     "requestBody": body(policy), "responses": std("201", "400")}},
        "/api/notify/policies/{policy_id}": {
            "delete": {"summary": "Remove a policy (supervisor+)", "parameters": [p("policy_id")],
                       "responses": std("200", "400", "404")}},
        "/api/notify/roster": {
            "get": {"summary": "Duty roster in scope (supervisor+)",
                    "parameters": [q("since", {"type": "string"}), q("until", {"type": "string"})],
                    "responses": std("200", "400")},
            "post": {"summary": "Add a duty shift (supervisor+)", "requestBody": body(shift),
                     "responses": std("201", "400")}},
        "/api/notify/roster/{shift_id}": {
            "delete": {"summary": "Remove a shift (supervisor+)", "parameters": [p("shift_id")],
                       "responses": std("200", "400", "404")}},
        "/api/notify/deliveries": {
            "get": {"summary": "Delivery log in scope (operator+)",
                    "parameters": [q("alert_id", {"type": "string", "maxLength": 256}),
                                   q("status", {"type": "string", "enum": list(DELIVERY_STATUSES)}),
                                   q("resent", {"type": "string", "enum": ["true", "false"]}),
                                   q("limit", {"type": "integer", "minimum": 1,
                                               "maximum": 1000})],
                    "responses": std("200", "400")}},
    }
