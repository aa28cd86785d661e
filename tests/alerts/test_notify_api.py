"""Notification routes: roles, jurisdiction scope in SQL, audit, validation."""

from __future__ import annotations

from typing import Any

from alerts_testkit import auth, record

from alerts.notify import store
from alerts.notify.policy import Target


async def test_policies_are_for_supervisors_scoped_and_audited(make_api: Any) -> None:
    api = await make_api()
    city = await api.user("city", "supervisor", "3201")
    county = await api.user("county", "supervisor", "320102")
    other = await api.user("other", "supervisor", "3202")
    op = await api.user("op", "operator", "3201")
    c = api.client

    r = await c.post("/api/notify/policies", headers=auth(op),
                     json={"channel": "email", "recipient": "duty"})
    assert r.status == 403
    r = await c.post("/api/notify/policies", headers=auth(county),
                     json={"channel": "email", "recipient": "duty", "jurisdiction_prefix": "3201"})
    assert r.status == 403  # wider than the caller's scope
    r = await c.post("/api/notify/policies", headers=auth(city),
                     json={"channel": "sms", "recipient": "duty", "tier": "city",
                           "quiet_start": "22:00", "quiet_end": "06:00"})
    assert r.status == 201, await r.text()
    made = await r.json()
    assert made["jurisdiction_prefix"] == "3201" and made["quiet_start"] == "22:00"
    r = await c.post("/api/notify/policies", headers=auth(city),
                     json={"channel": "fax", "recipient": "duty"})
    assert r.status == 400 and "channel" in (await r.json())["detail"]

    assert len((await (await c.get("/api/notify/policies", headers=auth(city))).json())
               ["policies"]) == 1
    assert (await (await c.get("/api/notify/policies", headers=auth(other))).json()
            ) == {"policies": []}
    pid = made["policy_id"]
    assert (await c.delete(f"/api/notify/policies/{pid}", headers=auth(other))).status == 404
    assert (await c.delete(f"/api/notify/policies/{pid}", headers=auth(city))).status == 200
    assert (await c.delete(f"/api/notify/policies/{pid}", headers=auth(city))).status == 404

    async with api.pool.acquire() as conn:
        actions = [r["action"] for r in await conn.fetch(
            "SELECT action FROM audit_log WHERE action LIKE 'notify.%' ORDER BY id")]
    assert actions.count("notify.policy.add") == 1
    assert actions.count("notify.policy.delete") == 1
    assert actions.count("notify.policy.list") == 2


async def test_roster_shifts_validated_scoped_and_listed_by_time(make_api: Any) -> None:
    api = await make_api()
    city = await api.user("city", "supervisor", "3201")
    other = await api.user("other", "supervisor", "3202")
    c = api.client
    shift = {"jurisdiction": "320102", "officer": "li", "starts_at": "2026-11-22T08:00:00+08:00",
             "ends_at": "2026-11-22T20:00:00+08:00", "contacts": {"email": "li@x"}}
    r = await c.post("/api/notify/roster", headers=auth(city), json=shift)
    assert r.status == 201, await r.text()
    sid = (await r.json())["shift_id"]
    for bad in ({**shift, "ends_at": shift["starts_at"]}, {**shift, "contacts": {"pager": "1"}},
                {**shift, "starts_at": "noon"}, {**shift, "officer": ""}):
        assert (await c.post("/api/notify/roster", headers=auth(city), json=bad)).status == 400
    assert (await c.post("/api/notify/roster", headers=auth(other), json=shift)).status == 403
    got = await (await c.get("/api/notify/roster?since=2026-11-22T11:00:00Z",
                             headers=auth(city))).json()
    assert [s["officer"] for s in got["shifts"]] == ["li"]
    assert got["shifts"][0]["contacts"] == {"email": "li@x"}
    later = await (await c.get("/api/notify/roster?since=2026-11-23T00:00:00Z",
                               headers=auth(city))).json()
    assert later["shifts"] == []
    assert (await (await c.get("/api/notify/roster", headers=auth(other))).json())["shifts"] == []
    assert (await c.delete(f"/api/notify/roster/{sid}", headers=auth(other))).status == 404
    assert (await c.delete(f"/api/notify/roster/{sid}", headers=auth(city))).status == 200


async def test_delivery_log_shows_failures_in_scope(make_api: Any) -> None:
    api = await make_api()
    op = await api.user("op", "operator", "3201")
    other = await api.user("other", "operator", "3202")
    viewer = await api.user("v", "viewer", "3201")
    async with api.pool.acquire() as conn:
        t = Target("A-1", "opened", "li", "sms", "+86", 1)
        assert await store.claim(conn, t, "320102", "red")
        await store.finish(conn, t, False, 4, 12.5, "sms: HTTP 503")
        assert not await store.claim(conn, t, "320102", "red")  # given up: not paged again
    c = api.client
    got = await (await c.get("/api/notify/deliveries?status=failed", headers=auth(op))).json()
    assert [(d["alert_id"], d["status"], d["attempts"], d["error"]) for d in got["deliveries"]] == [
        ("A-1", "failed", 4, "sms: HTTP 503")]
    assert (await (await c.get("/api/notify/deliveries", headers=auth(other))).json()
            )["deliveries"] == []
    assert (await c.get("/api/notify/deliveries", headers=auth(viewer))).status == 403
    assert (await c.get("/api/notify/deliveries?status=lost", headers=auth(op))).status == 400


