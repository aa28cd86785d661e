"""Order templates in the command centre: listing, storing a filled-in order, scope, audit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alerts_testkit import Api

from geofence.model import TemplateRef, parse_order

BODY: dict[str, Any] = {"template": "domestic_violence", "devices": ["WB-5"], "jurisdiction": "320102",
        "params": {"residence": "home-P-5", "victims": [{"person": "P-6", "home": "Z-v-6"}]},
        "valid_from": "2026-12-01T00:00:00+08:00"}


async def _api(make_api: Any) -> tuple[Api, dict[str, str]]:
    api: Api = await make_api()
    tokens = {
        "city": await api.user("city", "supervisor", "3201"),
        "county": await api.user("county", "supervisor", "320102"),
        "operator": await api.user("operator", "operator", "320102"),
        "viewer": await api.user("viewer", "viewer", "320102"),
    }
    return api, tokens


async def _audit(api: Api, action: str) -> list[dict[str, Any]]:
    async with api.pool.acquire() as conn:
        rows = await conn.fetch("SELECT operator, target, detail FROM audit_log WHERE action = $1"
                                " ORDER BY id", action)
    return [{"actor": r["operator"], "target": r["target"],
             "detail": json.loads(r["detail"]) if isinstance(r["detail"], str) else r["detail"]}
            for r in rows]


async def test_any_role_lists_the_templates_and_no_token_is_401(make_api: Any) -> None:
    api, tok = await _api(make_api)
    status, body = await api.call("GET", "/api/order-templates", tok["viewer"])
    assert status == 200
    names = [t["name"] for t in body["templates"]]
    assert names == sorted(names) and "domestic_violence" in names and len(names) == 5
    dv = next(t for t in body["templates"] if t["name"] == "domestic_violence")
    assert dv["parameters"]["victims"] == "required" and dv["version"] == 1
    assert (await api.client.get("/api/order-templates")).status == 401
    resp = await api.client.post("/api/orders/P-5/from-template", json=BODY)
    assert resp.status == 401


async def test_a_supervisor_stores_a_version_that_names_its_template(make_api: Any) -> None:
    api, tok = await _api(make_api)
    status, body = await api.call("POST", "/api/orders/P-5/from-template", tok["county"], BODY)
    assert (status, body) == (201, {"person_id": "P-5", "version": 1, "changed": True})
    status, hist = await api.call("GET", "/api/orders/P-5", tok["viewer"])
    assert status == 200 and len(hist["versions"]) == 1
    stored = hist["versions"][0]["order"]
    order = parse_order(stored)
    assert order.template == TemplateRef("domestic_violence", 1)
    assert [r.id for r in order.rules] == ["victim-1", "victim-home-1", "curfew", "county",
                                           "signal"]
    assert stored["valid_from"] == BODY["valid_from"]
    # the same request again changes nothing, exactly as PUT answers it
    status, body = await api.call("POST", "/api/orders/P-5/from-template", tok["city"], BODY)
    assert (status, body) == (200, {"person_id": "P-5", "version": None, "changed": False})
    rows = await _audit(api, "order.from_template")
    assert [(r["actor"], r["target"]) for r in rows] == [("county", "P-5"), ("city", "P-5")]
    assert rows[0]["detail"] == {"version": 1, "changed": True, "template": "domestic_violence",
                                 "template_version": 1}
    async with api.pool.acquire() as conn:
        topics = [r["topic"] for r in await conn.fetch("SELECT topic FROM outbox ORDER BY id")]
    assert topics == ["wardstream.orders"]


async def test_viewer_operator_and_other_jurisdictions_are_refused(make_api: Any) -> None:
    api, tok = await _api(make_api)
    for who in ("viewer", "operator"):
        status, body = await api.call("POST", "/api/orders/P-5/from-template", tok[who], BODY)
        assert status == 403 and "needs supervisor" in body["detail"], (who, body)
    outside = {**BODY, "jurisdiction": "330106"}
    status, body = await api.call("POST", "/api/orders/P-5/from-template", tok["city"], outside)
    assert status == 403 and "outside" in body["detail"]
    # a person whose current order lies in another county cannot be taken over
    other = await api.user("other", "supervisor", "320104")
    status, _ = await api.call("POST", "/api/orders/P-7/from-template", other,
                               {**BODY, "jurisdiction": "320104"})
    assert status == 201
    status, body = await api.call("POST", "/api/orders/P-7/from-template", tok["county"], BODY)
    assert status == 403 and "P-7" in body["detail"]
    denied = await _audit(api, "access.denied")
    assert [(r["actor"], r["target"]) for r in denied] == [
        ("viewer", "P-5"), ("operator", "P-5"), ("city", "P-5"), ("county", "P-7")]
    async with api.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM orders WHERE person_id = 'P-5'") == 0


async def test_bad_requests_name_the_reason(make_api: Any) -> None:
    api, tok = await _api(make_api)
    cases = [
        ({**BODY, "template": "arson"}, "unknown_template", "no template 'arson'"),
        ({**BODY, "version": 7}, "unknown_template", "has no version 7"),
        ({**BODY, "params": {"residence": "h"}}, "missing_parameter", "at least one victim"),
        ({**BODY, "params": {**BODY["params"], "school": "S"}}, "unknown_parameter", "school"),
        ({**BODY, "params": {**BODY["params"], "workplace": "W"}}, "unused_parameter",
         "workplace"),
        ({**BODY, "colour": "red"}, "unknown_field", "colour"),
        ({k: v for k, v in BODY.items() if k != "devices"}, "bad_request", "devices"),
        ({**BODY, "jurisdiction": "32"}, "bad_request", "6-digit"),
    ]
    for body, reason, words in cases:
        status, answer = await api.call("POST", "/api/orders/P-5/from-template", tok["county"],
                                        body)
        assert status == 400 and answer["error"] == reason and words in answer["detail"], answer


async def test_an_unreadable_templates_file_is_503_and_a_changed_one_is_read_again(
        make_api: Any, tmp_path: Path) -> None:
    api, tok = await _api(make_api)
    path = tmp_path / "templates.json"
    api.service.settings = api.service.settings.replace(order_templates=str(path))
    status, body = await api.call("GET", "/api/order-templates", tok["viewer"])
    assert status == 503 and str(path) in body["detail"]
    path.write_text('{"templates": [{"name": "q", "version": 1, "offence": "x",'
                    ' "rules": [{"id": "s", "type": "signal_loss"}]}]}')
    status, body = await api.call("GET", "/api/order-templates", tok["viewer"])
    assert status == 200 and [t["name"] for t in body["templates"]] == ["q"]
    path.write_text('{"templates": [{"name": "q", "version": 1, "offence": "x",'
                    ' "rules": [{"id": "s", "type": "signal_loss", "zone": "Z"}]}]}')
    status, body = await api.call("GET", "/api/order-templates", tok["viewer"])
    assert status == 503 and "`zone` applies only to" in body["detail"]
