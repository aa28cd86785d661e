"""``POST /checkin`` through a real gateway, real HTTP and the embedded Kafka broker.

Each test reads what reached the gateway's telemetry and dead-letter topics
with a plain consumer: an accepted check-in is in Kafka under its person's
partition key, every refusal has its status, reason and dead letter.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from devices.gateway import Gateway
from devices.provisioning import ProvisionedDevice, Provisioning, hash_secret
from devices.servers import ServerConfig
from geofence.model import format_ts, parse_orders, parse_ts
from tests.devices.gatewaykit import isolated_config, running
from tests.devices.test_gateway_integration import messages, read_topic

KEY_1 = "phone-1-key"
KEY_2 = "phone-2-key"
KEY_SPARE = "spare-phone-key"
ORDERS = parse_orders(json.dumps([
    {"person_id": "P-0900", "devices": ["PH-0900"], "jurisdiction": "320102",
     "rules": [{"id": "c1", "type": "checkin",
                "windows": [{"days": "daily", "start": "08:00", "end": "10:00"}]}]},
    {"person_id": "P-0901", "devices": ["PH-0901", "WB-0901"], "jurisdiction": "320102",
     "rules": []},
    {"person_id": "P-0902", "devices": ["PH-0902"], "jurisdiction": "320102", "rules": []},
]))
PROVISIONING = Provisioning({
    # a check-in-only phone, and a phone that also reports positions over OsmAnd
    "PH-0900": ProvisionedDevice("PH-0900", "checkin", secret_hash=hash_secret(KEY_1)),
    "PH-0901": ProvisionedDevice("PH-0901", "osmand", secret_hash=hash_secret(KEY_2)),
    # a wristband, provisioned for JT/T 808: no key can make it check in
    "WB-0901": ProvisionedDevice("WB-0901", "jt808"),
    # provisioned, but no order names it
    "PH-SPARE": ProvisionedDevice("PH-SPARE", "checkin", secret_hash=hash_secret(KEY_SPARE)),
})
"""PH-0902 is named by an order but never provisioned."""


@pytest.fixture
async def gateway(kafka_bootstrap: str, request: pytest.FixtureRequest) -> AsyncIterator[Gateway]:
    params: dict[str, Any] = getattr(request, "param", {})
    cfg = isolated_config(
        kafka_bootstrap, orders=ORDERS, secret=b"checkin", provisioning=PROVISIONING,
        server=ServerConfig(host="127.0.0.1", ports={}, rate_per_s=params.get("rate_per_s", 0.0),
                            rate_burst=params.get("rate_burst", 500)),
        topic_partitions=3)
    async with running(cfg) as gw:
        yield gw


def checkin(device: str = "PH-0900", ts_ms: int | None = None, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "device_id": device, "ts": format_ts(ts_ms if ts_ms is not None
                                             else int(time.time() * 1000) - 5_000),
        "lat": 32.05, "lon": 118.79, "accuracy_m": 25, "face_score": 0.93, "action_ok": True,
        "method": "face_action", "request_id": None}
    body.update(over)
    return body


async def post(http: ClientSession, gw: Gateway, body: Any, key: str | None = None,
               raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    url = f"http://127.0.0.1:{gw.ports['osmand']}/checkin"
    data = raw if raw is not None else json.dumps(body).encode()
    async with http.post(url, data=data, headers={**headers,
                                                  "Content-Type": "application/json"}) as rsp:
        return rsp.status, json.loads(await rsp.text())


async def test_accepted_checkins_reach_telemetry_under_the_persons_key(gateway: Gateway,
                                                                      kafka_bootstrap: str):
    t0 = int(time.time() * 1000) - 60_000
    async with ClientSession() as http:
        status, body = await post(http, gateway, checkin(ts_ms=t0), KEY_1)
        assert (status, body) == (200, {"accepted": 1})
        # `kind` may be given; a phone provisioned for osmand checks in with its key too
        status, body = await post(http, gateway, {"kind": "checkin", **checkin(
            "PH-0901", ts_ms=t0 + 1, face_score=None, action_ok=False, method="action",
            request_id="P-0901/c1/20261122/0")}, KEY_2)
        assert (status, body) == (200, {"accepted": 1})
        # a phone back in coverage sends what it kept: an array
        status, body = await post(http, gateway, [checkin(ts_ms=t0 + 2), checkin(ts_ms=t0 + 3)],
                                  KEY_1)
        assert (status, body) == (200, {"accepted": 2})
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: len(messages(rs)) >= 4)
    got = sorted((parse_ts(m["ts"]), key, m["kind"], m["device_id"], m.get("face_score"),
                  m.get("action_ok"), m.get("request_id")) for key, m in messages(records))
    assert got == [
        (t0, b"P-0900", "checkin", "PH-0900", 0.93, True, None),
        (t0 + 1, b"P-0901", "checkin", "PH-0901", None, False, "P-0901/c1/20261122/0"),
        (t0 + 2, b"P-0900", "checkin", "PH-0900", 0.93, True, None),
        (t0 + 3, b"P-0900", "checkin", "PH-0900", 0.93, True, None),
    ]
    assert gateway.metrics.frames.labels("checkin", "ok")._value.get() == 3


async def test_missing_or_wrong_key_is_401_and_dead_lettered(gateway: Gateway,
                                                            kafka_bootstrap: str):
    async with ClientSession() as http:
        assert (await post(http, gateway, checkin()))[0] == 401
        status, body = await post(http, gateway, checkin(), "guessed-key")
        assert (status, body["error"]) == (401, "bad_key")
        status, body = await post(http, gateway, checkin(), KEY_2.upper())
        assert status == 401
        url = f"http://127.0.0.1:{gateway.ports['osmand']}/checkin"
        async with http.post(url, json=checkin(), headers={"Authorization": f"Basic {KEY_1}"}
                             ) as rsp:  # not a bearer key
            assert rsp.status == 401 and rsp.headers["WWW-Authenticate"].startswith("Bearer")
    dead = await read_topic(kafka_bootstrap, gateway.config.deadletter_topic,
                            lambda rs: len(rs) >= 4)
    assert sorted(v["reason"] for _, v in dead) == ["bad_key", "bad_key", "missing_key",
                                                    "missing_key"]
    assert all(v["source"].startswith("checkin:") for _, v in dead)
    assert not any("guessed-key" in json.dumps(v) or KEY_1 in json.dumps(v) for _, v in dead)
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: False, timeout=1.0)
    assert messages(records) == []


async def test_device_not_the_keys_or_not_provisioned_is_403(gateway: Gateway,
                                                            kafka_bootstrap: str):
    async with ClientSession() as http:
        # the key verifies for its own phone ...
        assert (await post(http, gateway, checkin("PH-0900"), KEY_1))[0] == 200
        # ... and is then refused for another phone, a wristband and an unprovisioned phone
        status, body = await post(http, gateway, checkin("PH-0901"), KEY_1)
        assert (status, body["error"]) == (403, "device_mismatch")
        assert "'PH-0900'" in body["detail"] and "'PH-0901'" in body["detail"]
        status, body = await post(http, gateway, checkin("WB-0901"), KEY_1)
        assert (status, body["error"]) == (403, "not_provisioned")
        status, body = await post(http, gateway, checkin("PH-0902"), KEY_1)
        assert (status, body["error"]) == (403, "not_provisioned")
        # an array is refused whole when one member speaks for another phone
        status, body = await post(http, gateway, [checkin("PH-0900"), checkin("PH-0901")], KEY_1)
        assert (status, body["error"]) == (403, "device_mismatch")
        # provisioned with a good key, but named by no active order
        status, body = await post(http, gateway, checkin("PH-SPARE"), KEY_SPARE)
        assert (status, body["error"]) == (403, "unknown_device")
    dead = await read_topic(kafka_bootstrap, gateway.config.deadletter_topic,
                            lambda rs: len(rs) >= 5)
    assert sorted(v["reason"] for _, v in dead) == ["device_mismatch", "device_mismatch",
                                                    "not_provisioned", "not_provisioned",
                                                    "unknown_device"]
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: False, timeout=1.0)
    assert [m["device_id"] for _, m in messages(records)] == ["PH-0900"]


BAD_BODIES = [
    (b"{not json", "malformed_json"),
    (b"[]", "empty"),
    (b'"a check-in"', "wrong_type"),
    (b"[" * 40 + b"]" * 40, "too_deep"),
    (json.dumps(checkin(lat=91.0)).encode(), "out_of_range"),
    (json.dumps(checkin(face_score=1.5)).encode(), "out_of_range"),
    (json.dumps(checkin(method="fingerprint")).encode(), "invalid_value"),
    (json.dumps({k: v for k, v in checkin().items() if k != "ts"}).encode(), "missing_field"),
    # a check-in with no verification result at all
    (json.dumps(checkin(face_score=None, action_ok=None)).encode(), "missing_field"),
    (json.dumps({**checkin(), "kind": "fix"}).encode(), "wrong_kind"),
    (json.dumps(checkin(ts_ms=int(time.time() * 1000) + 3_600_000)).encode(),
     "future_timestamp"),
]


# ids by reason, not by body: the bodies carry the time they were made
@pytest.mark.parametrize(("raw", "reason"), BAD_BODIES,
                         ids=[f"{reason}-{i}" for i, (_, reason) in enumerate(BAD_BODIES)])
async def test_bad_body_is_400_with_its_reason_and_dead_lettered(gateway: Gateway,
                                                                kafka_bootstrap: str,
                                                                raw: bytes, reason: str):
    async with ClientSession() as http:
        status, body = await post(http, gateway, None, KEY_1, raw=raw)
    assert (status, body["error"]) == (400, reason), body
    assert body["detail"]
    dead = await read_topic(kafka_bootstrap, gateway.config.deadletter_topic,
                            lambda rs: len(rs) >= 1)
    assert [(v["reason"], v["detail"]) for _, v in dead] == [(reason, body["detail"])]
    assert dead[0][1]["source"].startswith("checkin:127.0.0.1")


async def test_good_members_of_an_array_are_kept_and_bad_ones_dead_lettered(
        gateway: Gateway, kafka_bootstrap: str):
    t0 = int(time.time() * 1000) - 10_000
    async with ClientSession() as http:
        status, body = await post(http, gateway, [checkin(ts_ms=t0), checkin(lon=200.0),
                                                  checkin(ts_ms=t0 + 1)], KEY_1)
    assert status == 200 and body["accepted"] == 2
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [(1, "out_of_range")]
    dead = await read_topic(kafka_bootstrap, gateway.config.deadletter_topic,
                            lambda rs: len(rs) >= 1)
    assert [v["reason"] for _, v in dead] == ["out_of_range"]
    assert json.loads(dead[0][1]["raw"])["lon"] == 200.0
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: len(messages(rs)) >= 2)
    assert sorted(parse_ts(m["ts"]) for _, m in messages(records)) == [t0, t0 + 1]


@pytest.mark.parametrize("gateway", [{"rate_per_s": 0.001, "rate_burst": 2}], indirect=True)
async def test_a_phone_over_its_rate_gets_429(gateway: Gateway, kafka_bootstrap: str):
    t0 = int(time.time() * 1000) - 10_000
    async with ClientSession() as http:
        answers = [(await post(http, gateway, checkin(ts_ms=t0 + i), KEY_1))[0]
                   for i in range(4)]
        # another phone has its own allowance
        other = (await post(http, gateway, checkin("PH-0901", ts_ms=t0), KEY_2))[0]
    assert answers == [200, 200, 429, 429] and other == 200
    dead = await read_topic(kafka_bootstrap, gateway.config.deadletter_topic,
                            lambda rs: len(rs) >= 1)
    assert [v["reason"] for _, v in dead] == ["rate_limited"]  # once per burst
    assert gateway.metrics.rate_limited.labels("checkin")._value.get() == 2


async def test_other_paths_still_reach_the_osmand_endpoint(gateway: Gateway):
    async with ClientSession() as http:
        base = f"http://127.0.0.1:{gateway.ports['osmand']}"
        async with http.get(f"{base}/checkin") as rsp:  # a check-in is a POST
            assert rsp.status == 405
        async with http.get(f"{base}/?id=PH-0901&lat=32.05&lon=118.79&key={KEY_2}") as rsp:
            assert rsp.status == 200


async def test_the_simulators_osmand_sink_posts_checkins_with_the_phones_key(
        gateway: Gateway, kafka_bootstrap: str, tmp_path: Path):
    from simulators.feed import Item, OsmandSink, merge_timed, read_timed

    t0 = int(time.time() * 1000) - 30_000
    timed = tmp_path / "checkins.jsonl"
    timed.write_text("".join(json.dumps({"deliver_ms": t0 + d, "message": {
        "kind": "checkin", "device_id": "PH-0900", "ts": t0 + d - 500, "lat": 32.05,
        "lon": 118.79, "face_score": 0.9}}) + "\n" for d in (1_000, 5_000)))
    fixes = [Item(b"", [{"kind": "fix", "device_id": "PH-0901", "ts": t0 + s, "lat": 32.0,
                         "lon": 118.7}]) for s in (0, 2_000, 4_000)]
    items = list(merge_timed(fixes, read_timed(str(timed))))
    # each check-in goes before the first fix later than its delivery
    assert [(m["kind"], m["ts"] - t0) for i in items for m in i.messages or []] == [
        ("fix", 0), ("checkin", 500), ("fix", 2_000), ("fix", 4_000), ("checkin", 4_500)]
    sink = OsmandSink(f"http://127.0.0.1:{gateway.ports['osmand']}/",
                      keys={"PH-0900": KEY_1, "PH-0901": KEY_2})
    await sink.start()
    try:
        for item in items:
            await sink.put(item)
        await sink.flush()
    finally:
        await sink.stop()
    assert sink.errors == 0
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: len(messages(rs)) >= 5)
    assert sorted((m["kind"], parse_ts(m["ts"]) - t0) for _, m in messages(records)) == [
        ("checkin", 500), ("checkin", 4_500), ("fix", 0), ("fix", 2_000), ("fix", 4_000)]
    assert gateway.metrics.frames.labels("checkin", "ok")._value.get() == 2


def test_wardstream_decode_reads_a_checkin_body():
    import subprocess
    import sys

    from tests.devices.test_devices_cli import ENV

    def decode(body: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "stream.cli", "decode", "--protocol",
                               "checkin", body], env=ENV, capture_output=True, text=True,
                              timeout=60)

    r = decode(json.dumps([checkin(ts_ms=1_795_305_600_000), checkin("PH-0901", action_ok=False)]))
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [(m["kind"], m["device_id"], m["action_ok"]) for m in lines] == [
        ("checkin", "PH-0900", True), ("checkin", "PH-0901", False)]
    assert lines[0]["ts"] == "2026-11-22T00:00:00Z"
    r = decode(json.dumps(checkin(face_score=None, action_ok=None)))
    assert r.returncode == 1 and "missing_field" in r.stderr and not r.stdout


@pytest.mark.parametrize("gateway", [{"rate_per_s": 0.001, "rate_burst": 2}], indirect=True)
async def test_an_osmand_phone_over_its_rate_gets_429_and_shares_its_allowance(
    gateway: Gateway, kafka_bootstrap: str,
):
    """The OsmAnd endpoint holds a device to the same per-device allowance:
    fixes beyond it are answered 429 and not published, and a check-in of the
    same phone draws on what its fixes left."""
    t0 = int(time.time() * 1000) - 10_000
    base = f"http://127.0.0.1:{gateway.ports['osmand']}"
    async with ClientSession() as http:
        answers = []
        for i in range(3):
            url = f"{base}/?id=PH-0901&lat=32.05&lon=118.79&timestamp={t0 + i}&key={KEY_2}"
            async with http.get(url) as rsp:
                answers.append((rsp.status, rsp.headers.get("Retry-After")))
        ck = (await post(http, gateway, checkin("PH-0901", ts_ms=t0 + 5), KEY_2))[0]
        other = (await post(http, gateway, checkin("PH-0900", ts_ms=t0), KEY_1))[0]
    assert answers == [(200, None), (200, None), (429, "1")] and ck == 429 and other == 200
    dead = await read_topic(kafka_bootstrap, gateway.config.deadletter_topic,
                            lambda rs: len(rs) >= 1)
    assert [v["reason"] for _, v in dead] == ["rate_limited"] and "'PH-0901'" in dead[0][1]["detail"]
    assert "key=***" in dead[0][1]["raw"] and KEY_2 not in dead[0][1]["raw"]
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: len(messages(rs)) >= 3)
    assert sorted((m["device_id"], parse_ts(m["ts"])) for _, m in messages(records)) == [
        ("PH-0900", t0), ("PH-0901", t0), ("PH-0901", t0 + 1)]
    assert gateway.metrics.rate_limited.labels("osmand")._value.get() == 1
