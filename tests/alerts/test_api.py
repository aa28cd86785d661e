"""The HTTP API against the real PostgreSQL: auth, scope, workflow, audit, injection."""

from __future__ import annotations

from typing import Any

from alerts_testkit import T0, record

from alerts.tracks import TrackStore
from geofence.model import Fix, format_ts

H = dict[str, str]


def bearer(token: str) -> H:
    return {"Authorization": f"Bearer {token}"}


ORDER = {"person_id": "P-1", "devices": ["WB-1"], "jurisdiction": "320102",
         "rules": [{"id": "r1", "type": "exclusion", "zone": "Z-1"}]}
ORDER_OTHER = {"person_id": "P-2", "devices": ["WB-2"], "jurisdiction": "320104",
               "rules": [{"id": "r1", "type": "signal_loss", "after_s": 900}]}


async def seeded(make_api: Any) -> tuple[Any, dict[str, str]]:
    api = await make_api()
    tokens = {
        "admin": await api.user("admin", "admin", ""),
        "county": await api.user("county", "operator", "320102"),
        "other": await api.user("other", "operator", "320104"),
        "city": await api.user("city", "supervisor", "3201"),
        "viewer": await api.user("viewer", "viewer", "320102"),
    }
    for order in (ORDER, ORDER_OTHER):
        resp = await api.client.put(f"/api/orders/{order['person_id']}", json=order,
                                    headers=bearer(tokens["admin"]))
        assert resp.status == 201, await resp.text()
    await api.apply(record(alert_id="A-1", person_id="P-1", jurisdiction="320102"),
                    record(alert_id="A-2", person_id="P-2", jurisdiction="320104"),
                    record(alert_id="T-1", person_id="P-1", jurisdiction="320102", kind="tamper",
                           rule_id="tamper"))
    return api, tokens


async def test_no_token_is_401_everywhere(make_api: Any) -> None:
    api = await make_api()
    for method, path in [("GET", "/api/alerts"), ("POST", "/api/alerts/A-1/ack"),
                         ("GET", "/api/persons/P-1/track"), ("GET", "/api/zones"),
                         ("GET", "/api/orders"), ("GET", "/api/openapi.json"),
                         ("PUT", "/api/orders/P-1"), ("GET", "/api/me")]:
        resp = await api.client.request(method, path)
        assert resp.status == 401, (method, path)
        resp = await api.client.request(method, path, headers=bearer("forged-token"))
        assert resp.status == 401, (method, path)
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await api.client.get(path)).status == 200


async def test_expired_token_is_401(make_api: Any) -> None:
    api = await make_api()
    token = await api.user("u", "viewer", "32")
    assert (await api.client.get("/api/alerts", headers=bearer(token))).status == 200
    api.clock.advance(api.service.settings.token_ttl_s + 1)
    assert (await api.client.get("/api/alerts", headers=bearer(token))).status == 401


async def test_tokens_are_stored_hashed(make_api: Any) -> None:
    api = await make_api()
    token = await api.user("u", "viewer", "32")
    async with api.pool.acquire() as conn:
        stored = [bytes(r["token_hash"]) for r in await conn.fetch("SELECT token_hash FROM sessions")]
        hashes = [r["password_hash"] for r in await conn.fetch("SELECT password_hash FROM operators")]
    assert token.encode() not in stored and len(stored[0]) == 32
    assert hashes[0].startswith("$argon2id$")


async def test_county_operator_sees_only_their_county(make_api: Any) -> None:
    api, tok = await seeded(make_api)
    body = await (await api.client.get("/api/alerts", headers=bearer(tok["county"]))).json()
    assert {a["alert_id"] for a in body["alerts"]} == {"A-1", "T-1"} and body["total"] == 2
    body = await (await api.client.get("/api/alerts", headers=bearer(tok["city"]))).json()
    assert {a["alert_id"] for a in body["alerts"]} == {"A-1", "A-2", "T-1"}
    # another county's alert and track: 403; own: 200
    assert (await api.client.post("/api/alerts/A-2/ack", headers=bearer(tok["county"]))).status == 403
    assert (await api.client.get("/api/alerts/A-2", headers=bearer(tok["county"]))).status == 403
    assert (await api.client.get("/api/persons/P-2/track", headers=bearer(tok["county"]))).status == 403
    assert (await api.client.get("/api/persons/P-1/track", headers=bearer(tok["county"]))).status == 200
    persons = await (await api.client.get("/api/persons", headers=bearer(tok["county"]))).json()
    assert [p["person_id"] for p in persons["persons"]] == ["P-1"]
    orders = await (await api.client.get("/api/orders", headers=bearer(tok["county"]))).json()
    assert [o["person_id"] for o in orders["orders"]] == ["P-1"]
    # narrowing to another county through a filter gives nothing, not the other county's data
    body = await (await api.client.get("/api/alerts?jurisdiction=320104",
                                       headers=bearer(tok["county"]))).json()
    assert body["alerts"] == []
    assert (await api.client.get("/api/alerts/NOPE", headers=bearer(tok["county"]))).status == 404


