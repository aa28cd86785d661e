"""Capturing a partition's state and writing it as a snapshot.

A capture takes the engine state and the offsets it covers under the worker's
lock; the write waits for every record sent before the capture to be
acknowledged, writes the snapshot (:mod:`stream.recovery`) and only then
commits the telemetry offset it covers.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from geofence.model import Order
from stream.errors import StreamError
from stream.partition import PartitionState
from stream.recovery import encode_snapshot, write_snapshot
from stream.topics import ALERTS, TELEMETRY

if TYPE_CHECKING:
    from stream.app import Worker

log = logging.getLogger(__name__)


@dataclass
class SnapshotJob:
    """A partition's state captured under the lock, written outside it."""

    ps: PartitionState
    seq: int
    next_offset: int
    watermark: int | None
    max_ts: int | None
    lows: dict[int, int]
    orders: list[Order]
    state: bytes
    pending: list[asyncio.Future[Any]]
    origins: dict[int, int] = field(default_factory=dict)


async def alert_ends(worker: Worker) -> dict[int, int]:
    """End offsets of the alerts partitions now, or ``{}`` if they cannot be had.

    Asked *before* a capture: every record a restore may produce again is
    sent after the capture, so it lies at or beyond these offsets. (Asked
    after the capture, as records derived from later input are being
    published, they would hide those records from the restore's ledger
    and let a restore publish them twice.)
    """
    if worker._reader is None:
        return {}
    try:
        ends = await worker._reader.end_offsets(
            [TopicPartition(ALERTS, a) for a in worker.alerts_partitions])
    except Exception:  # ListOffsets may fail or under-report on Tansu: a lower bound will do
        return {}
    return {tp.partition: off for tp, off in ends.items()}


def capture(worker: Worker, ps: PartitionState, ends: dict[int, int] | None = None) -> SnapshotJob:
    """Take a partition's state (call under the lock; cheap apart from
    ``Engine.snapshot()``); the slow part runs in :func:`write`.
    ``ends`` are alerts end offsets from :func:`alert_ends`, asked before."""
    pending = [f for f in worker._inflight
               if not f.done() or f.cancelled() or f.exception() is not None]
    worker._inflight = [f for f in pending if not f.done()]
    lows = dict(ps.alerts_low)
    for a, off in [*worker._alerts_high.items(), *(ends or {}).items()]:
        lows[a] = max(lows.get(a, 0), off)
    job = SnapshotJob(ps, ps.seq, ps.next_offset, ps.watermark, ps.max_ts, lows,
                      list(ps.orders.values()), ps.engine.snapshot(), pending,
                      dict(ps.seen.high))
    ps.dirty = False
    ps.last_snapshot = time.monotonic()
    ps.writing = True
    if worker.settings.gc_freeze:
        gc.freeze()  # long-lived engine state leaves the collector's scans
    return job


async def write(worker: Worker, job: SnapshotJob) -> None:
    """Wait for the acks of every record sent before the capture, then write
    the snapshot, then commit the offset it covers."""
    assert worker._producer is not None and worker._consumer is not None
    ps = job.ps
    try:
        try:
            await asyncio.gather(*job.pending)
        except Exception as exc:
            # a record the state already reflects is not on Kafka: the only safe
            # way on is a restart from the last snapshot
            worker._fail(StreamError(f"publishing failed, restarting from the last"
                                     f" snapshot: {exc!r}"))
            raise
        lows = job.lows
        meta, chunks = await asyncio.to_thread(
            encode_snapshot, ps.partition, job.seq, job.next_offset, job.watermark,
            job.max_ts, lows, job.orders, job.state, job.origins)
        await write_snapshot(worker._producer, worker.settings.worker_group, meta, chunks)
        # only a snapshot on Kafka moves the slot on (see stream.recovery)
        ps.seq = job.seq + 1
        ps.alerts_low = lows
        worker.metrics.snapshots.inc()
        worker.metrics.snapshot_bytes.observe(meta.size)
        try:
            await worker._consumer.commit(
                {TopicPartition(TELEMETRY, ps.partition): OffsetAndMetadata(job.next_offset,
                                                                            "")})
        except Exception as exc:  # a rebalance in progress: the snapshot is what counts
            log.info("commit of partition %d deferred: %s", ps.partition, exc)
    finally:
        ps.writing = False


async def snapshot(worker: Worker, ps: PartitionState, force: bool = False) -> None:
    """Snapshot one partition now (under the lock) and wait until it is written."""
    while ps.writing:
        await asyncio.sleep(0.01)
    if not ps.dirty and not force:
        ps.last_snapshot = time.monotonic()
        return
    await write(worker, capture(worker, ps, await alert_ends(worker)))
