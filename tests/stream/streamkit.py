"""Helpers shared by the stream tests: produce, read topics, wait, settings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from geofence.model import AlertRecord, Order, Telemetry, encode
from stream.keying import Router
from stream.settings import Settings
from stream.topics import ALERTS, DEADLETTER, TELEMETRY

PARTITIONS = 4


def test_settings(**over: Any) -> Settings:
    """Small, fast settings: 4 partitions, 1 s snapshots, short sessions."""
    base: dict[str, Any] = dict(topic_partitions=PARTITIONS, snapshot_interval_s=1.0,
                                session_timeout_ms=6000, idle_watermark_s=0.0,
                                worker_group="wardstream-test")
    base.update(over)
    return Settings.from_env({}, **base)


test_settings.__test__ = False  # type: ignore[attr-defined]


ENDS: dict[str, dict[int, int]] = {}
"""Per broker: telemetry partition -> offset after the last record produced."""


async def _send_all(bootstrap: str,
                    items: Sequence[tuple[int, bytes | None, bytes | None]]) -> None:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await p.start()
    try:
        futs = [await p.send(TELEMETRY, v, key=k, partition=part) for part, v, k in items]
        ends = ENDS.setdefault(bootstrap, {})
        for md in await asyncio.gather(*futs):
            ends[md.partition] = max(ends.get(md.partition, 0), md.offset + 1)
    finally:
        await p.stop()


async def produce(bootstrap: str, orders: Sequence[Order], msgs: Sequence[Telemetry],
                  per_envelope: int = 50, partitions: int = PARTITIONS,
                  foreign_key: bool = False) -> None:
    """Publish messages as batched envelopes, each to its person's partition, in order.

    Records carry the project's key (the direct path of wardstream's gateway);
    with ``foreign_key`` a key of another producer's making, which sends every
    message through the worker's repartition step.
    """
    router = Router.build(orders, partitions)
    items: list[tuple[int, bytes | None, bytes | None]] = []
    for part, group in router.group(msgs).items():
        for i in range(0, len(group), per_envelope):
            chunk = group[i:i + per_envelope]
            key = b"vendor-key" if foreign_key else router.key_of(chunk[0]).encode()
            items.append((part, encode(chunk), key))
    await _send_all(bootstrap, items)


async def produce_raw(bootstrap: str, payloads: Sequence[bytes | None], partition: int,
                      key: bytes | None = None) -> None:
    """Publish payloads to one partition, unkeyed (as a producer that places them) or
    with ``key`` (the person's key: as wardstream's own producers send them); a
    ``None`` payload (a tombstone) needs a key and gets one."""
    await _send_all(bootstrap, [(partition, v, key if key is not None or v is not None
                                 else b"tombstone") for v in payloads])


async def read_topic(bootstrap: str, topic: str, settle_s: float = 1.0,
                     timeout_s: float = 20.0) -> list[Any]:
    """Every record of a topic: read to its end offsets at the start, then until
    nothing new arrives for ``settle_s``."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                         auto_offset_reset="earliest", enable_auto_commit=False)
    await c.start()
    try:
        parts = c.partitions_for_topic(topic)
        if not parts:
            await c._client.force_metadata_update()
            parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        ends = await c.end_offsets(tps) if tps else {}
        out: list[Any] = []
        quiet_since = time.monotonic()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await c.getmany(timeout_ms=200)
            got = [r for rs in batch.values() for r in rs]
            if got:
                out.extend(got)
                quiet_since = time.monotonic()
            at_end = True
            for tp, end in ends.items():
                at_end = at_end and await c.position(tp) >= end
            if at_end and time.monotonic() - quiet_since >= settle_s:
                break
        return out
    finally:
        await c.stop()


_REC = msgspec.json.Decoder(AlertRecord)


async def alert_records(bootstrap: str, settle_s: float = 1.0) -> list[AlertRecord]:
    """Lifecycle records on the alerts topic, in offset order per partition."""
    return [_REC.decode(r.value) for r in await read_topic(bootstrap, ALERTS, settle_s)]


async def dead_letter_values(bootstrap: str, settle_s: float = 1.0) -> list[dict[str, Any]]:
    return [msgspec.json.decode(r.value) for r in await read_topic(bootstrap, DEADLETTER,
                                                                   settle_s)]


async def wait_for(pred: Any, timeout_s: float, interval: float = 0.1) -> float:
    """Poll ``pred()`` (sync or async) until true; return the seconds it took."""
    t0 = time.monotonic()
    while True:
        ok = pred()
        if asyncio.iscoroutine(ok):
            ok = await ok
        if ok:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval)


def caught_up(*workers: Any) -> bool:
    """The workers together consumed everything the test produced."""
    if not workers or not all(w.is_ready() for w in workers):
        return False
    ends = ENDS.get(workers[0].bootstrap, {})
    pos: dict[int, int] = {}
    for w in workers:
        for p, ps in w._parts.items():
            pos[p] = ps.next_offset
    return all(pos.get(p, -1) >= end for p, end in ends.items())




async def consumed_all(worker: Any) -> bool:
    """The worker consumed its telemetry partitions to their end offsets now (whoever
    produced them: the tests, a gateway, a simulator, the worker's own re-keying)."""
    if not worker.is_ready():
        return False
    c = AIOKafkaConsumer(bootstrap_servers=worker.bootstrap, group_id=None)
    await c.start()
    try:
        tps = [TopicPartition(TELEMETRY, p) for p in range(worker.partitions)]
        ends = await c.end_offsets(tps)
    finally:
        await c.stop()
    parts = worker._parts
    return all(tp.partition in parts and parts[tp.partition].next_offset >= end
               for tp, end in ends.items() if end)