async def test_viewer_cannot_acknowledge(make_api: Any) -> None:
    api, tok = await seeded(make_api)
    resp = await api.client.post("/api/alerts/A-1/ack", headers=bearer(tok["viewer"]))
    assert resp.status == 403
    resp = await api.client.post("/api/alerts/A-1/resolve", json={"note": "x"},
                                 headers=bearer(tok["viewer"]))
    assert resp.status == 403
    alert = (await (await api.client.get("/api/alerts/A-1", headers=bearer(tok["viewer"]))).json())
    assert alert["alert"]["status"] == "open"


async def test_workflow_ack_then_resolve_with_events_and_outbox(make_api: Any) -> None:
    api, tok = await seeded(make_api)
    resp = await api.client.post("/api/alerts/A-1/ack", headers=bearer(tok["county"]))
    assert resp.status == 200
    a = (await resp.json())["alert"]
    assert a["status"] == "acknowledged" and a["acknowledged_by"] == "county"
    assert a["acknowledged_at"] == "2026-11-22T14:03:30Z"
    # acknowledging twice changes nothing
    assert (await api.client.post("/api/alerts/A-1/ack", headers=bearer(tok["county"]))).status == 200
    resp = await api.client.post("/api/alerts/A-1/resolve", json={"note": "called back"},
                                 headers=bearer(tok["county"]))
    assert resp.status == 200 and (await resp.json())["alert"]["status"] == "resolved"
    assert (await api.client.post("/api/alerts/A-1/ack", headers=bearer(tok["county"]))).status == 409
    detail = await (await api.client.get("/api/alerts/A-1", headers=bearer(tok["county"]))).json()
    assert [(e["event"], e["operator"]) for e in detail["events"]] == [
        ("opened", None), ("acknowledged", "county"), ("resolved", "county")]
    assert detail["events"][2]["note"] == "called back"
    async with api.pool.acquire() as conn:
        out = await conn.fetch("SELECT topic, key, value FROM outbox ORDER BY id")
    lifecycle = [(r["key"], r["value"]["event"]) for r in out if r["topic"] == "wardstream.alerts"]
    assert lifecycle == [("A-1", "acknowledged"), ("A-1", "resolved")]


async def test_resolving_an_impersonated_device_needs_a_note_even_once_cleared(
        make_api: Any) -> None:
    api, tok = await seeded(make_api)
    for n, kind in enumerate(("device_conflict", "spoofing_suspected")):
        aid = f"S-{n}"
        await api.apply(record(alert_id=aid, kind=kind, rule_id=kind, status="cleared",
                               cleared_at=format_ts(T0 + 60_000)))
        resp = await api.client.post(f"/api/alerts/{aid}/resolve", json={"note": " "},
                                     headers=bearer(tok["county"]))
        assert resp.status == 422 and (await resp.json())["error"] == "note_required", kind
        resp = await api.client.post(f"/api/alerts/{aid}/resolve",
                                     json={"note": "device re-provisioned"},
                                     headers=bearer(tok["county"]))
        assert resp.status == 200, await resp.text()


async def test_resolving_tamper_needs_a_note(make_api: Any) -> None:
    api, tok = await seeded(make_api)
    for body in (None, {}, {"note": ""}, {"note": "   "}):
        resp = await api.client.post("/api/alerts/T-1/resolve", json=body,
                                     headers=bearer(tok["county"]))
        assert resp.status == 422, body
        assert (await resp.json())["error"] == "note_required"
    resp = await api.client.post("/api/alerts/T-1/resolve", json={"note": "strap replaced"},
                                 headers=bearer(tok["county"]))
    assert resp.status == 200
    # a red geofence alert that has not cleared needs a note too; once cleared it does not
    resp = await api.client.post("/api/alerts/A-1/resolve", headers=bearer(tok["county"]))
    assert resp.status == 422 and (await resp.json())["error"] == "note_required"
    await api.apply(record("cleared", at=T0 + 60_000, alert_id="A-1", status="cleared",
                           cleared_at=format_ts(T0 + 60_000)))
    resp = await api.client.post("/api/alerts/A-1/resolve", headers=bearer(tok["county"]))
    assert resp.status == 200, await resp.text()


