"""Check-ins in the command centre on the real PostgreSQL (and the embedded broker):
judged when stored, stored once, kept as long as tracks, served per person in scope,
audited, placed against the person's inclusion zones."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
from alerts_testkit import T0, create_topic, produce, wait_for

from alerts.checkins import CheckinStore, failures
from alerts.store import save_order
from alerts.tracks import DAY_MS
from geofence.checkin import checkin_verified
from geofence.model import CheckIn, format_ts

XUANWU = [[118.76, 32.03], [118.86, 32.03], [118.86, 32.10], [118.76, 32.10], [118.76, 32.03]]
INSIDE = (32.05, 118.79)  # kilometres from every edge of XUANWU
OUTSIDE = (31.93, 118.62)  # kilometres outside it
EDGE = (32.0302, 118.80)  # 22 m inside the southern edge: not certain at 50 m accuracy


def phone_order(person_id: str, phone: str, jurisdiction: str = "320102",
                min_score: float | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"id": "c1", "type": "checkin",
                            "windows": [{"days": "daily", "start": "08:00", "end": "10:00"}]}
    if min_score is not None:
        rule["min_score"] = min_score
    return {"person_id": person_id, "devices": [phone], "jurisdiction": jurisdiction,
            "rules": [{"id": "r1", "type": "inclusion", "zone": "Z-xuanwu"}, rule]}


def checkin(device: str, ts: int, where: tuple[float, float] = INSIDE, **kw: Any) -> CheckIn:
    return CheckIn(device_id=device, ts=ts, lat=where[0], lon=where[1], **kw)


def test_failures_explain_exactly_what_the_engine_refuses() -> None:
    assert failures(0.8, None, 0.8) == ()  # exactly the threshold passes
    assert failures(0.79, True, 0.8) == ("face_score",)
    assert failures(None, True, 0.8) == ()
    assert failures(0.95, False, 0.8) == ("action",)
    assert failures(None, None, 0.8) == ("no_result",)  # (the decoder refuses such a check-in)
    # the explanation is empty exactly when the engine's rule verifies the check-in
    for score in (None, 0.0, 0.5, 0.79999, 0.8, 0.80001, 1.0):
        for action in (None, True, False) if score is not None else (True, False):
            for threshold in (0.0, 0.8, 1.0):
                msg = CheckIn(device_id="PH", ts=T0, lat=32.0, lon=118.0, face_score=score,
                              action_ok=action)
                assert (failures(score, action, threshold) == ()) == checkin_verified(msg, threshold)


async def test_checkins_are_judged_when_stored_once_and_expire_with_tracks(pool: asyncpg.Pool) -> None:
    store = CheckinStore(retention_days=3)
    async with pool.acquire() as conn:
        await save_order(conn, phone_order("P-1", "PH-1"), "320102", None, None, ["PH-1"], T0, "t")
        await save_order(conn, phone_order("P-2", "PH-2", min_score=0.9), "320102", None, None,
                         ["PH-2"], T0, "t")
        plain = {"person_id": "P-3", "devices": ["PH-3"], "jurisdiction": "320102",
                 "rules": [{"id": "r5", "type": "signal_loss", "after_s": 900}]}
        await save_order(conn, plain, "320102", None, None, ["PH-3"], T0, "t")
        batch = [
            checkin("PH-1", T0 - 5000, face_score=0.93, action_ok=True, method="face_action",
                    request_id="P-1/c1/20261122/0"),
            checkin("PH-1", T0 - 4000, face_score=0.62, method="face"),  # someone else's face
            checkin("PH-1", T0 - 3000, action_ok=False, method="action"),  # failed liveness
            checkin("PH-2", T0 - 2000, face_score=0.85, method="face"),  # below this order's 0.9
            checkin("PH-3", T0 - 1000, face_score=0.99),  # no checkin rule: stored, not judged
            checkin("PH-9", T0 - 1000, face_score=0.99),  # a phone no order names
            checkin("PH-1", T0 - 3 * DAY_MS, face_score=0.9),  # older than the retention
        ]
        assert await store.write(conn, batch, T0) == 1
        # the same check-in again (a replayed batch) adds nothing and changes nothing
        again = [checkin("PH-1", T0 - 4000, face_score=0.99, method="face")]
        assert await store.write(conn, again, T0) == 0
        rows = await conn.fetch("SELECT device_id, ts, face_score, min_score, verified, request_id"
                                " FROM checkins ORDER BY ts, device_id")
        got = [(r["device_id"], int(r["ts"].timestamp() * 1000), r["face_score"], r["min_score"],
                r["verified"]) for r in rows]
        assert got == [("PH-1", T0 - 5000, 0.93, 0.8, True), ("PH-1", T0 - 4000, 0.62, 0.8, False),
                       ("PH-1", T0 - 3000, None, 0.8, False), ("PH-2", T0 - 2000, 0.85, 0.9, False),
                       ("PH-3", T0 - 1000, 0.99, None, None), ("PH-9", T0 - 1000, 0.99, None, None)]
        assert rows[0]["request_id"] == "P-1/c1/20261122/0"
        # days are partitions, dropped whole with the tracks' retention
        await store.write(conn, [checkin("PH-1", T0 - 2 * DAY_MS, face_score=0.9)], T0)
        assert len(await store.days.names(conn)) == 2
        dropped = await store.drop_expired(conn, T0 + DAY_MS)
        assert len(dropped) == 1 and len(await store.days.names(conn)) == 1
        assert await conn.fetchval("SELECT count(*) FROM checkins") == 6


async def _world(api: Any) -> dict[str, str]:
    tokens = {"admin": await api.user("admin", "admin", ""),
              "county": await api.user("county", "viewer", "320102"),
              "other": await api.user("other", "operator", "320104")}
    h = {"Authorization": f"Bearer {tokens['admin']}"}
    zone = {"type": "Feature", "properties": {"name": "玄武区", "jurisdiction": "320102"},
            "geometry": {"type": "Polygon", "coordinates": [XUANWU]}}
    assert (await api.client.put("/api/zones/Z-xuanwu", json=zone, headers=h)).status == 201
    for pid, phone, jur in (("P-1", "PH-1", "320102"), ("P-2", "PH-2", "320104")):
        resp = await api.client.put(f"/api/orders/{pid}", json=phone_order(pid, phone, jur), headers=h)
        assert resp.status == 201, await resp.text()
    return tokens


async def test_checkins_route_serves_judgement_and_placement_in_scope(make_api: Any) -> None:
    api = await make_api()
    tok = await _world(api)
    async with api.pool.acquire() as conn:
        await CheckinStore().write(conn, [
            checkin("PH-1", T0 - 7200_000, INSIDE, face_score=0.93, action_ok=True,
                    method="face_action", accuracy_m=25),
            checkin("PH-1", T0 - 3600_000, OUTSIDE, face_score=0.91, method="face"),
            checkin("PH-1", T0 - 1800_000, EDGE, face_score=0.4, action_ok=False,
                    method="face_action", accuracy_m=50, request_id="P-1/c1/20261122/1"),
            checkin("PH-2", T0 - 1800_000, INSIDE, face_score=0.93),
        ], api.clock())
    h = {"Authorization": f"Bearer {tok['county']}"}
    resp = await api.client.get("/api/persons/P-1/checkins", headers=h,
                                params={"from": format_ts(T0 - 86_400_000), "to": format_ts(T0)})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["person_id"] == "P-1" and body["to"] == format_ts(T0)
    seen = [(c["ts"], c["verified"], c["failures"], c["placement"], c["method"])
            for c in body["checkins"]]
    assert seen == [(format_ts(T0 - 7200_000), True, [], "inside", "face_action"),
                    (format_ts(T0 - 3600_000), True, [], "outside", "face"),
                    (format_ts(T0 - 1800_000), False, ["face_score", "action"], "uncertain",
                     "face_action")]
    last = body["checkins"][-1]
    assert (last["person_id"], last["device_id"], last["request_id"], last["min_score"],
            last["face_score"], last["action_ok"], last["accuracy_m"]) == (
        "P-1", "PH-1", "P-1/c1/20261122/1", 0.8, 0.4, False, 50)
    # the default span is the last 7 days before `to`; a span ending earlier holds nothing
    resp = await api.client.get("/api/persons/P-1/checkins", headers=h)
    assert len((await resp.json())["checkins"]) == 3
    resp = await api.client.get("/api/persons/P-1/checkins", headers=h,
                                params={"to": format_ts(T0 - 7200_000)})
    assert (await resp.json())["checkins"] == []

    # another county's person: 403 and a denial in the audit log; no token: 401
    resp = await api.client.get("/api/persons/P-2/checkins", headers=h)
    assert resp.status == 403 and (await resp.json())["error"] == "forbidden"
    assert (await api.client.get("/api/persons/P-1/checkins")).status == 401
    assert (await api.client.get("/api/persons/P-1/checkins",
                                 headers={"Authorization": "Bearer forged"})).status == 401
    other = {"Authorization": f"Bearer {tok['other']}"}
    assert (await api.client.get("/api/persons/P-1/checkins", headers=other)).status == 403
    resp = await api.client.get("/api/persons/P-2/checkins", headers=other)
    assert [c["device_id"] for c in (await resp.json())["checkins"]] == ["PH-2"]
    # unknown persons, reversed and too long spans, bad limits are precise client errors
    assert (await api.client.get("/api/persons/P-404/checkins", headers=h)).status == 404
    for params in ({"from": format_ts(T0), "to": format_ts(T0 - 1)},
                   {"from": format_ts(T0 - 40 * DAY_MS), "to": format_ts(T0)},
                   {"limit": "0"}, {"from": "yesterday"}):
        resp = await api.client.get("/api/persons/P-1/checkins", headers=h, params=params)
        assert resp.status == 400, params
    async with api.pool.acquire() as conn:
        rows = await conn.fetch("SELECT operator, action, target, detail FROM audit_log"
                                " WHERE action LIKE 'checkins.%' ORDER BY id")
    audit = [(r["operator"], r["action"], r["target"]) for r in rows]
    assert audit[0] == ("county", "checkins.read", "P-1")
    assert rows[0]["detail"]["checkins"] == 3
    assert ("county", "checkins.denied", "P-2") in audit and ("other", "checkins.denied", "P-1") in audit
    assert ("other", "checkins.read", "P-2") in audit


async def test_telemetry_sink_stores_checkins_beside_fixes_and_places_the_phone(make_api: Any, kafka_bootstrap: str) -> None:
    topic = f"telemetry-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, topic)
    api = await make_api(kafka=kafka_bootstrap, telemetry_topic=topic)
    tok = await _world(api)
    first = {"kind": "checkin", "device_id": "PH-1", "ts": format_ts(T0 - 60_000), "lat": INSIDE[0],
             "lon": INSIDE[1], "accuracy_m": 25, "face_score": 0.93, "action_ok": True,
             "method": "face_action", "request_id": None}
    impostor = {**first, "ts": T0 - 30_000, "face_score": 0.5, "action_ok": None, "method": "face"}
    fix = {"kind": "fix", "device_id": "PH-1", "ts": T0 - 45_000, "lat": 32.06, "lon": 118.8}
    await produce(kafka_bootstrap, topic, [json.dumps(first).encode(),
                                           json.dumps([fix, impostor]).encode(),
                                           json.dumps(first).encode()])  # the first one twice

    async def stored() -> Any:
        async with api.pool.acquire() as conn:
            return (await conn.fetchval("SELECT count(*) FROM checkins") == 2
                    and await conn.fetchval("SELECT count(*) FROM track_fixes") == 1
                    and api.service.sinks[1].written >= 3)

    await wait_for(stored, 30)
    h = {"Authorization": f"Bearer {tok['county']}"}
    body = await (await api.client.get("/api/persons/P-1/checkins", headers=h)).json()
    assert [(c["ts"], c["verified"], c["failures"]) for c in body["checkins"]] == [
        (format_ts(T0 - 60_000), True, []), (format_ts(T0 - 30_000), False, ["face_score"])]
    # the phone is on the map where it last checked in (the fix before it is older)
    async with api.pool.acquire() as conn:
        await api.service.tracks.flush_latest(conn)
    person = (await (await api.client.get("/api/persons/P-1", headers=h)).json())["person"]
    assert person["position"] == {"ts": format_ts(T0 - 30_000), "lat": INSIDE[0], "lon": INSIDE[1],
                                  "device_id": "PH-1"}
