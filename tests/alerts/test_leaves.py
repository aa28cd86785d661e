"""Leave in the command centre: request, approval limits, cancellation, return, audit, orders."""

from __future__ import annotations

import json
from typing import Any

from alerts_testkit import T0, Api

from geofence.model import format_ts, parse_order

DAY = 86_400_000
ORDER: dict[str, Any] = {
    "person_id": "P-1", "devices": ["WB-1"], "jurisdiction": "320102",
    "rules": [{"id": "r1", "type": "exclusion", "zone": "Z-school-17", "buffer_m": 100},
              {"id": "r2", "type": "inclusion", "zone": "320102"},
              {"id": "r5", "type": "signal_loss", "after_s": 900}]}


def leave_body(start: int = T0 + DAY, days: float = 3, **extra: Any) -> dict[str, Any]:
    return {"from": format_ts(start), "until": format_ts(start + int(days * DAY)),
            "rules": ["r2"], "reason": "medical treatment in Shanghai", **extra}


async def _api(make_api: Any) -> tuple[Api, dict[str, str]]:
    api: Api = await make_api()
    # the tests move the clock by days: tokens that outlive them
    api.service.settings = api.service.settings.replace(token_ttl_s=60 * 86_400)
    tokens = {
        "chief": await api.user("chief", "supervisor", "320102"),
        "deputy": await api.user("deputy", "supervisor", "320102"),
        "li": await api.user("li", "operator", "320102"),
        "bureau": await api.user("bureau", "admin", "320102"),
        "other": await api.user("other", "supervisor", "320104"),
        "viewer": await api.user("viewer", "viewer", "320102"),
    }
    status, _ = await api.call("PUT", "/api/orders/P-1", tokens["chief"], ORDER)
    assert status == 201
    return api, tokens


async def _audit(api: Api, *actions: str) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    async with api.pool.acquire() as conn:
        rows = await conn.fetch("SELECT action, operator, target, detail FROM audit_log"
                                " WHERE action = ANY($1::text[]) ORDER BY id", list(actions))
    return [(r["action"], r["operator"], r["target"],
             json.loads(r["detail"]) if isinstance(r["detail"], str) else r["detail"])
            for r in rows]


async def _order(api: Api) -> tuple[int, dict[str, Any]]:
    async with api.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT version, body FROM orders WHERE person_id = 'P-1'"
                                  " ORDER BY version DESC LIMIT 1")
    return row["version"], row["body"]


async def _published(api: Api) -> list[dict[str, Any]]:
    """Order versions queued for the orders topic, in order."""
    async with api.pool.acquire() as conn:
        rows = await conn.fetch("SELECT topic, key, value FROM outbox ORDER BY id")
    assert {r["topic"] for r in rows} == {"wardstream.orders"}
    assert {r["key"] for r in rows} == {"P-1"}
    return [r["value"] for r in rows]


async def _request(api: Api, token: str, **kw: Any) -> dict[str, Any]:
    status, body = await api.call("POST", "/api/persons/P-1/leaves", token, leave_body(**kw))
    assert status == 201, body
    return dict(body["leave"])