INJECTIONS = ["' OR '1'='1", "¹", "٣", "１２", "'; DROP TABLE alerts; --", "%", "_", "32%' OR jurisdiction LIKE '%",
              "\\", "1) OR (1=1", "red' UNION SELECT * FROM operators --", "😀" * 3, "a" * 300]


async def test_sql_injection_in_every_filter_is_harmless(make_api: Any) -> None:
    api, tok = await seeded(make_api)
    h = bearer(tok["county"])
    for payload in INJECTIONS:
        for name in ("status", "severity", "since", "person_id", "jurisdiction", "limit", "offset"):
            resp = await api.client.get("/api/alerts", params={name: payload}, headers=h)
            assert resp.status in (200, 400), (name, payload, resp.status)
            if resp.status == 200:
                ids = {a["alert_id"] for a in (await resp.json())["alerts"]}
                assert ids <= {"A-1", "T-1"}, (name, payload)
        for path in (f"/api/alerts/{payload}", f"/api/persons/{payload}/track",
                     f"/api/persons/{payload}", f"/api/orders/{payload}"):
            resp = await api.client.get(path.replace("%", "%25").replace("\\", "%5C")
                                        .replace("#", "%23").replace("?", "%3F"), headers=h)
            assert resp.status in (400, 403, 404), (path, resp.status)
        for name in ("from", "to"):
            resp = await api.client.get("/api/persons/P-1/track", params={name: payload}, headers=h)
            assert resp.status == 400, (name, payload)
        resp = await api.client.get("/api/jurisdictions", params={"prefix": payload}, headers=h)
        assert resp.status in (400, 403)
        resp = await api.client.post("/api/auth/login", json={"username": payload, "password": payload})
        assert resp.status in (400, 401, 429)
    async with api.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM alerts") == 3
        assert await conn.fetchval("SELECT count(*) FROM operators") == 5


async def test_audit_rows_for_reads_and_changes(make_api: Any) -> None:
    api, tok = await seeded(make_api)
    h = bearer(tok["county"])
    async with api.pool.acquire() as conn:
        await TrackStore().write(conn, [Fix(device_id="WB-1", ts=T0 - 60_000, lat=32.05, lon=118.79)],
                                 api.clock())
    resp = await api.client.get("/api/persons/P-1/track", headers=h)
    assert len((await resp.json())["fixes"]) == 1
    await api.client.get("/api/persons/P-2/track", headers=h)  # denied, and audited
    await api.client.get("/api/alerts", headers=h)
    await api.client.post("/api/alerts/A-1/ack", headers=h)
    await api.client.post("/api/alerts/A-1/resolve", json={"note": "ok"}, headers=h)
    await api.client.post("/api/auth/login", json={"username": "county", "password": "wrong password"})
    async with api.pool.acquire() as conn:
        rows = await conn.fetch("SELECT operator, action, target, remote, at FROM audit_log"
                                " WHERE operator = 'county' ORDER BY id")
    actions = [(r["action"], r["target"]) for r in rows]
    assert ("track.read", "P-1") in actions and ("track.denied", "P-2") in actions
    assert ("alerts.list", None) in actions and ("alert.ack", "A-1") in actions
    assert ("alert.resolve", "A-1") in actions and ("auth.login_failed", None) in actions
    assert all(r["remote"] == "127.0.0.1" and r["at"] is not None for r in rows)
    # admin's order writes are audited too
    async with api.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'order.put'") == 2


async def test_login_rate_limited(make_api: Any) -> None:
    api = await make_api()
    await api.user("u", "viewer", "32")
    for _ in range(5):
        resp = await api.client.post("/api/auth/login", json={"username": "u", "password": "bad guess!"})
        assert resp.status == 401
    resp = await api.client.post("/api/auth/login",
                                 json={"username": "u", "password": "correct horse battery"})
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0


