"""Devices prove who they are: OsmAnd keys and MQTT topic binding, over real connections.

Real Kafka (the embedded broker), real HTTP, and a Mosquitto the test starts
itself with a password file and an ACL binding each device to its own topic.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace

import aiomqtt
import pytest

from devices.gateway import Gateway
from devices.provisioning import ProvisionedDevice, Provisioning, hash_secret
from tests.devices.gatewaykit import isolated_config, mosquitto, running
from tests.devices.mosquitto import Mosquitto
from tests.devices.test_gateway_integration import ORDERS, messages, read_topic

OSM_KEY = "k3y-for-osm-1"
PREFIX = f"wardstream-auth-{uuid.uuid4().hex[:6]}/telemetry"
PASSWORDS = {"gateway": "gw-pass", "mqtt-1": "pw-mqtt-1", "osm-1": "pw-osm-1"}


def provisioning() -> Provisioning:
    return Provisioning({
        "osm-1": ProvisionedDevice("osm-1", "osmand", secret_hash=hash_secret(OSM_KEY)),
        "mqtt-1": ProvisionedDevice("mqtt-1", "mqtt", secret_hash=hash_secret("x")),
    })


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    passwd = tmp_path / "passwd"
    passwd.touch()
    for user, password in PASSWORDS.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True,
                       capture_output=True)
    acl = tmp_path / "acl"
    acl.write_text(f"user gateway\ntopic read {PREFIX}/#\n\npattern write {PREFIX}/%u\n")
    with mosquitto(tmp_path, f"allow_anonymous false\npassword_file {passwd}\n"
                             f"acl_file {acl}\n") as m:
        yield m


@pytest.fixture
async def gateway(kafka_bootstrap: str, broker: Mosquitto) -> AsyncIterator[Gateway]:
    async with running(isolated_config(
            kafka_bootstrap, orders=ORDERS, secret=b"auth", provisioning=provisioning(),
            mqtt_url=f"mqtt://gateway:{PASSWORDS['gateway']}@127.0.0.1:{broker.port}",
            mqtt_topic=f"{PREFIX}/#")) as gw:
        yield gw


async def test_osmand_without_or_with_a_wrong_key_is_refused(gateway: Gateway,
                                                             kafka_bootstrap: str):
    from aiohttp import ClientSession

    base = f"http://127.0.0.1:{gateway.ports['osmand']}/"
    ts = int(time.time())
    fix = f"id=osm-1&lat=32.05&lon=118.79&timestamp={ts}"
    async with ClientSession() as http:
        async with http.get(f"{base}?{fix}") as rsp:
            assert rsp.status == 401 and await rsp.text() == "missing_key\n"
        async with http.get(f"{base}?{fix}&key=guessed-secret") as rsp:
            assert rsp.status == 401 and await rsp.text() == "bad_key\n"
        # mqtt-1 is named by an order but provisioned for MQTT only
        async with http.get(f"{base}?id=mqtt-1&lat=32&lon=118&key={OSM_KEY}") as rsp:
            assert rsp.status == 401
        async with http.get(f"{base}?{fix}&lat=32.1&key={OSM_KEY}") as rsp:
            assert rsp.status == 200
        body = {"device_id": "osm-1", "location": {"timestamp": "2026-01-01T00:00:00Z",
                                                   "coords": {"latitude": 32.2,
                                                              "longitude": 118.0}}}
        async with http.post(base, json=body,
                             headers={"Authorization": f"Bearer {OSM_KEY}"}) as rsp:
            assert rsp.status == 200
        async with http.post(base, json=body,
                             headers={"Authorization": "Bearer wrong"}) as rsp:
            assert rsp.status == 401
    dead = await read_topic(kafka_bootstrap, gateway.config.deadletter_topic,
                            lambda rs: len(rs) >= 4)
    assert sorted(v["reason"] for _, v in dead) == ["bad_key", "bad_key", "bad_key",
                                                    "missing_key"]
    assert not any("guessed-secret" in v["raw"] or OSM_KEY in v["raw"] for _, v in dead)
    assert any("key=***" in v["raw"] for _, v in dead)
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: len(messages(rs)) >= 2)
    assert sorted(m["lat"] for _, m in messages(records)) == [32.1, 32.2]


async def test_mqtt_devices_publish_only_as_themselves(gateway: Gateway, broker: Mosquitto,
                                                       kafka_bootstrap: str):
    ts = int(time.time() * 1000) - 1000

    def fix(device: str, lat: float) -> bytes:
        return json.dumps({"kind": "fix", "device_id": device, "ts": ts, "lat": lat,
                           "lon": 118.79}).encode()

    # anonymous clients are refused by the broker
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", broker.port) as client:
            await client.publish(f"{PREFIX}/mqtt-1", fix("mqtt-1", 31.0), qos=1)
    # osm-1's credentials cannot publish on mqtt-1's topic (the ACL drops it)
    async with aiomqtt.Client("127.0.0.1", broker.port, username="osm-1",
                              password=PASSWORDS["osm-1"]) as client:
        await client.publish(f"{PREFIX}/mqtt-1", fix("mqtt-1", 31.1), qos=1)
    async with aiomqtt.Client("127.0.0.1", broker.port, username="mqtt-1",
                              password=PASSWORDS["mqtt-1"]) as client:
        # on its own topic, naming another device: dead-lettered
        await client.publish(f"{PREFIX}/mqtt-1", fix("osm-1", 31.2), qos=1)
        camera = {"kind": "video_hit", "camera_id": "CAM-9", "ts": ts, "event": "face_match",
                  "lat": 32.0, "lon": 118.0, "person_id": "P-1", "jurisdiction": "320102"}
        await client.publish(f"{PREFIX}/mqtt-1", json.dumps(camera), qos=1)
        await client.publish(f"{PREFIX}/mqtt-1", fix("mqtt-1", 31.3), qos=1)
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: bool(messages(rs)))
    await asyncio.sleep(0.5)  # let anything that should not arrive have its chance
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: False, timeout=1.0)
    assert [m["lat"] for _, m in messages(records)] == [31.3]
    dead = await read_topic(kafka_bootstrap, gateway.config.deadletter_topic,
                            lambda rs: len(rs) >= 2)
    assert [(v["reason"], v["source"]) for _, v in dead] == [
        ("device_mismatch", f"mqtt:{PREFIX}/mqtt-1")] * 2
    assert "'osm-1'" in dead[0][1]["detail"] and "'CAM-9'" in dead[1][1]["detail"]


async def test_simulator_osmand_sink_sends_provisioned_keys(gateway: Gateway, tmp_path: Path,
                                                           kafka_bootstrap: str):
    from simulators.feed import OsmandSink, load_keys

    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps({"osm-1": OSM_KEY}))
    url = f"http://127.0.0.1:{gateway.ports['osmand']}/"
    now = int(time.time() * 1000)

    item = SimpleNamespace(messages=[{"kind": "fix", "device_id": "osm-1", "ts": now,
                                      "lat": 32.3, "lon": 118.7}])

    for keys, errors in (({}, 1), (load_keys(str(keys_file)), 0)):
        sink = OsmandSink(url, keys=keys)
        await sink.start()
        try:
            await sink.put(item)  # type: ignore[arg-type]
            await sink.flush()
        finally:
            await sink.stop()
        assert sink.errors == errors
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: bool(messages(rs)))
    assert [m["lat"] for _, m in messages(records)] == [32.3]


def test_unusable_keys_file_is_a_one_line_error(tmp_path: Path):
    from simulators.feed import load_keys

    bad = tmp_path / "keys.json"
    bad.write_text('["osm-1"]')
    with pytest.raises(ValueError, match="JSON object of device id -> key"):
        load_keys(str(bad))
    with pytest.raises(ValueError, match="cannot read"):
        load_keys(str(tmp_path / "missing.json"))


async def test_video_hits_only_from_provisioned_cameras(gateway: Gateway, broker: Mosquitto,
                                                        kafka_bootstrap: str):
    ts = int(time.time() * 1000) - 1000
    assert gateway.config.provisioning is not None
    gateway.config.provisioning.add(ProvisionedDevice("CAM-1", "mqtt"))
    passwd = broker.conf.parent / "passwd"
    for cam in ("CAM-1", "CAM-2"):
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), cam, "pw-" + cam], check=True,
                       capture_output=True)
    assert broker.proc is not None
    broker.proc.send_signal(1)  # SIGHUP: the broker reloads its password file
    await asyncio.sleep(0.5)

    def hit(camera: str, lat: float) -> bytes:
        return json.dumps({"kind": "video_hit", "camera_id": camera, "ts": ts,
                           "event": "face_match", "lat": lat, "lon": 118.0,
                           "person_id": "P-1", "confidence": 0.95,
                           "jurisdiction": "320102"}).encode()

    for cam, lat in (("CAM-2", 31.5), ("CAM-1", 31.6)):
        async with aiomqtt.Client("127.0.0.1", broker.port, username=cam,
                                  password="pw-" + cam) as client:
            await client.publish(f"{PREFIX}/{cam}", hit(cam, lat), qos=1)
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: bool(messages(rs)))
    assert [(m["camera_id"], m["lat"]) for _, m in messages(records)] == [("CAM-1", 31.6)]
    dead = await read_topic(kafka_bootstrap, gateway.config.deadletter_topic, bool)
    assert [(v["reason"], v["source"]) for _, v in dead] == [
        ("unknown_device", f"mqtt:{PREFIX}/CAM-2")]
