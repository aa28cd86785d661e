"""Dispatch, note threads and response-time figures through the HTTP API."""

from __future__ import annotations

from typing import Any

from alerts_testkit import auth, record


async def test_dispatch_moves_forward_with_times_and_is_scoped(make_api: Any) -> None:
    api = await make_api()
    await api.apply(record("opened", alert_id="A-1", jurisdiction="320102"))
    op = await api.user("op", "operator", "3201")
    other = await api.user("other", "operator", "3202")
    viewer = await api.user("v", "viewer", "3201")
    c = api.client
    url = "/api/alerts/A-1/dispatch"
    assert (await c.post(url, headers=auth(other), json={"assignee": "li"})).status == 403
    assert (await c.post(url, headers=auth(viewer), json={"assignee": "li"})).status == 403
    assert (await c.post(url, headers=auth(op), json={"assignee": ""})).status == 400
    r = await c.post(f"{url}/status", headers=auth(op), json={"status": "en_route"})
    assert r.status == 409 and (await r.json())["error"] == "not_dispatched"
    r = await c.post(url, headers=auth(op), json={"assignee": "li", "unit": "patrol-3"})
    assert r.status == 201, await r.text()
    api.clock.advance(60)
    assert (await c.post(f"{url}/status", headers=auth(op),
                         json={"status": "on_scene"})).status == 200
    r = await c.post(f"{url}/status", headers=auth(op), json={"status": "en_route"})
    assert r.status == 409 and (await r.json())["error"] == "out_of_order"
    api.clock.advance(600)
    done = await (await c.post(f"{url}/status", headers=auth(op),
                               json={"status": "resolved"})).json()
    assert done["status"] == "resolved" and done["en_route_at"] is None
    assert done["on_scene_at"] < done["resolved_at"]
    r = await c.post(url, headers=auth(op), json={"assignee": "wang"})
    assert r.status == 409
    assert (await c.get(url, headers=auth(other))).status == 403
    assert (await c.get("/api/alerts/nope/dispatch", headers=auth(op))).status == 404


async def test_note_thread_in_order_and_audited(make_api: Any) -> None:
    api = await make_api()
    await api.apply(record("opened", alert_id="A-1", jurisdiction="320102"))
    op = await api.user("op", "operator", "3201")
    op2 = await api.user("op2", "operator", "320102")
    other = await api.user("other", "supervisor", "3202")
    c = api.client
    assert (await c.post("/api/alerts/A-1/notes", headers=auth(op),
                         json={"body": "called the subject"})).status == 201
    api.clock.advance(5)
    assert (await c.post("/api/alerts/A-1/notes", headers=auth(op2),
                         json={"body": "officer on the way"})).status == 201
    assert (await c.post("/api/alerts/A-1/notes", headers=auth(other),
                         json={"body": "x"})).status == 403
    assert (await c.post("/api/alerts/A-1/notes", headers=auth(op),
                         json={"body": "x" * 4001})).status == 400
    got = await (await c.get("/api/alerts/A-1/dispatch", headers=auth(op))).json()
    assert got["dispatch"] is None
    assert [(n["operator"], n["body"]) for n in got["notes"]] == [
        ("op", "called the subject"), ("op2", "officer on the way")]
    async with api.pool.acquire() as conn:
        assert await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'alert.note' AND target = 'A-1'") == 2


async def test_response_times_median_and_p90_per_severity_and_jurisdiction(make_api: Any) -> None:
    api = await make_api()
    sup = await api.user("sup", "supervisor", "32")
    c = api.client
    # five red alerts acknowledged after 10, 20, 30, 40 and 100 s
    for i, wait_s in enumerate((10, 20, 30, 40, 100)):
        await api.apply(record("opened", alert_id=f"R-{i}", jurisdiction="320102"))
        api.clock.advance(wait_s)
        assert (await c.post(f"/api/alerts/R-{i}/ack", headers=auth(sup))).status == 200
    await api.apply(record("opened", alert_id="Y-1", severity="yellow", jurisdiction="320104"))
    await c.post("/api/alerts/R-0/dispatch", headers=auth(sup), json={"assignee": "li"})
    api.clock.advance(300)
    await c.post("/api/alerts/R-0/dispatch/status", headers=auth(sup), json={"status": "on_scene"})
    got = (await (await c.get("/api/response-times", headers=auth(sup))).json())["response_times"]
    by = {(g["severity"], g["jurisdiction"]): g for g in got}
    red = by[("red", "320102")]
    assert red["alerts"] == 5
    assert red["to_acknowledge"] == {"n": 5, "median_s": 30.0, "p90_s": 76.0}
    # R-0 was first seen 10+20+30+40+100 s before the dispatch, on scene 300 s later
    assert red["to_on_scene"]["n"] == 1 and red["to_on_scene"]["median_s"] == 500.0
    assert red["to_resolve"] == {"n": 0, "median_s": None, "p90_s": None}
    assert by[("yellow", "320104")]["to_acknowledge"]["n"] == 0
    county = await api.user("county", "operator", "320104")
    got = (await (await c.get("/api/response-times", headers=auth(county))).json())
    assert [g["jurisdiction"] for g in got["response_times"]] == ["320104"]
