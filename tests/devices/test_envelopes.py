"""Envelope layout on the embedded broker: what a consumer that routes by partition sees.

The default (``envelope_by="partition"``) puts several persons' messages in
one record; each message must still land on the partition of its own
person's key (``stream.keying.partition_of``, which is what the stream
worker checks before it dead-letters a message as ``misrouted``), and one
device's messages must stay in order.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from devices import jt808
from devices.gateway import Gateway, GatewayConfig
from devices.provisioning import for_devices
from devices.servers import ServerConfig
from geofence.model import parse_orders, parse_ts
from stream.keying import partition_of
from tests.devices.test_gateway_integration import Jt808Client, general

PERSONS = 24
PARTITIONS = 3


def phone(i: int) -> str:
    return f"{13800000000 + i:012d}"


async def read_all(bootstrap: str, topic: str, want: int, timeout: float = 20.0
                   ) -> list[tuple[int, bytes | None, list[dict[str, Any]]]]:
    """(partition, key, messages) of every record, in offset order per partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[tuple[int, bytes | None, list[dict[str, Any]]]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and sum(len(m) for _, _, m in out) < want:
            batch = await consumer.getmany(timeout_ms=200)
            for tp, records in batch.items():
                for r in records:
                    value = json.loads(r.value)
                    out.append((tp.partition, r.key, value if isinstance(value, list) else [value]))
        return out
    finally:
        await consumer.stop()


@pytest.mark.parametrize("envelope_by", ["partition", "key"])
async def test_each_message_lands_on_its_persons_partition(kafka_bootstrap: str,
                                                           envelope_by: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    orders = parse_orders(json.dumps([
        {"person_id": f"P-{i:03d}", "devices": [phone(i)], "jurisdiction": "320102",
         "rules": []} for i in range(PERSONS)]))
    cfg = GatewayConfig(
        kafka=kafka_bootstrap, orders=orders,
        server=ServerConfig(host="127.0.0.1", ports={"jt808": 0}), osmand_port=None,
        secret=b"envelopes", telemetry_topic=f"telemetry-{suffix}",
        deadletter_topic=f"deadletter-{suffix}", commands_topic=f"commands-{suffix}",
        orders_topic=f"orders-{suffix}", topic_partitions=PARTITIONS, linger_ms=200.0,
        envelope_by=envelope_by,
        provisioning=for_devices({phone(i): "jt808" for i in range(PERSONS)}))
    gw = Gateway(cfg)
    await gw.start()
    t0 = int(time.time()) * 1000 - 60_000
    try:
        async def terminal(i: int) -> None:
            client = await Jt808Client.connect(gw.ports["jt808"], phone(i))
            await client.login()
            for k in range(3):  # stop-and-wait, as a terminal does
                client.writer.write(jt808.encode_location(
                    phone(i), client.next_serial(), t0 + k * 1000, 32.0 + i / 1e3, 118.7))
                assert general(await client.reply())[2] == 0
            client.close()

        await asyncio.gather(*(terminal(i) for i in range(PERSONS)))
    finally:
        await gw.stop()

    records = await read_all(kafka_bootstrap, cfg.telemetry_topic, PERSONS * 3)
    person_of = {phone(i): f"P-{i:03d}" for i in range(PERSONS)}
    seen: dict[str, list[int]] = {}
    for part, key, msgs in records:
        assert key is not None and key.decode() in {person_of[m["device_id"]] for m in msgs}
        for m in msgs:
            assert partition_of(person_of[m["device_id"]], PARTITIONS) == part
            seen.setdefault(m["device_id"], []).append(parse_ts(m["ts"]))
        if envelope_by == "key":
            assert {person_of[m["device_id"]] for m in msgs} == {key.decode()}
    assert seen == {phone(i): [t0, t0 + 1000, t0 + 2000] for i in range(PERSONS)}
    persons_per_record = [len({m["device_id"] for m in msgs}) for _, _, msgs in records]
    if envelope_by == "partition":
        # 24 terminals reporting within one 200 ms linger: records carry several persons
        assert max(persons_per_record) > 1
        assert len(records) < PERSONS * 3
    else:
        assert max(persons_per_record) == 1
