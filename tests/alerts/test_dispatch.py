"""Dispatch, note threads and response-time figures through the HTTP API."""

from __future__ import annotations

from typing import Any

from alerts_testkit import record

DISPATCH = "/api/alerts/A-1/dispatch"


async def test_dispatch_moves_forward_with_times_and_is_scoped(make_api: Any) -> None:
    api = await make_api()
    await api.apply(record("opened", alert_id="A-1", jurisdiction="320102"))
    op = await api.user("op", "operator", "3201")
    other = await api.user("other", "operator", "3202")
    viewer = await api.user("v", "viewer", "3201")
    for token in (other, viewer):  # outside the scope; below the operator role
        assert (await api.call("POST", DISPATCH, token, {"assignee": "li"}))[0] == 403
    assert (await api.call("POST", DISPATCH, op, {"assignee": ""}))[0] == 400
    assert await api.call("POST", f"{DISPATCH}/status", op, {"status": "en_route"}) == (
        409, {"error": "not_dispatched", "detail": "the alert has no dispatch"})
    status, made = await api.call("POST", DISPATCH, op, {"assignee": "li", "unit": "patrol-3"})
    assert status == 201, made
    api.clock.advance(60)
    assert (await api.call("POST", f"{DISPATCH}/status", op, {"status": "on_scene"}))[0] == 200
    status, err = await api.call("POST", f"{DISPATCH}/status", op, {"status": "en_route"})
    assert (status, err["error"]) == (409, "out_of_order")
    api.clock.advance(600)
    _, done = await api.call("POST", f"{DISPATCH}/status", op, {"status": "resolved"})
    assert done["status"] == "resolved" and done["en_route_at"] is None
    assert done["on_scene_at"] < done["resolved_at"]
    assert (await api.call("POST", DISPATCH, op, {"assignee": "wang"}))[0] == 409
    assert (await api.call("GET", DISPATCH, other))[0] == 403
    assert (await api.call("GET", "/api/alerts/nope/dispatch", op))[0] == 404


async def test_note_thread_in_order_and_audited(make_api: Any) -> None:
    api = await make_api()
    await api.apply(record("opened", alert_id="A-1", jurisdiction="320102"))
    op = await api.user("op", "operator", "3201")
    op2 = await api.user("op2", "operator", "320102")
    other = await api.user("other", "supervisor", "3202")
    notes = "/api/alerts/A-1/notes"
    assert (await api.call("POST", notes, op, {"body": "called the subject"}))[0] == 201
    api.clock.advance(5)
    assert (await api.call("POST", notes, op2, {"body": "officer on the way"}))[0] == 201
    assert (await api.call("POST", notes, other, {"body": "x"}))[0] == 403
    assert (await api.call("POST", notes, op, {"body": "x" * 4001}))[0] == 400
    _, got = await api.call("GET", DISPATCH, op)
    assert got["dispatch"] is None
    assert [(n["operator"], n["body"]) for n in got["notes"]] == [
        ("op", "called the subject"), ("op2", "officer on the way")]
    async with api.pool.acquire() as conn:
        assert await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'alert.note' AND target = 'A-1'") == 2


async def test_response_times_median_and_p90_per_severity_and_jurisdiction(make_api: Any) -> None:
    api = await make_api()
    sup = await api.user("sup", "supervisor", "32")
    # five red alerts acknowledged after 10, 20, 30, 40 and 100 s
    for i, wait_s in enumerate((10, 20, 30, 40, 100)):
        await api.apply(record("opened", alert_id=f"R-{i}", jurisdiction="320102"))
        api.clock.advance(wait_s)
        assert (await api.call("POST", f"/api/alerts/R-{i}/ack", sup))[0] == 200
    await api.apply(record("opened", alert_id="Y-1", severity="yellow", jurisdiction="320104"))
    await api.call("POST", "/api/alerts/R-0/dispatch", sup, {"assignee": "li"})
    api.clock.advance(300)
    await api.call("POST", "/api/alerts/R-0/dispatch/status", sup, {"status": "on_scene"})
    _, got = await api.call("GET", "/api/response-times", sup)
    by = {(g["severity"], g["jurisdiction"]): g for g in got["response_times"]}
    red = by[("red", "320102")]
    assert red["alerts"] == 5
    assert red["to_acknowledge"] == {"n": 5, "median_s": 30.0, "p90_s": 76.0}
    # R-0 was first seen 10+20+30+40+100 s before the dispatch, on scene 300 s later
    assert red["to_on_scene"]["n"] == 1 and red["to_on_scene"]["median_s"] == 500.0
    assert red["to_resolve"] == {"n": 0, "median_s": None, "p90_s": None}
    assert by[("yellow", "320104")]["to_acknowledge"]["n"] == 0
    county = await api.user("county", "operator", "320104")
    _, got = await api.call("GET", "/api/response-times", county)
    assert [g["jurisdiction"] for g in got["response_times"]] == ["320104"]
