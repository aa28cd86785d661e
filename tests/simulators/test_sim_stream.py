"""The same simulated day pushed through Kafka into a stream worker scores perfectly.

Its own embedded broker (the worker uses the contract's fixed topic names),
the day sent by the simulator's Kafka sink (envelopes keyed by
partition_keys, delivery order), a Worker from stream.app evaluating it,
and the lifecycle records on wardstream.alerts scored against the truth.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from geofence.model import parse_orders
from geofence.zones import load_zones
from simulators.caseload import SimConfig, generate, write
from simulators.feed import KafkaSink, pump, read_items
from simulators.score import load_alerts, score
from stream.app import Worker
from stream.broker import EmbeddedBroker
from stream.settings import Settings
from stream.topics import ALERTS


async def _alert_lines(bootstrap: str) -> list[str]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    out: list[str] = []
    try:
        tps = [TopicPartition(ALERTS, p) for p in consumer.partitions_for_topic(ALERTS) or {0}]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            behind = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
            if not behind:
                break
            for recs in (await consumer.getmany(timeout_ms=300)).values():
                out.extend(r.value.decode() for r in recs)
    finally:
        await consumer.stop()
    return out


async def test_day_through_kafka_and_a_worker_scores_perfectly(tmp_path: Path) -> None:
    cl = generate(SimConfig(persons=60, seed=21, interval_s=300.0))
    paths = write(cl, str(tmp_path))
    orders = parse_orders(Path(paths["orders.json"]).read_bytes())
    broker = EmbeddedBroker()
    await broker.start()
    try:
        settings = Settings.from_env({}, topic_partitions=4, snapshot_interval_s=1.0,
                                     session_timeout_ms=6000, idle_watermark_s=0.0,
                                     worker_group="sim-test")
        worker = Worker(broker.bootstrap, load_zones(paths["zones.geojson"]), orders, settings)
        await worker.start()
        try:
            deadline = time.monotonic() + 30
            while not worker.is_ready() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            sink = KafkaSink(broker.bootstrap, orders, envelope_max=40)
            await sink.start()
            try:
                await pump(read_items(paths["telemetry.jsonl"]), sink, rate=20_000)
            finally:
                await sink.stop()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                pos = {p: ps.next_offset for p, ps in worker._parts.items()}
                if all(pos.get(p, -1) >= end for p, end in sink.ends.items()):
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)
        finally:
            await worker.stop()
        alerts = load_alerts("\n".join(await _alert_lines(broker.bootstrap)))
    finally:
        await broker.stop()
    truth = json.loads(Path(paths["truth.json"]).read_text())
    report = score(truth, alerts)
    assert report.precision == 1.0 and report.recall == 1.0, report.text()
    assert all(not v for v in report.silent_violations.values())
