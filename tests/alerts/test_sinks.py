"""Sinks on the real embedded broker and the real PostgreSQL.

Idempotent replay of the alerts topic, nothing lost through a database
outage (a TCP proxy the test cuts and restores), and the track store fed from
the telemetry topic.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiokafka import AIOKafkaConsumer
from alerts_testkit import T0, TcpProxy, create_topic, produce, record, wait_for

from geofence.model import format_ts


def _records(n: int, prefix: str) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        aid = f"{prefix}-{i}"
        out.append(record("opened", alert_id=aid, person_id=f"P-{i % 7}", opened_at=T0 + i * 1000))
        if i % 3 == 0:
            out.append(record("cleared", alert_id=aid, person_id=f"P-{i % 7}", opened_at=T0 + i * 1000,
                              at=T0 + i * 1000 + 60_000, cleared_at=format_ts(T0 + i * 1000 + 60_000),
                              updated_at=format_ts(T0 + i * 1000 + 60_000), status="cleared"))
    return out


async def _store_state(pool: asyncpg.Pool) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    async with pool.acquire() as conn:
        alerts = [tuple(r) for r in await conn.fetch(
            "SELECT alert_id, status, cleared_at, lat, tier, acknowledged_at FROM alerts ORDER BY alert_id")]
        events = [tuple(r) for r in await conn.fetch(
            "SELECT alert_id, event, at, record FROM alert_events ORDER BY alert_id, event, at")]
    return alerts, events


async def test_replaying_the_alerts_topic_twice_changes_nothing(make_api: Any, kafka_bootstrap: str) -> None:
    topic, dead = f"alerts-{uuid.uuid4().hex[:8]}", f"dead-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, topic)
    recs = _records(40, "RP")
    payloads = [json.dumps(r).encode() for r in recs] + [b'{"event": "opened", "alert": 3}', b"not json"]
    await produce(kafka_bootstrap, topic, payloads, [r["alert"]["alert_id"] for r in recs] + ["x", "y"])
    api = await make_api(kafka=kafka_bootstrap, alerts_topic=topic, deadletter_topic=dead)

    async def events() -> Any:
        async with api.pool.acquire() as conn:
            return await conn.fetchval("SELECT count(*) FROM alert_events") == len(recs)

    await wait_for(events, 30)
    first = await _store_state(api.pool)
    assert len(first[0]) == 40
    # replay: a second consumer group on the same store reads the topic from the start, and
    # the whole topic is then published again on top
    from alerts.service import Service, ServiceOptions

    again = Service(api.service.settings, clock=api.clock,
                    options=ServiceOptions(run_escalator=False, run_retention=False,
                                           alerts_group=f"replay-{topic}", tracks_group=f"t-{topic}",
                                           alerts_topic=topic, deadletter_topic=dead,
                                           session_timeout_ms=6000, run_control_sink=False))
    await again.start()
    try:
        await produce(kafka_bootstrap, topic, payloads[:-2])
        await wait_for(lambda: _async(again.sinks[0].written >= 2 * len(payloads) - 2), 30)
        await wait_for(lambda: _async(api.service.sinks[0].written >= 2 * len(payloads) - 2), 30)
    finally:
        await again.stop()
    assert await _store_state(api.pool) == first
    # the two malformed records went to the dead-letter topic with a reason (once per group)
    consumer = AIOKafkaConsumer(dead, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        got = await consumer.getmany(timeout_ms=3000)
        letters = [json.loads(m.value) for part in got.values() for m in part]
    finally:
        await consumer.stop()
    assert {d["reason"] for d in letters} == {"invalid_alert_record"}
    assert len(letters) >= 2 and all(d["source"].startswith(topic + ":") for d in letters)


async def _async(value: Any) -> Any:
    return value


async def test_database_outage_loses_nothing(make_api: Any, kafka_bootstrap: str, database_url: str) -> None:
    parts = urlsplit(database_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    netloc = parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc
    proxied = urlunsplit((parts.scheme, f"{netloc}:{proxy.port}", parts.path, parts.query, ""))
    topic = f"alerts-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, topic)
    try:
        api = await make_api(kafka=kafka_bootstrap, database=proxied, alerts_topic=topic)
        sink = api.service.sinks[0]
        before = _records(10, "B")
        await produce(kafka_bootstrap, topic, [json.dumps(r).encode() for r in before],
                      [r["alert"]["alert_id"] for r in before])
        await wait_for(lambda: _async(sink.written >= len(before)), 30)
        assert (await api.client.get("/readyz")).status == 200

        proxy.cut()
        during = _records(30, "D")
        await produce(kafka_bootstrap, topic, [json.dumps(r).encode() for r in during],
                      [r["alert"]["alert_id"] for r in during])

        async def not_ready() -> bool:
            return (await api.client.get("/readyz")).status == 503 and not sink.db_up

        await wait_for(not_ready, 20)
        metrics = await (await api.client.get("/metrics")).text()
        assert 'wardstream_sink_db_up{sink="alerts"} 0.0' in metrics
        assert 'wardstream_sink_retries_total{sink="alerts"}' in metrics
        # nothing is committed while the database is away
        committed_during = await _committed(kafka_bootstrap, api.service.options.alerts_group, topic)
        assert sum(committed_during.values()) <= len(before)

        proxy.restore()

        async def caught_up() -> bool:
            return sink.db_up and sink.written >= len(before) + len(during)

        await wait_for(caught_up, 40)
        await wait_for(lambda: _ready(api), 10)
        conn = await asyncpg.connect(database_url, server_settings={
            "search_path": api.service.settings.database_schema})
        try:
            ids = {r["alert_id"] for r in await conn.fetch("SELECT alert_id FROM alerts")}
            n_events = await conn.fetchval("SELECT count(*) FROM alert_events")
        finally:
            await conn.close()
        assert ids == {r["alert"]["alert_id"] for r in before + during}
        assert n_events == len(before) + len(during)
        committed = await wait_for(lambda: _committed_total(
            kafka_bootstrap, api.service.options.alerts_group, topic, len(before) + len(during)), 15)
        assert committed
    finally:
        await proxy.stop()


async def _ready(api: Any) -> bool:
    return (await api.client.get("/readyz")).status == 200


async def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    from aiokafka import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        out = {}
        for p in consumer.partitions_for_topic(topic) or await _partitions(consumer, topic):
            value = await consumer.committed(TopicPartition(topic, p))
            if value is not None and value >= 0:
                out[p] = value
        return out
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    return set(((await consumer.topics()) and consumer.partitions_for_topic(topic)) or ())


async def _committed_total(bootstrap: str, group: str, topic: str, want: int) -> bool:
    return sum((await _committed(bootstrap, group, topic)).values()) == want


async def test_track_store_sinks_telemetry_and_serves_tracks(make_api: Any, kafka_bootstrap: str) -> None:
    topic = f"telemetry-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, topic)
    api = await make_api(kafka=kafka_bootstrap, telemetry_topic=topic)
    token = await api.user("admin", "admin", "")
    order = {"person_id": "P-1", "devices": ["WB-1", "WB-1b"], "jurisdiction": "320102",
             "rules": [{"id": "r5", "type": "signal_loss", "after_s": 900}]}
    h = {"Authorization": f"Bearer {token}"}
    assert (await api.client.put("/api/orders/P-1", json=order, headers=h)).status == 201
    single = {"kind": "fix", "device_id": "WB-1", "ts": T0 - 120_000, "lat": 32.05, "lon": 118.79}
    batch = [{"kind": "fix", "device_id": d, "ts": T0 - 60_000 + i * 1000, "lat": 32.0 + i / 1000,
              "lon": 118.8, "accuracy_m": 5} for i, d in enumerate(["WB-1", "WB-1b", "WB-9"])]
    event = {"kind": "device_event", "device_id": "WB-1", "ts": T0 - 1000, "event": "heartbeat"}
    old = {"kind": "fix", "device_id": "WB-1", "ts": T0 - 40 * 86_400_000, "lat": 1.0, "lon": 1.0}
    ws = await api.client.ws_connect(f"/api/live?token={token}")
    assert (await ws.receive_json(timeout=3))["type"] == "hello"
    api.service.invalidate_device_map()
    await produce(kafka_bootstrap, topic, [json.dumps(single).encode(), json.dumps(batch).encode(),
                                           json.dumps(event).encode(), json.dumps(old).encode(),
                                           b"{broken"])

    async def rows() -> Any:
        async with api.pool.acquire() as conn:
            return await conn.fetchval("SELECT count(*) FROM track_fixes") == 4

    await wait_for(rows, 30)
    resp = await api.client.get("/api/persons/P-1/track", headers=h,
                                params={"from": format_ts(T0 - 3_600_000), "to": format_ts(T0)})
    fixes = (await resp.json())["fixes"]
    assert [(f["device_id"], f["ts"]) for f in fixes] == [
        ("WB-1", format_ts(T0 - 120_000)), ("WB-1", format_ts(T0 - 60_000)),
        ("WB-1b", format_ts(T0 - 59_000))]  # WB-9 belongs to nobody; the 40-day-old fix expired
    # the live feed carried P-1's latest position (WB-9 has no person, so it is not shown)
    positions = None
    while positions is None:
        msg = await ws.receive_json(timeout=5)
        if msg.get("type") == "positions":
            positions = msg["items"]
    assert [(p["person_id"], p["device_id"], p["ts"]) for p in positions] == [
        ("P-1", "WB-1b", format_ts(T0 - 59_000))]
    await ws.close()


async def test_retention_drops_old_partitions(pool: asyncpg.Pool) -> None:
    from alerts.tracks import DAY_MS, TrackStore
    from geofence.model import Fix

    store = TrackStore(retention_days=3)
    async with pool.acquire() as conn:
        for day in range(3):
            await store.write(conn, [Fix(device_id="D", ts=T0 - day * DAY_MS, lat=1, lon=1)], T0)
        assert len(await store.partitions(conn)) == 3
        dropped = await store.drop_expired(conn, T0 + 2 * DAY_MS)
        assert len(dropped) == 2 and len(await store.partitions(conn)) == 1
        assert await conn.fetchval("SELECT count(*) FROM track_fixes") == 1


async def test_control_topics_feed_orders_and_zones(make_api: Any, kafka_bootstrap: str) -> None:
    api = await make_api(kafka=kafka_bootstrap)
    opts = api.service.options
    order = {"person_id": "P-5", "devices": ["WB-5"], "jurisdiction": "320102",
             "rules": [{"id": "r5", "type": "signal_loss", "after_s": 900}]}
    zone = {"type": "Feature", "id": "Z-5", "properties": {"jurisdiction": "320102", "radius_m": 80},
            "geometry": {"type": "Point", "coordinates": [118.79, 32.05]}}
    bad_zone = {"type": "Feature", "id": "Z-6", "properties": {},
                "geometry": {"type": "Point", "coordinates": [118.79, 32.05]}}  # no radius_m
    await produce(kafka_bootstrap, opts.orders_topic,
                  [json.dumps(order).encode(), json.dumps(order).encode(),
                   json.dumps({"person_id": "P-6", "devices": [], "jurisdiction": "x"}).encode()],
                  ["P-5", "P-5", "P-6"])
    await produce(kafka_bootstrap, opts.zones_topic,
                  [json.dumps(zone).encode(), json.dumps(bad_zone).encode()], ["Z-5", "Z-6"])

    async def stored() -> Any:
        async with api.pool.acquire() as conn:
            return (await conn.fetchval("SELECT count(*) FROM orders") == 1
                    and await conn.fetchval("SELECT count(*) FROM zones") == 1)

    await wait_for(stored, 30)
    # the tombstone ends the order (a new version with no body); devices stop mapping
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(opts.orders_topic, None, key=b"P-5")
    finally:
        await producer.stop()

    async def ended() -> Any:
        async with api.pool.acquire() as conn:
            return await conn.fetch("SELECT version, body IS NULL AS ended, created_by FROM orders"
                                    " ORDER BY version")

    rows = await wait_for(lambda: _len_is(ended, 2), 30)
    assert [(r["version"], r["ended"], r["created_by"]) for r in rows] == [
        (1, False, "kafka"), (2, True, "kafka")]
    async with api.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM orders WHERE person_id = 'P-6'") == 0
        assert await conn.fetchval("SELECT jurisdiction FROM persons WHERE person_id = 'P-5'") == "320102"
        assert [r["zone_id"] for r in await conn.fetch("SELECT zone_id FROM zones")] == ["Z-5"]


async def _len_is(fetch: Any, n: int) -> Any:
    rows = await fetch()
    return rows if len(rows) == n else None
