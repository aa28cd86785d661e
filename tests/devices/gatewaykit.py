"""A gateway with topics of its own and a Mosquitto the test starts, for gateway tests.

Tests share one embedded broker (the session's ``kafka_bootstrap``), so each
gateway gets telemetry, dead-letter, command and order topics named for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from devices.gateway import Gateway, GatewayConfig
from devices.servers import ServerConfig
from tests.devices.mosquitto import Mosquitto


def isolated_config(kafka: str, **over: Any) -> GatewayConfig:
    """A gateway config on free ports with its own topics; ``over`` sets any field."""
    suffix = uuid.uuid4().hex[:8]
    fields: dict[str, Any] = dict(
        kafka=kafka, server=ServerConfig(host="127.0.0.1", ports={}), osmand_port=0,
        telemetry_topic=f"telemetry-{suffix}", deadletter_topic=f"deadletter-{suffix}",
        commands_topic=f"commands-{suffix}", orders_topic=f"orders-{suffix}",
        mqtt_topic=f"wardstream-test/{suffix}/#", topic_partitions=1)
    fields.update(over)
    return GatewayConfig(**fields)


@contextlib.asynccontextmanager
async def running(config: GatewayConfig) -> AsyncIterator[Gateway]:
    """A started gateway (its MQTT input connected, when it has one), stopped at the end."""
    gw = Gateway(config)
    await gw.start()
    try:
        if config.mqtt_url:
            await asyncio.wait_for(gw.mqtt_connected.wait(), 10)
        yield gw
    finally:
        await gw.stop()


@contextlib.contextmanager
def mosquitto(workdir: Path, extra_conf: str = "allow_anonymous true\n") -> Iterator[Mosquitto]:
    """A Mosquitto on a free port for the duration of the block."""
    m = Mosquitto(workdir, extra_conf)
    m.start()
    try:
        yield m
    finally:
        m.stop()
