"""Timers without input (the wall-clock guard) and crash-safe snapshots."""

from __future__ import annotations

import os
import time

import pytest
import scenario
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from conftest import alert_records, produce, test_settings, wait_for

from geofence.model import Fix, format_ts
from stream import recovery
from stream.app import Worker
from stream.recovery import encode_snapshot, read_snapshots, write_snapshot
from stream.settings import Settings
from stream.topics import SNAPSHOTS, ensure_topics, topic_specs


async def test_signal_loss_fires_on_a_silent_partition_by_the_wall_clock_guard(
        broker: str) -> None:
    orders = scenario.orders()
    worker = Worker(broker, scenario.zones(), orders,
                    test_settings(idle_watermark_s=1.0, lateness_s=1))
    await worker.start()
    try:
        await wait_for(worker.is_ready, 30)
        last = int(time.time() * 1000) - 400_000  # P6's last fix, 400 s ago
        await produce(broker, orders, [Fix(device_id="WB-P6", ts=last, lat=32.05,
                                           lon=118.79)])
        # no further message arrives: only the wall clock can fire the timer
        async def fired() -> bool:
            return any(r.alert.kind == "signal_lost" and r.event == "opened"
                       for r in await alert_records(broker, 0.2))
        await wait_for(fired, 15, interval=0.5)
    finally:
        await worker.stop()
    rec = next(r for r in await alert_records(broker, 0.2) if r.alert.kind == "signal_lost")
    # event-time semantics are kept: opened_at = last message + after_s
    assert rec.alert.opened_at == format_ts(last + 300_000)
    assert rec.alert.person_id == "P6"


async def test_a_crash_while_writing_a_snapshot_leaves_the_previous_one_readable(
        broker: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recovery, "CHUNK_BYTES", 1024)
    await ensure_topics(broker, topic_specs(Settings.from_env({}, topic_partitions=2)))
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", enable_idempotence=False)
    reader = AIOKafkaConsumer(bootstrap_servers=broker, group_id=None,
                              auto_offset_reset="earliest", enable_auto_commit=False)
    await producer.start()
    await reader.start()
    try:
        states = [os.urandom(5000) for _ in range(3)]  # incompressible: several chunks each
        for seq in (0, 1):
            meta, chunks = encode_snapshot(1, seq, 100 + seq, 5, 6, {0: 3}, [], states[seq])
            assert len(chunks) > 3
            await write_snapshot(producer, "g", meta, chunks)
        # another group's snapshot of the same partition is not ours
        meta, chunks = encode_snapshot(1, 7, 999, None, None, {}, [], b"other")
        await write_snapshot(producer, "other-group", meta, chunks)
        # seq 2 dies half-way: some chunks, no manifest
        meta, chunks = encode_snapshot(1, 2, 102, 5, 6, {}, [], states[2])
        for i, c in enumerate(chunks[:2]):
            await producer.send_and_wait(SNAPSHOTS, c, key=recovery.chunk_key("g", 1, 2, i),
                                         partition=1)
        snaps = await read_snapshots(reader, "g", [0, 1])
        assert list(snaps) == [1]
        assert snaps[1].meta.seq == 1 and snaps[1].meta.next_offset == 101
        assert snaps[1].body.state == states[1]
        assert snaps[1].meta.alerts_low == {0: 3}
    finally:
        await reader.stop()
        await producer.stop()