async def test_orders_and_zones_versioned_and_scoped(make_api: Any) -> None:
    api, tok = await seeded(make_api)
    h_city, h_county = bearer(tok["city"]), bearer(tok["county"])
    changed = {**ORDER, "rules": [{"id": "r1", "type": "exclusion", "zone": "Z-1", "buffer_m": 50}]}
    resp = await api.client.put("/api/orders/P-1", json=changed, headers=h_city)
    assert resp.status == 200 and (await resp.json())["version"] == 2
    resp = await api.client.put("/api/orders/P-1", json=changed, headers=h_city)
    assert (await resp.json())["changed"] is False
    assert (await api.client.put("/api/orders/P-1", json=changed, headers=h_county)).status == 403
    outside = {**ORDER, "person_id": "P-9", "jurisdiction": "330100"}
    assert (await api.client.put("/api/orders/P-9", json=outside, headers=h_city)).status == 403
    bad = {**ORDER, "jurisdiction": "12"}
    assert (await api.client.put("/api/orders/P-1", json=bad, headers=h_city)).status == 400
    hist = await (await api.client.get("/api/orders/P-1", headers=h_county)).json()
    assert [v["version"] for v in hist["versions"]] == [1, 2]
    zone = {"type": "Feature", "properties": {"name": "school", "jurisdiction": "320102"},
            "geometry": {"type": "Polygon", "coordinates": [[[118.78, 32.04], [118.80, 32.04],
                                                             [118.80, 32.06], [118.78, 32.04]]]}}
    resp = await api.client.put("/api/zones/Z-1", json=zone, headers=h_city)
    assert resp.status == 201, await resp.text()
    assert (await api.client.put("/api/zones/Z-1", json=zone, headers=h_county)).status == 403
    zones = await (await api.client.get("/api/zones", headers=h_county)).json()
    assert [z["zone_id"] for z in zones["zones"]] == ["Z-1"]
    other = await (await api.client.get("/api/zones", headers=bearer(tok["other"]))).json()
    assert other["zones"] == []
    async with api.pool.acquire() as conn:
        topics = [r["topic"] for r in await conn.fetch("SELECT topic FROM outbox ORDER BY id")]
    assert topics.count("wardstream.orders") == 3 and topics.count("wardstream.zones") == 1


async def test_risk_colour_and_jurisdiction_counts(make_api: Any) -> None:
    api, tok = await seeded(make_api)
    h = bearer(tok["admin"])
    persons = {p["person_id"]: p["risk"] for p in
               (await (await api.client.get("/api/persons", headers=h)).json())["persons"]}
    assert persons == {"P-1": "red", "P-2": "red"}
    await api.client.post("/api/alerts/A-2/resolve", json={"note": "visited"}, headers=h)
    persons = {p["person_id"]: p["risk"] for p in
               (await (await api.client.get("/api/persons", headers=h)).json())["persons"]}
    assert persons["P-2"] == "orange"  # a red alert within 72 h
    api.clock.advance(73 * 3600)
    h = bearer(await api.login("admin"))
    persons = {p["person_id"]: p["risk"] for p in
               (await (await api.client.get("/api/persons", headers=h)).json())["persons"]}
    assert persons == {"P-1": "red", "P-2": "blue"}  # P-1's tamper never clears by itself
    top = await (await api.client.get("/api/jurisdictions", headers=h)).json()
    assert top["level"] == "province" and [i["code"] for i in top["items"]] == ["32"]
    city = await (await api.client.get("/api/jurisdictions?prefix=32", headers=h)).json()
    assert city["level"] == "city" and city["items"][0]["alerts"]["red"] == 2
    county = await (await api.client.get("/api/jurisdictions?prefix=3201", headers=h)).json()
    assert [(i["code"], i["alerts"]["red"]) for i in county["items"]] == [("320102", 2), ("320104", 0)]
    mine = await (await api.client.get("/api/jurisdictions?prefix=32",
                                       headers=bearer(await api.login("county")))).json()
    assert mine["prefix"] == "320102"


async def test_text_postgres_cannot_hold_is_400_not_500(make_api: Any) -> None:
    api, tok = await seeded(make_api)
    h = {**bearer(tok["admin"]), "Content-Type": "application/json"}
    for raw in ('{"username": "a\\u0000b", "password": "x"}', '{"username": "\\ud800", "password": "x"}'):
        resp = await api.client.post("/api/auth/login", data=raw,
                                     headers={"Content-Type": "application/json"})
        assert resp.status == 400, raw
    resp = await api.client.post("/api/alerts/A-1/resolve", data='{"note": "bad\\u0000note"}', headers=h)
    assert resp.status == 400
    bad_order = '{"person_id": "P-1", "devices": ["WB-\\ud800"], "jurisdiction": "320102", "rules": []}'
    assert (await api.client.put("/api/orders/P-1", data=bad_order, headers=h)).status == 400
    resp = await api.client.get("/api/alerts", params={"person_id": "a\x00b"}, headers=h)
    assert resp.status == 400
