"""Every hostile input of the attack report, mixed into a simulated day, end to end.

A real embedded broker, a real gateway (JT/T 808, H02, OsmAnd and MQTT
through a Mosquitto the test starts), a real worker. A small simulated day
goes to Kafka as the simulator sends it; halfway through, each input that
once stopped the worker or the gateway arrives by the path an attacker
uses: device protocols through the gateway, the rest as a Kafka producer.
Then the day goes on.

Asserted: the worker and every gateway input are still up and still take
data, each bad input is dead-lettered with its precise reason (the multiset
of reasons is exactly the day's own rejections, from replay, plus the
triggers'), and the day's alerts score precision and recall 1.0 against the
simulator's ground truth.

The triggers belong to one extra person without rules, whose partition
carries none of the day's data: gateway heartbeats are stamped with the
arrival time, which must not move the clock of a partition replaying an
older day. The triggers that need a real person's data (a bad member in an
envelope of the day's messages, a future fix of a day device) go to the
day's own partitions.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
from aiohttp import ClientSession
from streamkit import ENDS, consumed_all, produce_raw, read_topic, test_settings, wait_for

from devices import h02, jt808
from devices.gateway import Gateway, GatewayConfig
from devices.provisioning import Provisioning, hash_secret
from devices.servers import ServerConfig
from geofence.engine import replay_lines
from geofence.model import Fix, Order, TelemetryDecoder, parse_orders
from geofence.zones import load_zones
from simulators.caseload import SimConfig, generate, write
from simulators.feed import Item, KafkaSink, pump, read_items
from simulators.score import load_alerts, score
from stream.app import Worker
from stream.keying import Router
from stream.topics import ALERTS, DEADLETTER, TELEMETRY
from tests.devices.mosquitto import Mosquitto
from tests.devices.test_gateway_integration import Jt808Client, general

PARTS = 12
JT, H02, OSM, MQTT, KAFKA = "013900000001", "4210000001", "osm-x", "mqtt-x", "kafka-x"
OSM_KEY = "osm-x-key"
HOUR = 3_600_000
LAT, LON = 32.06, 118.79
RESULTS = ("evaluated", "duplicate", "late", "too_late", "ignored", "rejected",
           "unknown_device", "misrouted")


def trigger_order(day: list[Order], lines: list[bytes]) -> Order:
    """A rule-less person whose partition holds none of the day's messages."""
    router = Router.build(day, PARTS)
    dec = TelemetryDecoder()
    used = {router.partition_of_message(m) for line in lines for m in dec.decode(line).messages}
    for n in range(1000):
        pid = f"X-{n}"
        if router.partition_of_person(pid) not in used:
            return parse_orders(json.dumps([{
                "person_id": pid, "devices": [JT, H02, OSM, MQTT, KAFKA],
                "jurisdiction": "320102", "rules": []}]))[0]
    raise AssertionError("every partition carries the day")


def fix(device: str, ts: int, lat: float = LAT) -> dict[str, Any]:
    return {"kind": "fix", "device_id": device, "ts": ts, "lat": lat, "lon": LON}


def counts(worker: Worker) -> dict[str, float]:
    reg = worker.metrics.registry
    return {r: reg.get_sample_value("wardstream_worker_fixes_in_total", {"result": r}) or 0.0
            for r in RESULTS}


def take_envelope(rest: list[Item], router: Router, n: int) -> tuple[int, list[dict[str, Any]]]:
    """The first ``n`` single messages of the busiest partition, removed from ``rest``.

    Taken before any backfill of that partition, so sending them first keeps
    the partition's order.
    """
    dec = TelemetryDecoder()

    def part(m: dict[str, Any]) -> int | None:
        got = dec.decode(json.dumps(m).encode()).messages
        return router.partition_of_message(got[0]) if got else None

    busiest = collections.Counter(part(i.messages[0]) for i in rest
                                  if i.messages and not i.backfill).most_common(1)[0][0]
    taken: list[dict[str, Any]] = []
    keep: list[Item] = []
    for item in rest:
        if len(taken) < n and item.messages and part(item.messages[0]) == busiest:
            if item.backfill or len(item.messages) != 1:
                n = len(taken)  # stop here: nothing of this partition may overtake it
            else:
                taken.append(item.messages[0])
                continue
        keep.append(item)
    rest[:] = keep
    assert busiest is not None and len(taken) >= 20
    return busiest, taken


