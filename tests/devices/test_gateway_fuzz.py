"""Hostile MQTT payloads and OsmAnd requests against a running gateway.

Hypothesis generates the inputs (deep nesting, oversized bodies, duplicates,
timestamps far in the past or future, NaN/Infinity, type confusion, bytes that
are not JSON); each one is refused and dead-lettered with a reason, nothing
reaches the telemetry topic, and the gateway still accepts a valid input
afterwards.  Runtime is bounded: a fixed number of examples, derandomized.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.gateway import Gateway
from tests.devices.mosquitto import Mosquitto
from tests.devices.test_gateway_integration import messages, read_topic
from tests.devices.test_gateway_resilience import broker, fix, gateway, publish

__all__ = ["broker", "gateway"]  # the fixtures this module reuses

NOW_MS = int(time.time() * 1000)
KNOWN = "mqtt-1"  # named by an active order: only invalid content may refuse it
YEAR_MS = 365 * 86_400_000

confusing = st.one_of(st.none(), st.booleans(), st.text(max_size=8),
                      st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3),
                                                                           st.integers(),
                                                                           max_size=2))


def _obj(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"kind": "fix", "device_id": KNOWN, "ts": NOW_MS - 1000,
                            "lat": 32.06, "lon": 118.79}
    base.update(fields)
    return base


def _deep(depth: int, brace: bool) -> bytes:
    if brace:
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b"[" * depth + b"]" * depth


def _non_finite(field: str, token: str) -> bytes:
    text = json.dumps(_obj(**{field: 0.5}))
    return text.replace(f'"{field}": 0.5', f'"{field}": {token}').encode()


mqtt_payloads = st.one_of(
    st.builds(_deep, st.integers(33, 20_000), st.booleans()),
    st.builds(lambda ahead: json.dumps(_obj(ts=NOW_MS + ahead)).encode(),
              st.integers(25 * 3_600_000, 1000 * YEAR_MS)),
    st.builds(lambda ts: json.dumps(_obj(ts=ts)).encode(), st.integers(-10 * YEAR_MS, -1)),
    st.builds(_non_finite, st.sampled_from(["lat", "lon", "ts"]),
              st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999"])),
    st.builds(lambda field, value: json.dumps(_obj(**{field: value})).encode(),
              st.sampled_from(["lat", "lon", "ts", "device_id", "kind"]), confusing),
    st.builds(lambda n: json.dumps([_obj(device_id="not-provisioned")] * n).encode(),
              st.integers(1, 50)),
    st.builds(lambda v: ('{"kind": "fix", "device_id": "mqtt-1", "ts": 1, "lat": 32.0, '
                         f'"lat": {json.dumps(v)}, "lon": 1.0}}').encode(), confusing),
    st.binary(min_size=1, max_size=200).filter(lambda b: not b.strip().startswith((b"{", b"["))),
)

osmand_queries = st.one_of(
    st.builds(lambda lat: f"id=osm-1&lat={lat}&lon=118.79",
              st.sampled_from(["NaN", "nan", "inf", "-Infinity", "1e999", "91", "abc", ""])),
    st.builds(lambda ts: f"id=osm-1&lat=32.0&lon=118.79&timestamp={ts}",
              st.sampled_from(["-1", "true", "soon", "2026-13-45T00:00:00Z", "1e400"])),
    st.builds(lambda ident: f"id={quote(ident)}&lat=32.0&lon=118.79",
              st.text(min_size=1, max_size=20).filter(lambda s: s != "osm-1")),
    st.just("lat=32.0&lon=118.79"),
)

osmand_bodies = st.one_of(
    st.builds(lambda d, b: b'{"device_id": "osm-1", "location": ' + _deep(d, b) + b"}",
              st.integers(33, 20_000), st.booleans()),
    st.builds(lambda v: json.dumps({"device_id": "osm-1", "location": v}).encode(), confusing),
    st.builds(lambda n: b"{" + b" " * n + b"}", st.integers(70_000, 200_000)),
    st.builds(lambda t: f'{{"id": "osm-1", "lat": {t}, "lon": 1}}'.encode(),
              st.sampled_from(["NaN", "Infinity", "-Infinity"])),
)


def _collect(strategy: st.SearchStrategy[Any], n: int) -> list[Any]:
    out: list[Any] = []

    @settings(max_examples=n, database=None, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def gather(value: Any) -> None:
        out.append(value)

    gather()
    return out


async def test_hostile_mqtt_payloads_are_dead_lettered_and_input_survives(
        gateway: Gateway, broker: Mosquitto, kafka_bootstrap: str):
    payloads = _collect(mqtt_payloads, 120)
    base = gateway.config.mqtt_topic.replace("#", "fuzz")
    await publish(broker.port, base, *[])  # connect once before the burst
    for i, p in enumerate(payloads):
        await publish(broker.port, f"{base}/{i}/{KNOWN}", p)
    await publish(broker.port, base.replace("fuzz", "devices/mqtt-1"), fix(KNOWN, NOW_MS, lat=32.5))
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: any(m.get("lat") == 32.5 for _, m in messages(rs)))
    assert [m["lat"] for _, m in messages(records)] == [32.5], "a hostile payload got through"
    wanted = {f"mqtt:{base}/{i}/{KNOWN}" for i in range(len(payloads))}

    def sources(rs: list[tuple[bytes | None, Any]]) -> set[str]:
        return {v["source"].split("[")[0] for _, v in rs if v.get("reason")}

    dead = await read_topic(kafka_bootstrap, gateway.config.deadletter_topic,
                            lambda rs: wanted <= sources(rs), timeout=30)
    missing = sorted(wanted - sources(dead))
    assert not missing, [payloads[int(s.split("/")[-2])][:80] for s in missing[:5]]
    assert all(v["reason"] and v["detail"] for _, v in dead)
    assert gateway.metrics.input_restarts.labels("mqtt")._value.get() == 0
    assert not any(v["reason"] == "internal_error" for _, v in dead)


async def test_hostile_osmand_requests_are_refused_and_dead_lettered(
        gateway: Gateway, kafka_bootstrap: str):
    from aiohttp import ClientSession

    queries = _collect(osmand_queries, 40)
    bodies = _collect(osmand_bodies, 30)
    base = f"http://127.0.0.1:{gateway.ports['osmand']}/"
    async with ClientSession() as http:
        for q in queries:
            async with http.get(f"{base}?{q}") as rsp:
                assert 400 <= rsp.status < 500, (q, rsp.status, await rsp.text())
        for b in bodies:
            async with http.post(base, data=b,
                                 headers={"Content-Type": "application/json"}) as rsp:
                assert 400 <= rsp.status < 500, (b[:80], rsp.status, await rsp.text())
        ts = int(time.time())
        async with http.get(f"{base}?id=osm-1&lat=32.5&lon=118.79&timestamp={ts}") as rsp:
            assert rsp.status == 200
    total = len(queries) + len(bodies)
    dead = await read_topic(kafka_bootstrap, gateway.config.deadletter_topic,
                            lambda rs: len(rs) >= total, timeout=30)
    assert len(dead) == total
    assert all(v["reason"] and v["detail"] and v["reason"] != "internal_error" for _, v in dead)
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: bool(messages(rs)))
    assert [m["lat"] for _, m in messages(records)] == [32.5]
