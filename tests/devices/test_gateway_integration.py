"""The gateway end to end on the embedded broker (real Kafka protocol), Mosquitto and TCP.

Each test runs its own gateway on free ports with its own topic names, and
reads what reached Kafka with a plain consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devices import gt06, h02, jt808, watch
from devices.gateway import Gateway
from devices.provisioning import Provisioning, hash_secret, parse_networks
from devices.servers import ServerConfig
from devices.sessions import REGISTER_TERMINAL_REGISTERED
from geofence.model import parse_orders, parse_ts
from tests.devices.gatewaykit import isolated_config

PHONE = "013912344329"
PHONE2 = "013912340002"
STRANGER = "099999999999"
WATCH_ID = "8800000015"
UNPROVISIONED = "013912340003"  # named by an order, never provisioned
ORDERS = parse_orders(json.dumps([
    {"person_id": "P-1", "devices": [PHONE, WATCH_ID, "osm-1", "mqtt-1"],
     "jurisdiction": "320102", "rules": []},
    {"person_id": "P-2", "devices": [PHONE2, "864717003283581", "4210051415"],
     "jurisdiction": "320102", "rules": []},
    {"person_id": "P-3", "devices": [UNPROVISIONED], "jurisdiction": "320102", "rules": []},
]))
OSM_KEY = "osm-1-test-key"
PROVISIONING = Provisioning.parse([
    {"device_id": PHONE, "protocol": "jt808",
     "jt808": {"province": 32, "city": 100, "manufacturer": "WSTRM", "terminal_id": "0000001"}},
    {"device_id": PHONE2, "protocol": "jt808"},
    {"device_id": WATCH_ID, "protocol": "watch"},
    {"device_id": "864717003283581", "protocol": "gt06"},
    {"device_id": "4210051415", "protocol": "h02"},
    {"device_id": "osm-1", "protocol": "osmand", "secret_hash": hash_secret(OSM_KEY)},
    {"device_id": "mqtt-1", "protocol": "mqtt"},
    {"device_id": "013912347777", "protocol": "jt808"},  # its order arrives during a test
])
"""Every device of ORDERS (and one without an order yet), provisioned for its protocol."""


def mosquitto_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture
async def gateway(kafka_bootstrap: str, request: pytest.FixtureRequest) -> AsyncIterator[Gateway]:
    params: dict[str, Any] = getattr(request, "param", {})
    cfg = isolated_config(
        kafka_bootstrap, orders=ORDERS,
        server=ServerConfig(host="127.0.0.1", ports={"jt808": 0, "watch": 0, "gt06": 0, "h02": 0},
                            max_bad_frames=params.get("max_bad_frames", 10),
                            idle_timeout_s=params.get("idle_timeout_s", 300.0),
                            rate_per_s=params.get("rate_per_s", 0.0),
                            rate_burst=params.get("rate_burst", 500),
                            allow_networks=params.get("allow_networks", {}),
                            takeover_idle_s=params.get("takeover_idle_s", 120.0),
                            max_unread_bytes=params.get("max_unread_bytes", 256 * 1024)),
        secret=b"integration", provisioning=PROVISIONING,
        mqtt_url="mqtt://127.0.0.1:1883" if params.get("mqtt") else None, topic_partitions=3,
        max_queue=params.get("max_queue", 20_000), linger_ms=params.get("linger_ms", 5.0))
    gw = Gateway(cfg)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


async def read_topic(bootstrap: str, topic: str, until: Any, timeout: float = 20.0
                     ) -> list[tuple[bytes | None, Any]]:
    """(key, decoded JSON) of every record of ``topic`` until ``until(records)`` holds."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or {0}
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[tuple[bytes | None, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                out += [(r.key, json.loads(r.value)) for r in records]
            if until(out):
                return out
        return out
    finally:
        await consumer.stop()


def messages(records: list[tuple[bytes | None, Any]]) -> list[tuple[bytes | None, dict[str, Any]]]:
    out = []
    for key, value in records:
        for m in value if isinstance(value, list) else [value]:
            out.append((key, m))
    return out


class Jt808Client:
    """A terminal speaking JT/T 808 over TCP, built on devices.jt808's encoders."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, phone: str):
        self.reader, self.writer, self.phone, self.serial = reader, writer, phone, 0
        self.buffer = b""

    @classmethod
    async def connect(cls, port: int, phone: str) -> Jt808Client:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        return cls(r, w, phone)

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial

    async def reply(self, timeout: float = 10.0) -> jt808.Message:
        while True:
            if self.buffer.count(b"\x7e") >= 2:
                start = self.buffer.index(b"\x7e")
                end = self.buffer.index(b"\x7e", start + 1)
                frame, self.buffer = self.buffer[start:end + 1], self.buffer[end + 1:]
                return jt808.parse_frame(frame)
            data = await asyncio.wait_for(self.reader.read(4096), timeout)
            if not data:
                raise ConnectionError("closed by the gateway")
            self.buffer += data

    async def login(self, version: int = 2013) -> None:
        self.writer.write(jt808.encode_register(self.phone, self.next_serial(), version=version))
        msg = await self.reply()
        _, result, code = jt808.decode_register_response(msg.body)
        assert result == 0
        self.writer.write(jt808.encode_auth(self.phone, self.next_serial(), code, version=version))
        msg = await self.reply()
        assert jt808.decode_general_response(msg.body)[2] == 0

    def close(self) -> None:
        self.writer.close()


def general(msg: jt808.Message) -> tuple[int, int, int]:
    assert msg.header.msg_id == jt808.MSG_PLATFORM_RESPONSE
    return jt808.decode_general_response(msg.body)


async def test_jt808_register_auth_locations_and_backfill(gateway: Gateway, kafka_bootstrap: str):
    client = await Jt808Client.connect(gateway.ports["jt808"], PHONE)
    await client.login(version=2019)
    t0 = int(time.time()) * 1000 - 60_000
    frames = [jt808.encode_location(PHONE, client.next_serial(), t0 + i * 1000, 32.05 + i / 1e4,
                                    118.79, version=2019, battery_pct=80) for i in range(3)]
    # the first frame split in two writes, the other two in one write
    client.writer.write(frames[0][:9])
    await client.writer.drain()
    await asyncio.sleep(0.05)
    client.writer.write(frames[0][9:] + frames[1] + frames[2])
    backfill_ts = [t0 - 3_600_000 + i * 60_000 for i in range(5)]  # an hour-old offline stretch
    items = [{"ts_ms": ts, "lat": 32.0, "lon": 118.7 + i / 1e3} for i, ts in enumerate(backfill_ts)]
    batch_serial = client.next_serial()
    client.writer.write(jt808.encode_batch(PHONE, batch_serial, items, version=2019))
    acks = [general(await client.reply()) for _ in range(4)]
    assert [(a[1], a[2]) for a in acks] == [(0x0200, 0)] * 3 + [(0x0704, 0)]
    assert acks[-1][0] == batch_serial
    client.writer.write(jt808.encode_heartbeat(PHONE, client.next_serial(), version=2019))
    assert general(await client.reply())[1:] == (0x0002, 0)
    client.close()

    want = {t0, t0 + 1000, t0 + 2000, *backfill_ts}
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: {parse_ts(m["ts"]) for _, m in messages(rs)
                                           if m["kind"] == "fix"} >= want)
    got = messages(records)
    fixes = [m for _, m in got if m["kind"] == "fix"]
    assert {parse_ts(m["ts"]) for m in fixes} == want
    assert all(m["device_id"] == PHONE for _, m in got)
    assert {key for key, _ in got} == {b"P-1"}
    assert all(isinstance(m["ts"], str) and m["ts"].endswith("Z") for _, m in got)
    assert any(m.get("event") == "heartbeat" for _, m in got)
    assert {m["battery_pct"] for m in fixes if parse_ts(m["ts"]) >= t0} == {80.0}


async def test_unknown_device_goes_only_to_dead_letter(gateway: Gateway, kafka_bootstrap: str):
    stranger = await Jt808Client.connect(gateway.ports["jt808"], STRANGER)
    stranger.writer.write(jt808.encode_register(STRANGER, 1))
    msg = await stranger.reply()
    assert jt808.decode_register_response(msg.body)[1] == jt808.REGISTER_NO_SUCH_TERMINAL
    now = int(time.time() * 1000)
    stranger.writer.write(jt808.encode_location(STRANGER, 2, now, 32.0, 118.0))
    assert general(await stranger.reply())[2] == jt808.RESULT_FAILURE
    stranger.close()
    # a known device afterwards: once its fix is on the topic, the stranger's would be too
    known = await Jt808Client.connect(gateway.ports["jt808"], PHONE2)
    await known.login()
    known.writer.write(jt808.encode_location(PHONE2, known.next_serial(), now, 32.1, 118.1))
    assert general(await known.reply())[2] == 0
    known.close()
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: any(m["device_id"] == PHONE2 for _, m in messages(rs)))
    devices = {m["device_id"] for _, m in messages(records)}
    assert PHONE2 in devices and STRANGER not in devices
    dead = await read_topic(kafka_bootstrap, gateway.config.deadletter_topic,
                            lambda rs: sum(v["reason"] == "unknown_device" for _, v in rs) >= 2)
    unknown = [v for _, v in dead if v["reason"] == "unknown_device"]
    assert len(unknown) >= 2 and all(STRANGER in v["detail"] for v in unknown)
    assert any(STRANGER in v["raw"] for v in unknown)  # the decoded fix, kept for replay
    assert all(v["source"].startswith("jt808:127.0.0.1:") for v in unknown)


@pytest.mark.parametrize("gateway", [{"mqtt": True}], indirect=True)
async def test_mqtt_message_reaches_telemetry(gateway: Gateway, kafka_bootstrap: str):
    if not mosquitto_up():
        pytest.fail("Mosquitto is not running on 127.0.0.1:1883 (this machine provides it)")
    await asyncio.wait_for(gateway.mqtt_connected.wait(), 10)
    ts = int(time.time() * 1000) - 1000
    payload = json.dumps([
        {"kind": "fix", "device_id": "mqtt-1", "ts": ts, "lat": 32.06, "lon": 118.79},
        {"kind": "fix", "device_id": "mqtt-unknown", "ts": ts, "lat": 32.06, "lon": 118.79},
        {"kind": "fix", "device_id": "mqtt-1", "ts": ts, "lat": 95.0, "lon": 118.79},
    ])
    topic = gateway.config.mqtt_topic.replace("#", "devices/mqtt-1")
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        await client.publish(topic, payload, qos=1)
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: bool(messages(rs)))
    got = [m for _, m in messages(records)]
    assert [(m["device_id"], parse_ts(m["ts"])) for m in got] == [("mqtt-1", ts)]
    dead = await read_topic(kafka_bootstrap, gateway.config.deadletter_topic,
                            lambda rs: len(rs) >= 2)
    # the payload names a device other than the topic's: refused before any order lookup
    assert sorted(v["reason"] for _, v in dead) == ["device_mismatch", "out_of_range"]


@pytest.mark.parametrize("gateway", [{"max_bad_frames": 5, "idle_timeout_s": 1.5}], indirect=True)
async def test_garbage_flood_is_closed_while_good_device_works(gateway: Gateway,
                                                               kafka_bootstrap: str):
    good = await Jt808Client.connect(gateway.ports["jt808"], PHONE)
    await good.login()
    r, w = await asyncio.open_connection("127.0.0.1", gateway.ports["jt808"])
    closed = False
    for _ in range(200):
        try:
            w.write(b"\x7e\x01\x02\x03\x04\x7e" + b"noise" * 10)
            await w.drain()
        except ConnectionError:
            closed = True
            break
        if r.at_eof():
            closed = True
            break
        await asyncio.sleep(0.01)
    data = await asyncio.wait_for(r.read(), 5)
    assert data == b"" and (closed or r.at_eof())
    assert gateway.metrics.connections_closed.labels("jt808", "bad_frames")._value.get() == 1
    # an unknown device that keeps sending is closed too (bounding its dead letters)
    stranger = await Jt808Client.connect(gateway.ports["jt808"], STRANGER)
    for serial in range(20):
        try:
            stranger.writer.write(jt808.encode_location(STRANGER, serial, int(time.time() * 1000),
                                                        32.0, 118.0))
            await stranger.writer.drain()
        except ConnectionError:
            break
        await asyncio.sleep(0.01)
    refused = gateway.metrics.connections_closed.labels("jt808", "refused")
    for _ in range(100):
        if refused._value.get() == 1:
            break
        await asyncio.sleep(0.05)
    assert refused._value.get() == 1
    stranger.close()
    now = int(time.time() * 1000)
    good.writer.write(jt808.encode_location(PHONE, good.next_serial(), now, 32.0, 118.0))
    assert general(await good.reply())[2] == 0
    # a silent connection is closed by the idle timeout
    r2, w2 = await asyncio.open_connection("127.0.0.1", gateway.ports["jt808"])
    assert await asyncio.wait_for(r2.read(), 10) == b""
    w2.close()
    good.close()


async def test_osmand_http(gateway: Gateway, kafka_bootstrap: str):
    from aiohttp import ClientSession

    base = f"http://127.0.0.1:{gateway.ports['osmand']}"
    ts = int(time.time())
    async with ClientSession() as http:
        async with http.get(f"{base}/?id=osm-1&lat=32.05&lon=118.79&timestamp={ts}&batt=50&key={OSM_KEY}") as rsp:
            assert rsp.status == 200
        async with http.get(f"{base}/?id=osm-x&lat=32.05&lon=118.79&timestamp={ts}") as rsp:
            assert rsp.status == 401  # no key: refused before the device is looked up
        async with http.get(f"{base}/?id=osm-1&lat=99&lon=118.79&key={OSM_KEY}") as rsp:
            assert rsp.status == 400
        body = {"device_id": "osm-1", "location": {"timestamp": "2026-01-01T00:00:00Z", "coords":
                {"latitude": 32.0, "longitude": 118.0, "accuracy": 7}}}
        async with http.post(f"{base}/?key={OSM_KEY}", json=body) as rsp:
            assert rsp.status == 200
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: len(messages(rs)) >= 2)
    got = sorted(parse_ts(m["ts"]) for _, m in messages(records))
    assert got == [parse_ts("2026-01-01T00:00:00Z"), ts * 1000]


async def test_pursuit_command_reaches_jt808_and_watch(gateway: Gateway, kafka_bootstrap: str):
    await asyncio.wait_for(gateway.commands_ready.wait(), 20)
    client = await Jt808Client.connect(gateway.ports["jt808"], PHONE)
    await client.login()
    wr, ww = await asyncio.open_connection("127.0.0.1", gateway.ports["watch"])
    ww.write(b"[3G*8800000015*0002*LK]")
    assert await asyncio.wait_for(wr.readuntil(b"]"), 10) == b"[3G*8800000015*0002*LK]"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for dev in (PHONE, WATCH_ID, "not-connected"):
            await producer.send_and_wait(gateway.config.commands_topic, json.dumps(
                {"device_id": dev, "command": "pursuit", "interval_s": 15, "alert_id": "a1",
                 "at": "2026-11-22T14:03:30Z"}).encode(), key=dev.encode())
    finally:
        await producer.stop()
    msg = await client.reply(timeout=20)
    assert msg.header.msg_id == 0x8103
    assert jt808.decode_set_params(msg.body) == {0x0029: (15).to_bytes(4, "big")}
    assert await asyncio.wait_for(wr.readuntil(b"]"), 20) == watch.encode_upload_interval(
        "3G", WATCH_ID, 15)
    client.close()
    ww.close()
    assert gateway.metrics.commands.labels("not_connected")._value.get() == 1


@pytest.mark.parametrize("gateway", [{"max_queue": 4, "linger_ms": 100}], indirect=True)
async def test_backpressure_pauses_reading_and_loses_nothing(gateway: Gateway,
                                                             kafka_bootstrap: str):
    client = await Jt808Client.connect(gateway.ports["jt808"], PHONE)
    await client.login()
    t0 = int(time.time()) * 1000 - 100_000
    n = 40
    for i in range(n):  # one write per frame: the gateway sees them across many reads
        client.writer.write(jt808.encode_location(PHONE, client.next_serial(), t0 + i * 1000,
                                                  32.0, 118.0))
        await client.writer.drain()
    acks = [general(await client.reply(timeout=30)) for _ in range(n)]
    assert all(a[2] == 0 for a in acks) and [a[0] for a in acks] == sorted(a[0] for a in acks)
    assert gateway.metrics.pauses._value.get() >= 1
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: len(messages(rs)) >= n)
    assert sorted(parse_ts(m["ts"]) for _, m in messages(records)) == [t0 + i * 1000
                                                                      for i in range(n)]
    client.close()


async def test_gt06_and_h02_servers(gateway: Gateway, kafka_bootstrap: str):
    ts = int(time.time()) * 1000 - 5000
    r, w = await asyncio.open_connection("127.0.0.1", gateway.ports["gt06"])
    w.write(gt06.encode_location(ts, 32.0, 118.0, 1))  # before login: refused
    w.write(gt06.encode_login("864717003283581", 2))
    login_ack = await asyncio.wait_for(r.readexactly(10), 10)
    assert gt06.parse_frame(login_ack).protocol == gt06.MSG_LOGIN
    w.write(gt06.encode_location(ts + 1000, 32.0, 118.0, 3)[:7])
    await w.drain()
    w.write(gt06.encode_location(ts + 1000, 32.0, 118.0, 3)[7:])
    _hr, hw = await asyncio.open_connection("127.0.0.1", gateway.ports["h02"])
    hw.write(h02.encode_position("4210051415", ts + 2000, 32.0, 118.0) + b"\r\n")
    await hw.drain()
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: len(messages(rs)) >= 2)
    got = sorted((m["device_id"], parse_ts(m["ts"])) for _, m in messages(records))
    assert got == [("4210051415", ts + 2000), ("864717003283581", ts + 1000)]
    dead = await read_topic(kafka_bootstrap, gateway.config.deadletter_topic, lambda rs: bool(rs))
    assert [v["reason"] for _, v in dead] == ["not_authenticated"]
    w.close()
    hw.close()


async def test_orders_topic_admits_and_removes_devices(gateway: Gateway, kafka_bootstrap: str):
    await asyncio.wait_for(gateway.orders_ready.wait(), 20)
    newcomer = "013912347777"
    assert not gateway.registry.is_accepted(newcomer, int(time.time() * 1000))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        order = {"person_id": "P-77", "devices": [newcomer], "jurisdiction": "320102", "rules": []}
        await producer.send_and_wait(gateway.config.orders_topic, json.dumps(order).encode(),
                                     key=b"P-77")
        for _ in range(100):
            if gateway.registry.is_accepted(newcomer, int(time.time() * 1000)):
                break
            await asyncio.sleep(0.1)
        client = await Jt808Client.connect(gateway.ports["jt808"], newcomer)
        await client.login()  # registration now succeeds
        client.close()
        assert gateway.registry.key_of(newcomer) == "P-77"
        await producer.send_and_wait(gateway.config.orders_topic, None, key=b"P-77")
        for _ in range(100):
            if not gateway.registry.is_accepted(newcomer, int(time.time() * 1000)):
                break
            await asyncio.sleep(0.1)
        assert not gateway.registry.is_accepted(newcomer, int(time.time() * 1000))
    finally:
        await producer.stop()


@pytest.mark.parametrize("gateway", [{"linger_ms": 1500}], indirect=True)
async def test_acknowledgement_waits_for_kafka(gateway: Gateway, kafka_bootstrap: str):
    """With a 1.5 s linger the ack cannot come sooner, and once it came the fix is in Kafka."""
    client = await Jt808Client.connect(gateway.ports["jt808"], PHONE)
    await client.login()
    ts = int(time.time()) * 1000
    sent = time.monotonic()
    client.writer.write(jt808.encode_location(PHONE, client.next_serial(), ts, 32.0, 118.0))
    assert general(await client.reply())[2] == 0
    assert time.monotonic() - sent >= 1.4
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: bool(rs), timeout=2.0)
    assert [parse_ts(m["ts"]) for _, m in messages(records)] == [ts]
    client.close()


@pytest.mark.parametrize("gateway", [{"linger_ms": 1500}], indirect=True)
async def test_coalesced_acks_wait_for_kafka(gateway: Gateway, kafka_bootstrap: str):
    """Several reports in one write: every ack waits for Kafka, then all come in frame order."""
    client = await Jt808Client.connect(gateway.ports["jt808"], PHONE)
    await client.login()
    ts = int(time.time()) * 1000 - 60_000
    serials = [client.next_serial() for _ in range(5)]
    sent = time.monotonic()
    client.writer.write(b"".join(jt808.encode_location(PHONE, s, ts + i * 1000, 32.0, 118.0)
                                 for i, s in enumerate(serials)))
    acks = [general(await client.reply()) for _ in serials]
    assert time.monotonic() - sent >= 1.4
    assert [a[0] for a in acks] == serials and all(a[2] == 0 for a in acks)
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: len(messages(rs)) >= 5, timeout=2.0)
    assert [parse_ts(m["ts"]) for _, m in messages(records)] == [ts + i * 1000 for i in range(5)]
    client.close()


# --------------------------------------------------------------------------- who may send


def dead_reasons(records: list[tuple[bytes | None, Any]]) -> list[str]:
    return [v["reason"] for _, v in records]


async def closed_by_gateway(reader: asyncio.StreamReader) -> bool:
    """Whether the gateway closes the connection (whatever it wrote before)."""
    try:
        while await asyncio.wait_for(reader.read(4096), 10):
            pass
    except ConnectionError:
        pass
    return True


async def test_forged_jt808_registration_and_auth_refused_while_terminal_connected(
        gateway: Gateway, kafka_bootstrap: str):
    port = gateway.ports["jt808"]
    genuine = await Jt808Client.connect(port, PHONE)
    await genuine.login()
    # a forger presenting the terminal's (printed, public) registration fields
    forger = await Jt808Client.connect(port, PHONE)
    forger.writer.write(jt808.encode_register(PHONE, 1))
    _, result, code = jt808.decode_register_response((await forger.reply()).body)
    assert result == REGISTER_TERMINAL_REGISTERED and code == ""
    assert await closed_by_gateway(forger.reader)
    # even with the right code (captured on the air), no second session while it is connected
    thief = await Jt808Client.connect(port, PHONE)
    thief.writer.write(jt808.encode_auth(PHONE, 1, gateway.registry.auth_code(PHONE)))
    assert general(await thief.reply())[2] == jt808.RESULT_FAILURE
    thief.writer.write(jt808.encode_location(PHONE, 2, int(time.time() * 1000), 31.0, 117.0))
    assert await closed_by_gateway(thief.reader)
    # the genuine terminal is not disturbed
    now = int(time.time()) * 1000
    genuine.writer.write(jt808.encode_location(PHONE, genuine.next_serial(), now, 32.5, 118.5))
    assert general(await genuine.reply())[2] == 0
    records = await read_topic(
        kafka_bootstrap, gateway.config.telemetry_topic,
        lambda rs: any(m.get("lat") == 32.5 for _, m in messages(rs)))
    got = messages(records)
    # one event for both attempts (at most one per device every CONFLICT_EVENT_INTERVAL_S);
    # it was submitted before the genuine fix, so it is on the topic already
    conflicts = [(k, m) for k, m in got if m.get("event") == "device_conflict"]
    assert len(conflicts) == 1
    assert all(m["device_id"] == PHONE and k == gateway.registry.key_of(PHONE).encode()
               for k, m in conflicts)
    assert all("127.0.0.1" in m["detail"] for _, m in conflicts)
    assert not any(m.get("lat") == 31.0 for _, m in got)  # the thief's fix never arrived
    dead = await read_topic(kafka_bootstrap, gateway.config.deadletter_topic,
                            lambda rs: dead_reasons(rs).count("device_conflict") >= 2)
    assert dead_reasons(dead).count("device_conflict") == 2
    assert gateway.metrics.conflicts.labels("jt808")._value.get() == 2
    genuine.close()


async def test_unprovisioned_or_mismatching_terminal_gets_no_auth_code(gateway: Gateway,
                                                                       kafka_bootstrap: str):
    port = gateway.ports["jt808"]
    c = await Jt808Client.connect(port, UNPROVISIONED)  # its order exists, it is not provisioned
    c.writer.write(jt808.encode_register(UNPROVISIONED, 1))
    _, result, code = jt808.decode_register_response((await c.reply()).body)
    assert result == jt808.REGISTER_NO_SUCH_TERMINAL and code == ""
    c.writer.write(jt808.encode_auth(UNPROVISIONED, 2, gateway.registry.auth_code(UNPROVISIONED)))
    assert general(await c.reply())[2] == jt808.RESULT_FAILURE
    c.close()
    m = await Jt808Client.connect(port, PHONE)  # provisioned, registering with another maker
    m.writer.write(jt808.encode_register(PHONE, 1, maker="EVIL"))
    _, result, code = jt808.decode_register_response((await m.reply()).body)
    assert result == jt808.REGISTER_NO_SUCH_TERMINAL and code == ""
    m.close()
    dead = await read_topic(kafka_bootstrap, gateway.config.deadletter_topic,
                            lambda rs: len(rs) >= 3)
    # the dead-letter topic has several partitions: records arrive in no set order
    assert sorted(dead_reasons(dead)) == ["not_provisioned", "not_provisioned",
                                          "registration_mismatch"]
    assert all("manufacturer" in v["detail"] for _, v in dead
               if v["reason"] == "registration_mismatch")


async def test_second_watch_gt06_h02_session_for_a_connected_device_is_refused(
        gateway: Gateway, kafka_bootstrap: str):
    ts = int(time.time()) * 1000 - 5000
    r1, w1 = await asyncio.open_connection("127.0.0.1", gateway.ports["watch"])
    w1.write(b"[3G*8800000015*0002*LK]")
    assert await asyncio.wait_for(r1.readuntil(b"]"), 10) == b"[3G*8800000015*0002*LK]"
    r2, w2 = await asyncio.open_connection("127.0.0.1", gateway.ports["watch"])
    w2.write(watch.encode_position("3G", WATCH_ID, ts, 31.0, 117.0))
    assert await closed_by_gateway(r2)
    g1r, g1w = await asyncio.open_connection("127.0.0.1", gateway.ports["gt06"])
    g1w.write(gt06.encode_login("864717003283581", 1))
    await asyncio.wait_for(g1r.readexactly(10), 10)
    g2r, g2w = await asyncio.open_connection("127.0.0.1", gateway.ports["gt06"])
    g2w.write(gt06.encode_login("864717003283581", 1))
    assert await asyncio.wait_for(g2r.read(), 10) == b""  # no login acknowledgement, closed
    _h1r, h1w = await asyncio.open_connection("127.0.0.1", gateway.ports["h02"])
    h1w.write(h02.encode_position("4210051415", ts, 32.0, 118.0) + b"\r\n")
    await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                     lambda rs: any(m["device_id"] == "4210051415" for _, m in messages(rs)))
    h2r, h2w = await asyncio.open_connection("127.0.0.1", gateway.ports["h02"])
    h2w.write(h02.encode_position("4210051415", ts + 1000, 31.0, 117.0) + b"\r\n")
    assert await closed_by_gateway(h2r)
    conflicted = {WATCH_ID, "864717003283581", "4210051415"}
    records = await read_topic(
        kafka_bootstrap, gateway.config.telemetry_topic,
        lambda rs: {m["device_id"] for _, m in messages(rs)
                    if m.get("event") == "device_conflict"} >= conflicted)
    got = messages(records)
    assert sorted(m["device_id"] for _, m in got if m.get("event") == "device_conflict") == \
        sorted(conflicted)
    assert not any(m.get("lat") == 31.0 for _, m in got)
    for w in (w1, g1w, h1w):
        w.close()


@pytest.mark.parametrize("gateway", [{"takeover_idle_s": 0.5}], indirect=True)
async def test_a_silent_connection_yields_to_the_devices_reconnection(gateway: Gateway,
                                                                      kafka_bootstrap: str):
    r1, w1 = await asyncio.open_connection("127.0.0.1", gateway.ports["watch"])
    w1.write(b"[3G*8800000015*0002*LK]")
    await asyncio.wait_for(r1.readuntil(b"]"), 10)
    await asyncio.sleep(0.7)  # the old link went quiet (a device that lost its connection)
    r2, w2 = await asyncio.open_connection("127.0.0.1", gateway.ports["watch"])
    w2.write(b"[3G*8800000015*0002*LK]")
    assert await asyncio.wait_for(r2.readuntil(b"]"), 10) == b"[3G*8800000015*0002*LK]"
    assert await closed_by_gateway(r1)
    assert gateway.metrics.connections_closed.labels("watch", "replaced")._value.get() == 1
    assert gateway.metrics.conflicts.labels("watch")._value.get() == 0
    w2.close()


@pytest.mark.parametrize("gateway", [{"allow_networks": {"watch": parse_networks(["10.0.0.0/8"])}}],
                         indirect=True)
async def test_source_outside_the_listener_allow_list_is_refused(gateway: Gateway):
    r, w = await asyncio.open_connection("127.0.0.1", gateway.ports["watch"])
    w.write(b"[3G*8800000015*0002*LK]")
    assert await asyncio.wait_for(r.read(), 10) == b""  # closed, no reply
    assert gateway.metrics.connections_closed.labels("watch", "source_refused")._value.get() == 1
    client = await Jt808Client.connect(gateway.ports["jt808"], PHONE2)  # no list on this one
    await client.login()
    client.close()


@pytest.mark.parametrize("gateway", [{"rate_per_s": 5.0, "rate_burst": 20}], indirect=True)
async def test_a_flooding_terminal_is_rate_limited(gateway: Gateway, kafka_bootstrap: str):
    client = await Jt808Client.connect(gateway.ports["jt808"], PHONE2)
    await client.login()
    n = 5000
    started = time.monotonic()
    client.writer.write(b"".join(jt808.encode_heartbeat(PHONE2, 10 + i) for i in range(n)))
    await client.writer.drain()  # and never reads an acknowledgement
    limited = gateway.metrics.rate_limited.labels("jt808")
    for _ in range(200):
        if limited._value.get() >= n - 200:
            break
        await asyncio.sleep(0.1)
    elapsed = time.monotonic() - started
    admitted = n - int(limited._value.get())
    assert 20 <= admitted <= 20 + 5 * elapsed + 1, (admitted, elapsed)
    records = await read_topic(
        kafka_bootstrap, gateway.config.telemetry_topic,
        lambda rs: sum(m.get("event") == "heartbeat" for _, m in messages(rs)) >= admitted)
    assert sum(m.get("event") == "heartbeat" for _, m in messages(records)) == admitted
    # one dead letter for the whole flood
    assert gateway.metrics.dead_letters.labels("rate_limited")._value.get() == 1
    dead = await read_topic(kafka_bootstrap, gateway.config.deadletter_topic,
                            lambda rs: "rate_limited" in dead_reasons(rs))
    assert dead_reasons(dead) == ["rate_limited"] and PHONE2 in dead[0][1]["detail"]
    client.close()


@pytest.mark.parametrize("gateway", [{"max_unread_bytes": 16 * 1024}], indirect=True)
async def test_a_terminal_that_never_reads_its_replies_is_closed(gateway: Gateway):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gateway.ports["jt808"]))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    client = Jt808Client(reader, writer, PHONE2)
    await client.login()
    # small kernel buffers on both ends, so unread replies pile up in the gateway itself
    (conn,) = gateway.hub.connections
    assert conn.transport is not None
    conn.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    # registrations are answered without Kafka and carry no telemetry: not rate-limited
    frames = b"".join(jt808.encode_register(PHONE2, 10 + i) for i in range(20_000))
    closed = gateway.metrics.connections_closed.labels("jt808", "not_reading")
    with contextlib.suppress(ConnectionError):
        writer.write(frames)
        await asyncio.wait_for(writer.drain(), 20)
    for _ in range(200):
        if closed._value.get():
            break
        await asyncio.sleep(0.05)
    assert closed._value.get() == 1
    assert not gateway.hub.connections  # gone, with its buffered replies
    writer.close()


async def test_future_dated_fix_is_dead_lettered(gateway: Gateway, kafka_bootstrap: str):
    client = await Jt808Client.connect(gateway.ports["jt808"], PHONE2)
    await client.login()
    now = int(time.time()) * 1000
    client.writer.write(jt808.encode_location(PHONE2, client.next_serial(), now + 3_600_000,
                                              32.2, 118.2))
    assert general(await client.reply())[2] == 0
    client.writer.write(jt808.encode_location(PHONE2, client.next_serial(), now + 60_000,
                                              32.3, 118.3))  # within the 300 s skew
    assert general(await client.reply())[2] == 0
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: any(m.get("lat") == 32.3 for _, m in messages(rs)))
    assert not any(m.get("lat") == 32.2 for _, m in messages(records))
    dead = await read_topic(kafka_bootstrap, gateway.config.deadletter_topic,
                            lambda rs: bool(rs))
    assert dead_reasons(dead) == ["future_timestamp"]
    assert "300 s ahead" in dead[0][1]["detail"] and PHONE2 in dead[0][1]["raw"]
    client.close()