async def test_a_page_on_the_wire_at_a_stop_is_resent_on_every_channel_and_logged_so(
    make_api: Any,
) -> None:
    api = await make_api()
    op = await api.user("op", "operator", "3201")
    mail = Target("A-1", "opened", "li", "email", "li@x", 1)
    hook = Target("A-1", "opened", "li", "webhook", "http://h/", 2)
    retry = Target("A-1", "opened", "li", "sms", "+86", 3)
    late = Target("A-1", "opened", "li", "mqtt", "", 4)
    async with api.pool.acquire() as conn:
        for t in (mail, hook, retry, late):  # claimed and handed to the channel
            assert await store.claim(conn, t, "320102", "red") == "send"
        await store.handing(conn, retry, False)  # its attempt failed; it died before the retry
        await store.handing(conn, late, False)  # its attempt got no answer in time ...
        await store.handing(conn, late, True, repeat=True)  # ... and the retry is a repeat
        # the next notifier reads the record again: every page is sent again,
        # those that may have arrived already are marked resent
        assert await store.claim(conn, mail, "320102", "red") == "resend"
        assert await store.claim(conn, hook, "320102", "red") == "resend"
        assert await store.claim(conn, retry, "320102", "red") == "send"
        for t in (mail, hook, retry):
            await store.finish(conn, t, True, 1, 3.0, None)
            assert await store.claim(conn, t, "320102", "red") is None  # done: never again
    got = await (await api.client.get("/api/notify/deliveries?alert_id=A-1",
                                      headers=auth(op))).json()
    rows = {r["channel"]: (r["status"], r["resent"], r["handed_at"]) for r in got["deliveries"]}
    assert rows["email"] == rows["webhook"] == ("sent", True, None)
    assert rows["sms"] == ("sent", False, None)
    assert rows["mqtt"][:2] == ("sending", True) and rows["mqtt"][2] is not None
    got = await (await api.client.get("/api/notify/deliveries?resent=true&status=sent",
                                      headers=auth(op))).json()
    assert sorted(r["channel"] for r in got["deliveries"]) == ["email", "webhook"]
    for bad in ("status=unconfirmed", "resent=maybe"):
        assert (await api.client.get(f"/api/notify/deliveries?{bad}",
                                     headers=auth(op))).status == 400


async def test_every_notification_and_dispatch_route_is_scoped_and_audited(make_api: Any) -> None:
    api = await make_api()
    await api.apply(record("opened", alert_id="A-1", jurisdiction="320102"))
    sup = await api.user("sup", "supervisor", "3201")
    other = await api.user("other", "supervisor", "3202")
    shift = {"jurisdiction": "320102", "officer": "li", "starts_at": "2026-11-22T08:00:00Z",
             "ends_at": "2026-11-22T20:00:00Z", "contacts": {}}
    _, policy = await api.call("POST", "/api/notify/policies", sup,
                               {"channel": "email", "recipient": "duty"})
    _, made = await api.call("POST", "/api/notify/roster", sup, shift)
    calls: list[tuple[str, str, Any, str]] = [
        ("GET", "/api/notify/policies", None, "notify.policy.list"),
        ("GET", "/api/notify/roster", None, "notify.roster.list"),
        ("GET", "/api/notify/deliveries", None, "notify.deliveries.read"),
        ("POST", "/api/alerts/A-1/dispatch", {"assignee": "li"}, "alert.dispatch"),
        ("POST", "/api/alerts/A-1/dispatch/status", {"status": "on_scene"},
         "alert.dispatch.status"),
        ("GET", "/api/alerts/A-1/dispatch", None, "alert.dispatch.read"),
        ("POST", "/api/alerts/A-1/notes", {"body": "on my way"}, "alert.note"),
        ("GET", "/api/response-times", None, "alert.response_times.read"),
        ("DELETE", f"/api/notify/policies/{policy['policy_id']}", None, "notify.policy.delete"),
        ("DELETE", f"/api/notify/roster/{made['shift_id']}", None, "notify.roster.delete"),
    ]
    for method, path, body, _ in calls:  # outside the scope: refused, or nothing in it
        status, got = await api.call(method, path, other, body)
        assert status in (403, 404) or not any(got.values()), (method, path, status, got)
    async with api.pool.acquire() as conn:
        before = await conn.fetchval("SELECT max(id) FROM audit_log")
    for method, path, body, _ in calls:
        status, got = await api.call(method, path, sup, body)
        assert status in (200, 201), (method, path, status, got)
    async with api.pool.acquire() as conn:
        audited = [r["action"] for r in await conn.fetch(
            "SELECT action FROM audit_log WHERE id > $1 AND operator = 'sup' ORDER BY id", before)]
    assert audited == [action for *_, action in calls]
    async with api.pool.acquire() as conn:  # and the two additions made above
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action IN"
                                   " ('notify.policy.add', 'notify.roster.add')") == 2
