"""The worker's clock: idle watermarks, snapshots on schedule, gauges.

Every half second, under the worker's lock, each partition's lag is noted; a
partition with no input for ``idle_watermark_s`` has its watermark moved by
the wall clock (so timers fire on a quiet partition); a dirty partition due
for a snapshot is captured (one per tick) and written outside the lock; the
random check-in requests whose time the wall clock reached are sent to the
phones (:mod:`stream.checkin_requests`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from stream.publishing import publish, send_checkin_requests
from stream.snapshots import SnapshotJob, alert_ends, capture, write
from stream.topics import TELEMETRY

if TYPE_CHECKING:
    from stream.app import Worker

log = logging.getLogger(__name__)


async def timer_loop(worker: Worker) -> None:
    """Run the worker's clock until it stops (see the module docstring)."""
    assert worker._consumer is not None
    s = worker.settings
    last_gauges = 0.0
    jobs: list[SnapshotJob] = []
    while not worker._stopping.is_set():
        await asyncio.sleep(0.5)
        due = any(ps.dirty and not ps.writing
                  and time.monotonic() - ps.last_snapshot >= s.snapshot_interval_s
                  for ps in worker._parts.values())
        ends = await alert_ends(worker) if due else {}
        async with worker._lock:
            now = time.monotonic()
            now_ms = int(time.time() * 1000)
            for ps in list(worker._parts.values()):
                tp = TopicPartition(TELEMETRY, ps.partition)
                hw = worker._consumer.highwater(tp)
                lag = max(0, hw - ps.next_offset) if hw is not None else 0
                worker.metrics.lag.labels(str(ps.partition)).set(lag)
                if s.idle_watermark_s > 0 and lag == 0 \
                        and now - ps.last_input >= s.idle_watermark_s:
                    guard = now_ms - worker.config.lateness_ms - int(s.idle_watermark_s * 1000)
                    records = worker._advance(ps, guard)
                    if records:
                        ps.dirty = True
                        try:
                            await publish(worker, ps, records, f"{ps.partition}:clock")
                        except KafkaError:
                            raise
                        except Exception:  # a record that cannot be sent stops nothing
                            log.exception("partition %d: publishing timer records failed",
                                          ps.partition)
                if now - ps.last_snapshot >= s.snapshot_interval_s and not ps.writing:
                    if not ps.dirty:
                        ps.last_snapshot = now
                    elif not jobs:  # one capture per tick spreads the pauses
                        jobs.append(capture(worker, ps, ends))
            clock_ms = worker.clock()
            for ps in list(worker._parts.values()):
                try:
                    await send_checkin_requests(worker, ps, clock_ms)
                except KafkaError:
                    raise
                except Exception:  # a request that cannot be sent stops nothing
                    log.exception("partition %d: sending check-in requests failed",
                                  ps.partition)
            if now - last_gauges >= 5.0:
                last_gauges = now
                update_open_gauge(worker)
        for job in jobs:  # outside the lock: evaluation goes on meanwhile
            try:
                await write(worker, job)
            except Exception:
                log.exception("snapshot of partition %d failed; retrying later",
                              job.ps.partition)
                job.ps.dirty = True
        jobs.clear()


def update_open_gauge(worker: Worker) -> None:
    """Set the open-episodes gauge per alert kind (0 for kinds no longer open)."""
    counts: dict[str, int] = {}
    for ps in worker._parts.values():
        for alert in ps.engine.open_alerts():
            counts[alert.kind] = counts.get(alert.kind, 0) + 1
    for kind in worker._open_kinds | set(counts):
        worker.metrics.open_episodes.labels(kind).set(counts.get(kind, 0))
    worker._open_kinds |= set(counts)