async def test_request_approve_active_return_and_every_step_reaches_the_order(
        make_api: Any) -> None:
    api, tok = await _api(make_api)
    leave = await _request(api, tok["li"])
    assert (leave["state"], leave["level"], leave["requested_by"], leave["days"]) == (
        "requested", "office", "li", 3.0)
    assert leave["from"] == format_ts(T0 + DAY) and leave["rules"] == ["r2"]
    lid = leave["leave_id"]
    status, listed = await api.call("GET", "/api/leaves?state=requested", tok["viewer"])
    assert status == 200 and [x["leave_id"] for x in listed["leaves"]] == [lid]
    assert (await _order(api))[0] == 1  # a request alone changes no order

    status, body = await api.call("POST", f"/api/leaves/{lid}/approve", tok["chief"],
                                  {"note": "hospital letter seen"})
    assert status == 200, body
    assert body["order_version"] == 2 and body["leave"]["state"] == "approved"
    assert (body["leave"]["decided_by"], body["leave"]["level"]) == ("chief", "office")
    version, stored = await _order(api)
    assert version == 2
    order = parse_order(stored)
    (ex,) = order.exemptions
    assert (ex.id, ex.rules, ex.approved_by, ex.requested_by, ex.level) == (
        f"L-{lid}", ("r2",), "chief", "li", "office")
    assert (ex.from_ms(), ex.until_ms()) == (T0 + DAY, T0 + 4 * DAY)
    assert [r.id for r in order.rules] == ["r1", "r2", "r5"]  # the rules themselves stay
    published = await _published(api)
    assert len(published) == 2 and published[1] == stored  # the workers hear of it

    api.clock.advance(DAY / 1000 + 60)  # the leave has begun
    status, listed = await api.call("GET", "/api/persons/P-1/leaves?state=active", tok["viewer"])
    assert status == 200 and [x["state"] for x in listed["leaves"]] == ["active"]

    api.clock.advance(DAY / 1000)  # back a day and a half early
    back = api.clock()
    status, body = await api.call("POST", f"/api/leaves/{lid}/return", tok["li"],
                                  {"note": "reported at the office"})
    assert status == 200, body
    assert body["leave"]["state"] == "ended" and body["leave"]["returned_at"] == format_ts(back)
    assert body["order_version"] == 3
    (ex,) = parse_order((await _order(api))[1]).exemptions
    assert (ex.from_ms(), ex.until_ms(), ex.approved_by) == (T0 + DAY, back, "chief")
    assert len(await _published(api)) == 3

    api.clock.advance(10 * DAY / 1000)
    status, listed = await api.call("GET", "/api/leaves", tok["viewer"])
    assert [x["state"] for x in listed["leaves"]] == ["ended"]
    audit = await _audit(api, "leave.request", "leave.approve", "leave.return")
    assert [(a, who, target) for a, who, target, _ in audit] == [
        ("leave.request", "li", "P-1"), ("leave.approve", "chief", "P-1"),
        ("leave.return", "li", "P-1")]
    assert audit[1][3]["version"] == 2 and audit[1][3]["exemption"] == f"L-{lid}"
    assert audit[2][3]["version"] == 3


async def test_an_approved_leave_ends_by_the_clock(make_api: Any) -> None:
    api, tok = await _api(make_api)
    lid = (await _request(api, tok["li"], days=1))["leave_id"]
    assert (await api.call("POST", f"/api/leaves/{lid}/approve", tok["chief"]))[0] == 200
    for seconds, state in ((0, "approved"), (DAY / 1000, "active"), (DAY / 1000, "ended")):
        api.clock.advance(seconds)
        status, listed = await api.call("GET", f"/api/leaves?state={state}", tok["viewer"])
        assert status == 200 and [x["leave_id"] for x in listed["leaves"]] == [lid], state
    # back half a day late: the return is recorded, the order keeps the exemption's until
    api.clock.advance(DAY / 2000)
    status, body = await api.call("POST", f"/api/leaves/{lid}/return", tok["li"],
                                  {"note": "reported late"})
    assert status == 200 and body["order_version"] is None, body
    assert (body["leave"]["state"], body["leave"]["returned_at"]) == ("ended",
                                                                      format_ts(api.clock()))
    version, stored = await _order(api)
    assert version == 2 and parse_order(stored).exemptions[0].until_ms() == T0 + 2 * DAY
    status, body = await api.call("POST", f"/api/leaves/{lid}/return", tok["li"])
    assert status == 409 and body["error"] == "leave_state" and "was recorded" in body["detail"]
    assert [a for a, *_ in await _audit(api, "leave.return")] == ["leave.return"]
    # a leave still to come, or one never approved, has no return
    later = (await _request(api, tok["li"], start=api.clock() + DAY))["leave_id"]
    status, body = await api.call("POST", f"/api/leaves/{later}/return", tok["li"])
    assert status == 409 and "requested" in body["detail"]


