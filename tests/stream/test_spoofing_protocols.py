"""Forged positions through every protocol the gateway speaks, and through Kafka.

A real embedded broker, a real gateway (JT/T 808, watch, GT06, H02, OsmAnd)
and a real worker. Six persons are really inside an exclusion zone, each
reporting through one input; one person is really at home. Around their
genuine reports a forger tries, through the same input, to hide the breach
(positions at home in between), to clear it once open, and to put the person
at home into the zone: as an unprovisioned device, with a wrong or another
device's key or authentication code, as a second session of a connected
device, from an address outside the device's network, and, where nothing
authenticates (a Kafka producer), with positions that teleport.

Asserted: nothing a forger sent through a device input reached Kafka; each
attempt is dead-lettered with its reason; the alerts are exactly those of a
replay of the same stream without the forgeries, plus the alerts that
report them (``device_conflict`` for a hijacked session, ``spoofing_suspected``
for the teleporting stream); every real breach is open and none was cleared.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from typing import Any

from streamkit import (
    alert_records,
    consumed_all,
    produce_raw,
    read_topic,
    test_settings,
    wait_for,
)

from devices import gt06, h02, jt808, watch
from devices.gateway import Gateway, GatewayConfig
from devices.provisioning import Provisioning, hash_secret
from devices.servers import ServerConfig
from devices.sessions import REGISTER_TERMINAL_REGISTERED
from geofence.engine import fold_records, replay_lines
from geofence.model import DeviceEvent, Fix, Telemetry, TelemetryDecoder, encode, parse_orders
from geofence.zones import ZoneCatalogue
from stream.app import Worker
from stream.keying import Router
from stream.topics import DEADLETTER, TELEMETRY
from tests.devices.test_gateway_integration import Jt808Client, closed_by_gateway, general

SCHOOL = (118.80, 32.06)
HOME = (118.79, 32.05)     # 1.4 km from the school: far enough to be implausible within 1 s
FORGED = (118.78, 32.04)   # where the refused forgers put people (never on the topic)
JT, WATCH, GT, H2 = "013900000011", "8800000021", "864717003283599", "4210000021"
JT_U, WATCH_B = "013900000019", "8800000029"   # named by orders, JT_U never provisioned
JT_B = "013900000029"                          # provisioned, never connected
OSM, OSM_B, KAFKA, KAFKA_B = "osm-o", "osm-b", "kafka-k", "kafka-b"
KEYS = {OSM: "osm-o-key", OSM_B: "osm-b-key"}
PARTS = 4
ROUNDS = 5
STRANGER_IP = "127.0.0.2"  # loopback, but outside every device's network


def zones() -> ZoneCatalogue:
    return ZoneCatalogue.from_geojson({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "school", "properties": {"radius_m": 200},
         "geometry": {"type": "Point", "coordinates": list(SCHOOL)}}]})


def orders() -> list[Any]:
    rule = [{"id": "r1", "type": "exclusion", "zone": "school", "dwell_s": 0}]
    persons = {"P-J": [JT], "P-W": [WATCH], "P-G": [GT], "P-H": [H2], "P-O": [OSM],
               "P-K": [KAFKA], "P-B": [KAFKA_B, OSM_B, WATCH_B, JT_B], "P-U": [JT_U]}
    return parse_orders(json.dumps([
        {"person_id": p, "devices": d, "jurisdiction": "320102", "rules": rule}
        for p, d in persons.items()]))


def provisioning() -> Provisioning:
    local = ["127.0.0.1/32"]
    return Provisioning.parse([
        {"device_id": JT, "protocol": "jt808", "networks": local},
        {"device_id": JT_B, "protocol": "jt808", "networks": local},
        {"device_id": WATCH, "protocol": "watch", "networks": local},
        {"device_id": WATCH_B, "protocol": "watch", "networks": local},
        {"device_id": GT, "protocol": "gt06", "networks": local},
        {"device_id": H2, "protocol": "h02", "networks": local},
        *({"device_id": d, "protocol": "osmand", "secret_hash": hash_secret(k)}
          for d, k in KEYS.items())])


async def stranger(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(STRANGER_IP, 0))


async def ack(client: Jt808Client) -> int:
    """Result of the next general response (skipping the pursuit commands an open
    alert makes the worker send)."""
    while True:
        msg = await client.reply()
        if msg.header.msg_id == jt808.MSG_PLATFORM_RESPONSE:
            return general(msg)[2]


def kafka_fix(device: str, ts: int, at: tuple[float, float]) -> bytes:
    return encode(Fix(device_id=device, ts=ts, lat=at[1], lon=at[0]))


async def test_forgeries_through_every_input_change_no_real_alert(broker: str) -> None:
    os_ = orders()
    router = Router.build(os_, PARTS)
    worker = Worker(broker, zones(), os_, test_settings())
    gw = Gateway(GatewayConfig(
        kafka=broker, orders=os_, secret=b"spoofing", follow_orders=False,
        topic_partitions=PARTS, provisioning=provisioning(), osmand_port=0,
        server=ServerConfig(host="127.0.0.1",
                            ports={"jt808": 0, "watch": 0, "gt06": 0, "h02": 0})))
    forged_kafka: set[tuple[str, int]] = set()
    statuses: list[int] = []
    await worker.start()
    try:
        await wait_for(worker.is_ready, 30)
        await gw.start()
        p = gw.ports
        from aiohttp import ClientSession

        http = ClientSession()
        osm = f"http://127.0.0.1:{p['osmand']}/"

        async def osmand(device: str, ts: int, at: tuple[float, float], key: str | None) -> int:
            q = f"id={device}&lat={at[1]}&lon={at[0]}&timestamp={ts // 1000}"
            async with http.get(f"{osm}?{q}" + (f"&key={key}" if key else "")) as rsp:
                return rsp.status

        async def kafka(device: str, ts: int, at: tuple[float, float]) -> None:
            person = router.device_person[device]
            await produce_raw(broker, [kafka_fix(device, ts, at)],
                              router.partition_of_person(person),
                              router.person_key[person].encode())

        # the genuine devices connect
        jt = await Jt808Client.connect(p["jt808"], JT)
        await jt.login()
        wr, ww = await asyncio.open_connection("127.0.0.1", p["watch"])
        ww.write(watch.encode("3G", WATCH, "LK"))
        await asyncio.wait_for(wr.readuntil(b"]"), 10)
        gr, gw_ = await asyncio.open_connection("127.0.0.1", p["gt06"])
        gw_.write(gt06.encode_login(GT, 1))
        await asyncio.wait_for(gr.readexactly(10), 10)
        _hr, hw = await asyncio.open_connection("127.0.0.1", p["h02"])

        for k in range(ROUNDS):
            t = int(time.time()) * 1000
            # genuine reports: six persons in the school, P-B at home
            jt.writer.write(jt808.encode_location(JT, jt.next_serial(), t, SCHOOL[1], SCHOOL[0]))
            assert await ack(jt) == 0
            ww.write(watch.encode_position("3G", WATCH, t, SCHOOL[1], SCHOOL[0]))
            gw_.write(gt06.encode_location(t, SCHOOL[1], SCHOOL[0], 2 + k))
            hw.write(h02.encode_position(H2, t, SCHOOL[1], SCHOOL[0]) + b"\r\n")
            assert await osmand(OSM, t, SCHOOL, KEYS[OSM]) == 200
            await kafka(KAFKA, t, SCHOOL)
            await kafka(KAFKA_B, t, HOME)
            # half a second later the forgers: hide the breach, fake one at P-B
            await asyncio.sleep(0.5)
            f = t + 500
            # JT/T 808: an unprovisioned terminal, a wrong code, a stranger's address
            u = await Jt808Client.connect(p["jt808"], JT_U)
            u.writer.write(jt808.encode_register(JT_U, 1))
            assert jt808.decode_register_response((await u.reply()).body)[1] == \
                jt808.REGISTER_NO_SUCH_TERMINAL
            u.writer.write(jt808.encode_location(JT_U, 2, f, SCHOOL[1], SCHOOL[0]))
            assert general(await u.reply())[2] == jt808.RESULT_FAILURE
            u.close()
            g = await Jt808Client.connect(p["jt808"], JT_B)  # P-B's terminal, guessed code
            g.writer.write(jt808.encode_auth(JT_B, 1, "guessed-code"))
            assert await ack(g) == jt808.RESULT_FAILURE
            g.writer.write(jt808.encode_location(JT_B, 2, f, SCHOOL[1], SCHOOL[0]))
            assert await ack(g) == jt808.RESULT_FAILURE
            g.close()
            sr, sw = await stranger(p["jt808"])
            s = Jt808Client(sr, sw, JT)
            s.writer.write(jt808.encode_auth(JT, 1, "guessed-code"))
            assert general(await s.reply())[2] == jt808.RESULT_FAILURE
            s.close()
            # watch and H02: the device ids from a stranger's address
            for port, frame in ((p["watch"], watch.encode_position("3G", WATCH, f, FORGED[1],
                                                                   FORGED[0])),
                                (p["watch"], watch.encode_position("3G", WATCH_B, f, SCHOOL[1],
                                                                   SCHOOL[0])),
                                (p["h02"], h02.encode_position(H2, f, FORGED[1], FORGED[0])
                                 + b"\r\n")):
                sr, sw = await stranger(port)
                sw.write(frame)  # refused; the listener answers nothing
                await asyncio.sleep(0.05)
                sw.close()
            # GT06: positions without a login
            sr, sw = await asyncio.open_connection("127.0.0.1", p["gt06"])
            sw.write(gt06.encode_location(f, FORGED[1], FORGED[0], 1))
            await asyncio.sleep(0.05)
            sw.close()
            # OsmAnd: no key, a guessed key, P-B's key for P-O's phone, P-O's key for P-B's
            statuses += [await osmand(OSM, f, FORGED, None),
                         await osmand(OSM, f, FORGED, "guessed"),
                         await osmand(OSM, f, FORGED, KEYS[OSM_B]),
                         await osmand(OSM_B, f, SCHOOL, KEYS[OSM])]
            # Kafka: nothing authenticates a producer; the forged fixes teleport
            for dev, at in ((KAFKA, HOME), (KAFKA_B, SCHOOL)):
                await kafka(dev, f, at)
                forged_kafka.add((dev, f))
            await asyncio.sleep(0.5)

        # the breaches are open: a second session for each connected device, from the
        # device's own network, tries to clear them (refused, and reported)
        t = int(time.time()) * 1000
        thief = await Jt808Client.connect(p["jt808"], JT)
        thief.writer.write(jt808.encode_register(JT, 1))
        assert jt808.decode_register_response((await thief.reply()).body)[1] == \
            REGISTER_TERMINAL_REGISTERED
        for port, frame in ((p["watch"], watch.encode_position("3G", WATCH, t, FORGED[1],
                                                               FORGED[0])),
                            (p["gt06"], gt06.encode_login(GT, 1)),
                            (p["h02"], h02.encode_position(H2, t, FORGED[1], FORGED[0])
                             + b"\r\n")):
            sr, sw = await asyncio.open_connection("127.0.0.1", port)
            sw.write(frame)
            assert await closed_by_gateway(sr)
        thief.close()
        for i in range(3):  # three forged fixes outside within 3 s
            await kafka(KAFKA, t + i * 1000, HOME)
            forged_kafka.add((KAFKA, t + i * 1000))
        # the genuine devices report once more, in the school
        t = int(time.time()) * 1000 + 1000
        await asyncio.sleep(1.0)
        jt.writer.write(jt808.encode_location(JT, jt.next_serial(), t, SCHOOL[1], SCHOOL[0]))
        assert await ack(jt) == 0
        ww.write(watch.encode_position("3G", WATCH, t, SCHOOL[1], SCHOOL[0]))
        gw_.write(gt06.encode_location(t, SCHOOL[1], SCHOOL[0], 99))
        hw.write(h02.encode_position(H2, t, SCHOOL[1], SCHOOL[0]) + b"\r\n")
        assert await osmand(OSM, t, SCHOOL, KEYS[OSM]) == 200
        await kafka(KAFKA, t, SCHOOL)
        await kafka(KAFKA_B, t, HOME)
        await http.close()

        async def everything_in() -> bool:
            recs = await read_topic(broker, TELEMETRY, settle_s=0.3)
            got = {(m.device_id, m.ts) for r in recs
                   for m in TelemetryDecoder().decode(r.value).messages}
            return all((d, t) in got for d in (JT, WATCH, GT, H2, OSM, KAFKA, KAFKA_B))
        await wait_for(everything_in, 30, interval=0.5)
        await wait_for(lambda: consumed_all(worker), 30, interval=0.3)
        assert worker._fatal is None and all(not t.done() for t in worker._tasks)
        for w in (ww, gw_, hw):
            w.close()
        jt.close()
    finally:
        await gw.stop()
        await worker.stop()

    assert statuses == [401] * 4 * ROUNDS
    stream: list[Telemetry] = []
    for r in sorted(await read_topic(broker, TELEMETRY), key=lambda r: r.timestamp):
        stream += TelemetryDecoder().decode(r.value).messages
    # no forged position from a device input reached Kafka
    assert not [m for m in stream if isinstance(m, Fix)
                and abs(m.lon - FORGED[0]) < 1e-4 and abs(m.lat - FORGED[1]) < 1e-4]
    assert not [m for m in stream if getattr(m, "device_id", None) in (JT_U, JT_B, WATCH_B, OSM_B)]
    conflicts = sorted(m.device_id for m in stream
                       if isinstance(m, DeviceEvent) and m.event == "device_conflict")
    assert conflicts == sorted([JT, WATCH, GT, H2])

    honest = [m for m in stream if (getattr(m, "device_id", None), m.ts) not in forged_kafka
              and not (isinstance(m, DeviceEvent) and m.event == "device_conflict")]
    expected, _ = replay_lines([encode(m) for m in honest], zones(), os_)
    got, _ = fold_records(await alert_records(broker))
    reports = {"device_conflict", "spoofing_suspected"}
    assert [a for a in got if a.kind not in reports] == expected
    assert sorted((a.person_id, a.kind, a.cleared_at) for a in expected) == [
        (pid, "exclusion_entered", None) for pid in ("P-G", "P-H", "P-J", "P-K", "P-O", "P-W")]
    assert sorted((a.person_id, a.kind) for a in got if a.kind in reports) == sorted(
        [(pid, "device_conflict") for pid in ("P-G", "P-H", "P-J", "P-W")]
        + [("P-B", "spoofing_suspected"), ("P-K", "spoofing_suspected")])

    letters = [json.loads(r.value) for r in await read_topic(broker, DEADLETTER)]
    by_input = collections.Counter((d["source"].split(":", 1)[0], d["reason"]) for d in letters)
    assert by_input == collections.Counter({
        ("jt808", "not_provisioned"): ROUNDS, ("jt808", "not_authenticated"): 2 * ROUNDS,
        ("jt808", "auth_failed"): ROUNDS,
        ("jt808", "source_refused"): ROUNDS, ("watch", "source_refused"): 2 * ROUNDS,
        ("h02", "source_refused"): ROUNDS, ("gt06", "not_authenticated"): ROUNDS,
        ("osmand", "missing_key"): ROUNDS, ("osmand", "bad_key"): 3 * ROUNDS,
        ("jt808", "device_conflict"): 1, ("watch", "device_conflict"): 1,
        ("gt06", "device_conflict"): 1, ("h02", "device_conflict"): 1,
    }), by_input
