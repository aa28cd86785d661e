"""``wardstream devices mosquitto-config``: a real Mosquitto admits exactly what it wrote."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from devices import broker_auth
from devices import provisioning as prov
from tests.devices.mosquitto import Mosquitto

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_URL = "mqtt://gateway:gw-secret@127.0.0.1:1883"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WARDSTREAM_MQTT_URL": GATEWAY_URL}
    return subprocess.run([sys.executable, "-m", "stream.cli", "devices", *args], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def generated(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    book = tmp_path / "devices.json"
    book.write_text(json.dumps([{"device_id": "mq-1", "protocol": "mqtt"},
                                {"device_id": "mq-2", "protocol": "mqtt"},
                                {"device_id": "osm-1", "protocol": "osmand"}]))
    out = tmp_path / "broker"
    done = run_cli("mosquitto-config", "--file", str(book), "--out", str(out))
    assert done.returncode == 0, done.stderr
    secrets = {line.split()[0]: line.rsplit(" ", 1)[1] for line in done.stdout.splitlines()
               if "MQTT password" in line}
    assert sorted(secrets) == ["mq-1", "mq-2"]
    yield out, secrets


def test_files_are_private_and_provisioning_agrees(generated: tuple[Path, dict[str, str]],
                                                   tmp_path: Path):
    out, secrets = generated
    for name in ("passwd", "acl"):
        assert (out / name).stat().st_mode & 0o077 == 0
    passwd = broker_auth.parse_passwd((out / "passwd").read_text())
    assert sorted(passwd) == ["gateway", "mq-1", "mq-2"]
    assert all(v.startswith("$7$101$") for v in passwd.values())
    assert "gw-secret" not in (out / "passwd").read_text()
    book = prov.load(str(tmp_path / "devices.json"))
    assert book.get("mq-1").check_secret(secrets["mq-1"])  # type: ignore[union-attr]
    acl = (out / "acl").read_text()
    assert "user mq-1\ntopic write wardstream/telemetry/mq-1\n" in acl
    assert "osm-1" not in acl
    # a second run keeps the devices' passwords and issues none
    again = run_cli("mosquitto-config", "--file", str(tmp_path / "devices.json"),
                    "--out", str(out))
    assert again.returncode == 0 and "MQTT password" not in again.stdout
    kept = broker_auth.parse_passwd((out / "passwd").read_text())
    assert kept["mq-1"] == passwd["mq-1"] and kept["mq-2"] == passwd["mq-2"]


def test_without_gateway_credentials_exits_2(tmp_path: Path):
    (tmp_path / "d.json").write_text("[]")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WARDSTREAM_MQTT_URL": "mqtt://h:1883"}
    done = subprocess.run([sys.executable, "-m", "stream.cli", "devices", "mosquitto-config",
                           "--file", str(tmp_path / "d.json"), "--out", str(tmp_path / "o")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "WARDSTREAM_MQTT_URL" in done.stderr


async def test_broker_admits_the_gateway_and_each_device_on_its_own_topic(
        generated: tuple[Path, dict[str, str]], tmp_path: Path):
    out, secrets = generated
    m = Mosquitto(tmp_path, f"allow_anonymous false\npassword_file {out / 'passwd'}\n"
                            f"acl_file {out / 'acl'}\n")
    m.start()
    try:
        async with aiomqtt.Client("127.0.0.1", m.port, username="gateway",
                                  password="gw-secret") as gw:
            await gw.subscribe("wardstream/telemetry/#", qos=1)
            async with aiomqtt.Client("127.0.0.1", m.port, username="mq-1",
                                      password=secrets["mq-1"]) as dev:
                await dev.publish("wardstream/telemetry/mq-2", b"forged", qos=1)
                await dev.publish("wardstream/telemetry/mq-1", b"mine", qos=1)
            got = []
            async with asyncio.timeout(5):
                async for msg in gw.messages:
                    got.append((str(msg.topic), msg.payload))
                    break
            assert got == [("wardstream/telemetry/mq-1", b"mine")]
        for user, password in (("mq-1", "wrong"), ("osm-1", "anything"), (None, None)):
            with pytest.raises(aiomqtt.MqttError):
                async with aiomqtt.Client("127.0.0.1", m.port, username=user,
                                          password=password) as c:
                    await c.publish("wardstream/telemetry/mq-1", b"x", qos=1)
    finally:
        m.stop()


async def test_production_config_runs_with_generated_files_and_refuses_anonymous(
        generated: tuple[Path, dict[str, str]], tmp_path: Path):
    out, secrets = generated
    text = (ROOT / "config" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in text.splitlines()
    # the compose file mounts the generated directory at /mosquitto/auth
    conf = "\n".join(line for line in text.splitlines() if not line.startswith("listener"))
    m = Mosquitto(tmp_path, conf.replace("/mosquitto/auth", str(out)) + "\n")
    m.start()
    try:
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", m.port) as c:
                await c.publish("wardstream/telemetry/mq-1", b"x", qos=1)
        async with aiomqtt.Client("127.0.0.1", m.port, username="mq-2",
                                  password=secrets["mq-2"]) as c:
            await c.publish("wardstream/telemetry/mq-2", b"x", qos=1)
    finally:
        m.stop()
