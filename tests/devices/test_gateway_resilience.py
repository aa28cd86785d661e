"""No single input stops a gateway input: deep payloads, failures and broker restarts.

Real Kafka (the embedded broker), a Mosquitto the test starts itself, real HTTP.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from devices.gateway import Gateway
from tests.devices.gatewaykit import isolated_config, mosquitto, running
from tests.devices.mosquitto import Mosquitto
from tests.devices.test_gateway_integration import ORDERS, messages, read_topic

DEEP = b"[" * 5000 + b"]" * 5000


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with mosquitto(tmp_path) as m:
        yield m


@pytest.fixture
async def gateway(kafka_bootstrap: str, broker: Mosquitto) -> AsyncIterator[Gateway]:
    async with running(isolated_config(
            kafka_bootstrap, orders=ORDERS, secret=b"resilience", allow_unprovisioned=True,
            mqtt_url=f"mqtt://127.0.0.1:{broker.port}")) as gw:
        yield gw


def fix(device: str, ts: int, **extra: Any) -> bytes:
    return json.dumps({"kind": "fix", "device_id": device, "ts": ts, "lat": 32.06,
                       "lon": 118.79, **extra}).encode()


async def publish(port: int, topic: str, *payloads: bytes) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        for p in payloads:
            await client.publish(topic, p, qos=1)


async def test_deep_mqtt_message_is_dead_lettered_and_later_ones_consumed(
        gateway: Gateway, broker: Mosquitto, kafka_bootstrap: str):
    topic = gateway.config.mqtt_topic.replace("#", "devices/mqtt-1")
    ts = int(time.time() * 1000) - 1000
    await publish(broker.port, topic, DEEP, fix("mqtt-1", ts))
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: bool(messages(rs)))
    assert [(m["device_id"], m["lat"]) for _, m in messages(records)] == [("mqtt-1", 32.06)]
    dead = await read_topic(kafka_bootstrap, gateway.config.deadletter_topic, bool)
    assert [(v["reason"], v["source"]) for _, v in dead] == [("too_deep", f"mqtt:{topic}")]
    assert "5000" not in dead[0][1]["detail"] and "levels deep" in dead[0][1]["detail"]
    assert gateway.metrics.input_restarts.labels("mqtt")._value.get() == 0


async def test_an_exception_while_handling_one_message_dead_letters_it(
        gateway: Gateway, broker: Mosquitto, kafka_bootstrap: str,
        monkeypatch: pytest.MonkeyPatch):
    topic = gateway.config.mqtt_topic.replace("#", "devices/mqtt-1")
    real = gateway.registry.is_accepted
    calls = {"n": 0}

    def flaky(device: str, now: int) -> bool:  # the first lookup hits a bug
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyError("registry bug")
        return real(device, now)

    monkeypatch.setattr(gateway.registry, "is_accepted", flaky)
    ts = int(time.time() * 1000) - 1000
    await publish(broker.port, topic, fix("mqtt-1", ts, lat=32.01), fix("mqtt-1", ts, lat=32.02))
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: bool(messages(rs)))
    assert [m["lat"] for _, m in messages(records)] == [32.02]
    dead = await read_topic(kafka_bootstrap, gateway.config.deadletter_topic, bool)
    assert [v["reason"] for _, v in dead] == ["internal_error"]
    assert "registry bug" in dead[0][1]["detail"] and '"lat": 32.01' in dead[0][1]["raw"]


async def test_mqtt_input_reconnects_after_a_broker_restart(
        gateway: Gateway, broker: Mosquitto, kafka_bootstrap: str):
    topic = gateway.config.mqtt_topic.replace("#", "devices/mqtt-1")
    broker.stop()
    for _ in range(100):
        if not gateway.mqtt_connected.is_set():
            break
        await asyncio.sleep(0.05)
    assert not gateway.mqtt_connected.is_set()
    broker.start()
    await asyncio.wait_for(gateway.mqtt_connected.wait(), 30)
    assert gateway.metrics.input_restarts.labels("mqtt")._value.get() >= 1
    ts = int(time.time() * 1000) - 1000
    await publish(broker.port, topic, fix("mqtt-1", ts))
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: bool(messages(rs)))
    assert [m["device_id"] for _, m in messages(records)] == ["mqtt-1"]


async def test_osmand_deep_and_oversized_bodies_are_dead_lettered(
        gateway: Gateway, kafka_bootstrap: str):
    from aiohttp import ClientSession

    base = f"http://127.0.0.1:{gateway.ports['osmand']}/"
    deep = b'{"device_id": "osm-1", "location": ' + DEEP + b"}"
    async with ClientSession() as http:
        async with http.post(base, data=deep,
                             headers={"Content-Type": "application/json"}) as rsp:
            assert rsp.status == 400 and (await rsp.text()).startswith("too_deep")
        async with http.post(base, data=b"{" + b" " * 100_000 + b"}",
                             headers={"Content-Type": "application/json"}) as rsp:
            assert rsp.status == 413
        ts = int(time.time())
        async with http.get(f"{base}?id=osm-1&lat=32.05&lon=118.79&timestamp={ts}") as rsp:
            assert rsp.status == 200
    dead = await read_topic(kafka_bootstrap, gateway.config.deadletter_topic,
                            lambda rs: len(rs) >= 2)
    assert sorted(v["reason"] for _, v in dead) == ["payload_too_large", "too_deep"]
    records = await read_topic(kafka_bootstrap, gateway.config.telemetry_topic,
                               lambda rs: bool(messages(rs)))
    assert [m["device_id"] for _, m in messages(records)] == ["osm-1"]


async def test_insecure_inputs_are_announced(gateway: Gateway, caplog: pytest.LogCaptureFixture):
    # this gateway has no provisioned devices and an anonymous MQTT URL
    warnings = [r.getMessage() for r in caplog.get_records("setup") if r.levelname == "WARNING"]
    assert any("without device keys" in w for w in warnings)
    assert any("MQTT without credentials" in w for w in warnings)