async def test_every_trigger_mixed_into_a_day(broker: str, tmp_path: Path) -> None:
    cl = generate(SimConfig(persons=20, seed=5, interval_s=600.0))
    paths = write(cl, str(tmp_path))
    day_orders = parse_orders(Path(paths["orders.json"]).read_bytes())
    zones = load_zones(paths["zones.geojson"])
    lines = Path(paths["telemetry.jsonl"]).read_bytes().splitlines()
    _, day = replay_lines(lines, zones, day_orders)
    x = trigger_order(day_orders, lines)
    orders = [*day_orders, x]
    router = Router.build(orders, PARTS)
    items = list(read_items(paths["telemetry.jsonl"]))
    half, rest = items[:len(items) // 2], items[len(items) // 2:]
    env_part, env_members = take_envelope(rest, router, 40)

    worker = Worker(broker, zones, orders, test_settings(topic_partitions=PARTS))
    mosquitto = Mosquitto(tmp_path)
    mosquitto.start()
    suffix = uuid.uuid4().hex[:8]
    gw = Gateway(GatewayConfig(
        kafka=broker, orders=orders,
        server=ServerConfig(host="127.0.0.1", ports={"jt808": 0, "h02": 0}, rate_burst=50),
        osmand_port=0, secret=b"hostile-day", follow_orders=False, topic_partitions=PARTS,
        mqtt_url=f"mqtt://127.0.0.1:{mosquitto.port}", mqtt_topic=f"day-{suffix}/#",
        provisioning=Provisioning.parse([
            {"device_id": JT, "protocol": "jt808"}, {"device_id": H02, "protocol": "h02"},
            {"device_id": OSM, "protocol": "osmand", "secret_hash": hash_secret(OSM_KEY)},
            {"device_id": MQTT, "protocol": "mqtt"}])))
    sink = KafkaSink(broker, orders, envelope_max=40)
    await worker.start()
    try:
        await wait_for(worker.is_ready, 30)
        await gw.start()
        await asyncio.wait_for(gw.mqtt_connected.wait(), 10)
        await sink.start()
        await pump(half, sink)

        # -- Kafka producers
        deep = (b'[{"kind": "fix", "device_id": "kafka-x", "x": ' + b"[" * 1500
                + b"]" * 1500 + b"}]")
        members = [json.dumps(m).encode() for m in env_members]
        nan = (b'{"kind": "fix", "device_id": "%s", "ts": %d, "lat": NaN, "lon": 118.8}'
               % (env_members[0]["device_id"].encode(), env_members[0]["ts"]))
        no_lat = json.dumps({k: v for k, v in env_members[0].items() if k != "lat"}).encode()
        for m in (nan, no_lat):
            members.insert(len(members) // 2, m)
        now = int(time.time() * 1000)
        future = json.dumps(fix(env_members[0]["device_id"], now + 23 * HOUR)).encode()
        env_key = router.key_of(TelemetryDecoder().decode(members[0]).messages[0]).encode()
        await produce_raw(broker, [deep, b"[" + b",".join(members) + b"]", future], env_part,
                          env_key)
        env_source = f"telemetry:{env_part}@{ENDS[broker][env_part] - 2}"
        own = router.partition_of_person(x.person_id)
        h = now - HOUR  # beyond the lateness horizon once the live fix is in
        await produce_raw(broker, [json.dumps(fix(KAFKA, now - 1000)).encode(),
                                   json.dumps([fix(KAFKA, h), fix(KAFKA, h + 1000), fix(KAFKA, h),
                                               fix(KAFKA, h)]).encode()], own,
                          x.person_id.encode())
        # `simulate send` of an old day into a partition whose clock is now: all late,
        # some twice
        backlog = [Item(b"", [fix(KAFKA, now - 3 * HOUR + k * 60_000)]) for k in range(60)]
        backlog += backlog[::10]
        await pump(backlog, sink)

        # -- OsmAnd: five requests without a key (one 23 h ahead, four identical), then
        # the same with the device's key
        base = f"http://127.0.0.1:{gw.ports['osmand']}/"
        ahead = f"id={OSM}&lat={LAT}&lon={LON}&timestamp={(now + 23 * HOUR) // 1000}"
        same = f"id={OSM}&lat={LAT}&lon={LON}&timestamp={(now - 5000) // 1000}"
        async with ClientSession() as http:
            for key in ("", f"&key={OSM_KEY}"):
                statuses = []
                for q in [ahead] + [same] * 4:
                    async with http.get(f"{base}?{q}{key}") as rsp:
                        statuses.append(rsp.status)
                assert statuses == ([401] * 5 if not key else [400] + [200] * 4), statuses

        # -- JT/T 808: a live fix, then an hour-old backfill (0x0704) with one item repeated
        jt = await Jt808Client.connect(gw.ports["jt808"], JT)
        await jt.login()
        jt.writer.write(jt808.encode_location(JT, jt.next_serial(), now // 1000 * 1000 - 2000,
                                              LAT, LON))
        assert general(await jt.reply())[2] == 0
        old = [{"ts_ms": h // 1000 * 1000 + k * 60_000, "lat": LAT, "lon": LON} for k in (0, 1)]
        jt.writer.write(jt808.encode_batch(JT, jt.next_serial(), [*old, old[1], old[0]]))
        assert general(await jt.reply())[2] == 0

        # -- H02: a fix a day ahead, then a heartbeat flood
        _hr, hw = await asyncio.open_connection("127.0.0.1", gw.ports["h02"])
        hw.write(h02.encode_position(H02, now + 23 * HOUR, LAT, LON) + b"\r\n")
        hw.write(b"".join(b"*HQ,%s,LINK#\r\n" % H02.encode() for _ in range(400)))
        await hw.drain()

        # -- MQTT: a payload nested 5,000 levels deep, a fix a day ahead
        topic = f"day-{suffix}/{MQTT}"
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.publish(topic, b"[" * 5000 + b"]" * 5000, qos=1)
            await client.publish(topic, json.dumps(fix(MQTT, now + 23 * HOUR)), qos=1)

        # the rest of the day; its first envelope carries a NaN and a malformed member
        await pump(rest, sink)

        # every input still takes data
        proof = int(time.time() * 1000) - 1000
        async with ClientSession() as http, http.get(
                f"{base}?id={OSM}&lat={LAT}&lon={LON}&timestamp={proof // 1000}&key={OSM_KEY}"
        ) as rsp:
            assert rsp.status == 200
        jt.writer.write(jt808.encode_location(JT, jt.next_serial(), proof // 1000 * 1000,
                                              LAT, LON))
        assert general(await jt.reply())[2] == 0
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.publish(topic, json.dumps(fix(MQTT, proof)), qos=1)
        await asyncio.sleep(1.2)  # the H02 bucket refills
        hw.write(h02.encode_position(H02, proof, LAT, LON) + b"\r\n")
        await hw.drain()
        jt.close()

        async def from_inputs() -> bool:
            recs = await read_topic(broker, TELEMETRY, settle_s=0.2)
            dec = TelemetryDecoder()  # bounded: the topic holds the hostile records too
            seen = {(m.device_id, m.ts) for r in recs if r.value
                    for m in dec.decode(r.value).messages if isinstance(m, Fix)}
            return all((d, ts) in seen for d, ts in (
                (OSM, proof // 1000 * 1000), (JT, proof // 1000 * 1000), (MQTT, proof),
                (H02, proof // 1000 * 1000)))
        await wait_for(from_inputs, 30, interval=0.5)
        hw.close()

        await wait_for(lambda: consumed_all(worker), 60, interval=0.5)
        await asyncio.sleep(1.5)  # timers and the last records
        assert worker._fatal is None and all(not t.done() for t in worker._tasks)
        assert all(not t.done() for t in gw._tasks) and gw.mqtt_connected.is_set()
        c = counts(worker)
    finally:
        await sink.stop()
        await gw.stop()
        await worker.stop()
        mosquitto.stop()

    letters = [json.loads(r.value) for r in await read_topic(broker, DEADLETTER)]
    got = collections.Counter(d["reason"] for d in letters)
    expected = collections.Counter(day.rejected) + collections.Counter({
        "too_deep": 2,            # the Kafka record and the MQTT message
        "non_finite_number": 1,   # one member of the envelope
        "missing_field": 1,       # another member of it (no lat)
        "future_timestamp": 4,    # Kafka, OsmAnd, H02, MQTT
        "missing_key": 5,         # OsmAnd without a key
        "rate_limited": 1,        # the H02 heartbeat flood, once per burst
    })
    assert got == expected, (got - expected, expected - got)
    # the envelope lost only its two bad members
    mid = len(env_members) // 2
    assert sorted((d["source"], d["reason"]) for d in letters
                  if d["source"].startswith(env_source + "[")) == [
        (f"{env_source}[{mid}]", "missing_field"), (f"{env_source}[{mid + 1}]", "non_finite_number")]
    # the late backfills and the resent old day were counted, not fatal
    # late: the resent day (60), two of each backfill; duplicates: six of the resent
    # day, two of each backfill, three OsmAnd fixes
    assert c["late"] == 64 and c["duplicate"] >= 13 + day.duplicates, c

    alerts = load_alerts("\n".join(r.value.decode() for r in await read_topic(broker, ALERTS)))
    report = score(cl.truth, alerts)
    assert report.precision == 1.0 and report.recall == 1.0, report.text()
    assert all(not v for v in report.silent_violations.values())
    assert report.late_mismatches == []
    assert not [a for a in alerts if a["person_id"] == x.person_id]
