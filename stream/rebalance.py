"""Rebalance: handing partitions over between the workers of the group.

A revoked partition is snapshotted (forced, so the next owner starts where
this worker stopped) and parked. An assigned partition is restored from its
latest snapshot, or started empty at the committed offset when it has none,
and the consumer is sought to the offset its state covers before any record
is processed. A parked partition that nobody processed since its revoke
snapshot is taken back as it is. The published-record ledger read on restore
suppresses the records the re-consumed input produces again
(:mod:`stream.recovery`).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from aiokafka import ConsumerRebalanceListener, TopicPartition

from geofence.engine import Engine
from stream.checkin_requests import RequestClock
from stream.errors import StreamError
from stream.partition import PartitionState
from stream.publishing import publish
from stream.recovery import read_ledgers, read_snapshots
from stream.reload import sync_orders
from stream.repartition import SeenOrigins
from stream.snapshots import snapshot
from stream.topics import TELEMETRY

if TYPE_CHECKING:
    from stream.app import Worker

log = logging.getLogger(__name__)


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """The consumer's rebalance listener: telemetry partitions only."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await revoke(self.worker, [tp for tp in revoked if tp.topic == TELEMETRY])

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await assign(self.worker, [tp for tp in assigned if tp.topic == TELEMETRY])


async def revoke(worker: Worker, revoked: list[TopicPartition]) -> None:
    """Snapshot and park the revoked partitions; not ready until the next assignment."""
    worker._ready = False
    log.info("revoking telemetry partitions %s", sorted(tp.partition for tp in revoked))
    worker._align.forget((tp.partition for tp in revoked), worker._consumer)
    async with worker._lock:
        for tp in revoked:
            ps = worker._parts.pop(tp.partition, None)
            if ps is None:
                continue
            try:
                await snapshot(worker, ps, force=True)
                worker._parked[tp.partition] = ps
            except Exception:
                log.exception("snapshot of partition %d on revoke failed; the next owner"
                              " restores the previous snapshot", tp.partition)
        worker.metrics.partitions.set(len(worker._parts))


async def assign(worker: Worker, assigned: list[TopicPartition]) -> None:
    """Restore the newly assigned partitions and seek each to the offset its state covers."""
    assert worker._consumer is not None
    t0 = time.monotonic()
    async with worker._lock:
        fresh = [tp.partition for tp in assigned if tp.partition not in worker._parts]
        try:
            restored = await restore(worker, fresh)
        except Exception as exc:
            # a partition we cannot restore must not be consumed from scratch
            worker._fail(StreamError(f"cannot restore partitions {fresh}: {exc!r}"))
            return
        for ps in restored:
            worker._parts[ps.partition] = ps
        worker._align.forget((tp.partition for tp in assigned), worker._consumer)
        for tp in assigned:
            worker._consumer.seek(tp, worker._parts[tp.partition].next_offset)
        worker._parked.clear()
        worker.metrics.partitions.set(len(worker._parts))
        if worker.settings.gc_freeze:
            gc.collect()
            gc.freeze()
    worker._ready = True
    log.info("assigned telemetry partitions %s (restored in %.2f s)", worker.assigned(),
             time.monotonic() - t0)


async def restore(worker: Worker, partitions: list[int]) -> list[PartitionState]:
    """Restore partitions from their latest snapshots (or start them empty)."""
    assert worker._reader is not None and worker._consumer is not None
    assert worker.router is not None
    snaps = await read_snapshots(worker._reader, worker.settings.worker_group, partitions)
    states: list[PartitionState] = []
    lows: dict[int, dict[int, int] | None] = {}
    for p in partitions:
        snap = snaps.get(p)
        parked = worker._parked.pop(p, None)
        if parked is not None and snap is not None and snap.meta.seq == parked.seq - 1 \
                and snap.meta.next_offset == parked.next_offset:
            # still ours: nobody processed it since our own revoke snapshot
            parked.ledger = None
            # requests sent meanwhile by another owner are not known here: start over
            parked.requests = RequestClock()
            states.append(parked)
            continue
        if snap is not None:
            engine = Engine(worker.zones, snap.body.orders, worker.config)
            engine.restore(snap.body.state)
            ps = PartitionState(p, engine, {o.person_id: o for o in snap.body.orders},
                                snap.meta.next_offset, snap.meta.watermark,
                                snap.meta.max_ts, snap.meta.seq + 1,
                                dict(snap.meta.alerts_low))
            # re-keyed copies taken before the snapshot stay recognised as such
            ps.seen = SeenOrigins(dict(snap.meta.origins))
            lows[p] = dict(snap.meta.alerts_low)
            worker.metrics.restores.labels("snapshot").inc()
            log.info("partition %d restored from snapshot %d at offset %d", p,
                     snap.meta.seq, snap.meta.next_offset)
        else:
            orders = worker.router.orders_for(p)
            committed = await worker._consumer.committed(TopicPartition(TELEMETRY, p))
            ps = PartitionState(p, Engine(worker.zones, orders, worker.config),
                                {o.person_id: o for o in orders}, committed or 0)
            lows[p] = None
            worker.metrics.restores.labels("empty").inc()
        states.append(ps)
    ledgers = await read_ledgers(worker._reader, lows, worker.alerts_partitions)
    for ps in states:
        if ps.partition not in ledgers:
            continue
        ps.ledger = ledgers[ps.partition]
        ps.ledger_until = None  # set from the first fetch's high watermark
        # orders changed while nobody held this partition
        records = sync_orders(worker, ps, worker.router)
        await publish(worker, ps, records, f"{ps.partition}:restore")
    return states