async def test_who_may_approve_is_refused_with_403_and_audited(make_api: Any) -> None:
    api, tok = await _api(make_api)
    short = (await _request(api, tok["li"]))["leave_id"]
    long = (await _request(api, tok["li"], start=T0 + 10 * DAY, days=8))["leave_id"]
    own = (await _request(api, tok["deputy"], start=T0 + 30 * DAY, days=2))["leave_id"]
    refusals = [
        ("li", short, "needs supervisor"),  # an operator
        ("chief", long, "needs a county administrator"),  # 8 days > 7 for a supervisor
        ("other", short, "outside jurisdiction"),  # a supervisor of another county
        ("deputy", own, "may not decide it"),  # the requester
        ("viewer", short, "needs supervisor"),
    ]
    for who, lid, words in refusals:
        status, body = await api.call("POST", f"/api/leaves/{lid}/approve", tok[who])
        assert status == 403 and words in body["detail"], (who, body)
    status, body = await api.call("POST", f"/api/leaves/{own}/reject", tok["deputy"],
                                  {"note": "withdrawn"})
    assert status == 403 and "may not decide it" in body["detail"]
    denied = await _audit(api, "access.denied")
    assert [(who, target, d["route"]) for _, who, target, d in denied] == [
        ("li", str(short), "/api/leaves/{leave_id}/approve"),
        ("chief", str(long), "/api/leaves/{leave_id}/approve"),
        ("other", str(short), "/api/leaves/{leave_id}/approve"),
        ("deputy", str(own), "/api/leaves/{leave_id}/approve"),
        ("viewer", str(short), "/api/leaves/{leave_id}/approve"),
        ("deputy", str(own), "/api/leaves/{leave_id}/reject")]
    assert (await _order(api))[0] == 1 and await _audit(api, "leave.approve") == []
    status, listed = await api.call("GET", "/api/leaves?state=requested", tok["chief"])
    assert len(listed["leaves"]) == 3
    # who may: another supervisor for the short and the own one, an administrator for 8 days
    for who, lid, level in (("chief", short, "office"), ("chief", own, "office"),
                            ("bureau", long, "county")):
        status, body = await api.call("POST", f"/api/leaves/{lid}/approve", tok[who])
        assert status == 200 and body["leave"]["level"] == level, body
    exemptions = parse_order((await _order(api))[1]).exemptions
    assert sorted((e.id, e.level, e.approved_by) for e in exemptions) == sorted([
        (f"L-{short}", "office", "chief"), (f"L-{own}", "office", "chief"),
        (f"L-{long}", "county", "bureau")])
    assert (await _order(api))[0] == 4
    status, body = await api.call("POST", f"/api/leaves/{short}/approve", tok["bureau"])
    assert status == 409 and body["error"] == "leave_state"


async def test_the_office_limit_is_the_setting(make_api: Any) -> None:
    api, tok = await _api(make_api)
    lid = (await _request(api, tok["li"], days=8))["leave_id"]
    api.service.settings = api.service.settings.replace(leave_office_max_days=10)
    status, body = await api.call("POST", f"/api/leaves/{lid}/approve", tok["chief"])
    assert status == 200 and body["leave"]["level"] == "office"


async def test_a_request_is_checked_against_the_current_order(make_api: Any) -> None:
    api, tok = await _api(make_api)
    cases = [
        (leave_body(rules=["r9"]), "invalid_value", "'r9', which the order does not have"),
        (leave_body(rules=["r5"]), "invalid_value", "only exclusion, inclusion and curfew"),
        (leave_body(temporary_rules=[{"id": "r1", "type": "inclusion", "zone": "Z-h"}]),
         "duplicate_id", "already a rule of the order"),
        (leave_body(days=-1), "invalid_value", "not after"),
        (leave_body(start=T0 - 5 * DAY, days=1), "invalid_value", "has passed"),
        (leave_body(colour="red"), "unknown_field", "colour"),
        ({"from": format_ts(T0 + DAY), "rules": ["r2"], "reason": "x"}, "bad_request", "until"),
        (leave_body(until="tomorrow"), "invalid_timestamp", "until"),
    ]
    for body, reason, words in cases:
        status, answer = await api.call("POST", "/api/persons/P-1/leaves", tok["li"], body)
        assert status == 400 and answer["error"] == reason and words in answer["detail"], answer
    status, answer = await api.call("POST", "/api/persons/P-1/leaves", tok["viewer"], leave_body())
    assert status == 403 and "needs operator" in answer["detail"]
    status, answer = await api.call("POST", "/api/persons/P-1/leaves", tok["other"], leave_body())
    assert status == 403 and "outside jurisdiction" in answer["detail"]
    status, answer = await api.call("POST", "/api/persons/P-9/leaves", tok["li"], leave_body())
    assert status == 404
    status, answer = await api.call("GET", "/api/persons/P-1/leaves", tok["other"])
    assert status == 403
    async with api.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM leaves") == 0
    # a temporary rule the order does not have is fine, and ["*"] suspends every zone rule
    body = leave_body(rules=["*"], temporary_rules=[
        {"id": "t1", "type": "inclusion", "zone": "Z-hospital-3"}])
    status, answer = await api.call("POST", "/api/persons/P-1/leaves", tok["li"], body)
    assert status == 201 and answer["leave"]["temporary_rules"][0]["zone"] == "Z-hospital-3"


async def test_reject_and_cancel(make_api: Any) -> None:
    api, tok = await _api(make_api)
    first = (await _request(api, tok["li"]))["leave_id"]
    status, body = await api.call("POST", f"/api/leaves/{first}/reject", tok["chief"])
    assert status == 400 and "note" in body["detail"]
    status, body = await api.call("POST", f"/api/leaves/{first}/reject", tok["chief"],
                                  {"note": "no supporting letter"})
    assert status == 200 and body["leave"]["state"] == "rejected" and body["order_version"] is None
    assert body["leave"]["note"] == "no supporting letter"
    status, body = await api.call("POST", f"/api/leaves/{first}/approve", tok["chief"])
    assert status == 409 and "rejected" in body["detail"]

    second = (await _request(api, tok["li"]))["leave_id"]
    status, body = await api.call("POST", f"/api/leaves/{second}/cancel", tok["li"])
    assert status == 200 and body["leave"]["state"] == "cancelled"
    assert body["order_version"] is None and (await _order(api))[0] == 1

    third = (await _request(api, tok["li"]))["leave_id"]
    assert (await api.call("POST", f"/api/leaves/{third}/approve", tok["chief"]))[0] == 200
    assert len(parse_order((await _order(api))[1]).exemptions) == 1
    status, body = await api.call("POST", f"/api/leaves/{third}/cancel", tok["li"],
                                  {"note": "funeral postponed"})
    assert status == 200 and body["leave"]["state"] == "cancelled" and body["order_version"] == 3
    version, stored = await _order(api)
    assert version == 3 and "exemptions" not in stored
    assert (await _published(api))[-1] == stored

    fourth = (await _request(api, tok["li"]))["leave_id"]
    assert (await api.call("POST", f"/api/leaves/{fourth}/approve", tok["chief"]))[0] == 200
    api.clock.advance(DAY / 1000)
    status, body = await api.call("POST", f"/api/leaves/{fourth}/cancel", tok["li"])
    assert status == 409 and "record the return instead" in body["detail"]
    status, body = await api.call("POST", f"/api/leaves/{fourth}/cancel", tok["viewer"])
    assert status == 403
    status, body = await api.call("POST", "/api/leaves/999/approve", tok["chief"])
    assert status == 404
    actions = [(a, who) for a, who, _, _ in await _audit(api, "leave.reject", "leave.cancel")]
    assert actions == [("leave.reject", "chief"), ("leave.cancel", "li"), ("leave.cancel", "li")]


async def test_an_order_that_no_longer_admits_the_leave_refuses_approval(make_api: Any) -> None:
    api, tok = await _api(make_api)
    lid = (await _request(api, tok["li"]))["leave_id"]
    changed = {**ORDER, "rules": [r for r in ORDER["rules"] if r["id"] != "r2"]}
    assert (await api.call("PUT", "/api/orders/P-1", tok["chief"], changed))[0] == 200
    status, body = await api.call("POST", f"/api/leaves/{lid}/approve", tok["chief"])
    assert status == 400 and body["error"] == "invalid_value" and "'r2'" in body["detail"]
    status, listed = await api.call("GET", "/api/leaves", tok["chief"])
    assert listed["leaves"][0]["state"] == "requested"  # the refusal rolled the decision back
    assert (await _order(api))[0] == 2
