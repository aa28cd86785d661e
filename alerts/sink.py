"""Kafka -> PostgreSQL sinks that lose nothing when the database goes away.

A :class:`KafkaSink` reads a topic with auto-commit off, hands each batch to
its handler, and commits the batch's offsets only after the handler's
database transaction committed. When the database is unreachable (refused,
reset, timed out, restarting) the sink keeps the batch, pauses its
partitions, marks itself not ready (``/readyz`` and the
``wardstream_sink_db_up`` gauge), and retries with exponential backoff
(0.2 s doubling to 10 s, with jitter) while still polling so it stays in its
consumer group. When the database returns, the held batch is written and
consumption resumes where it stopped. A crash meanwhile loses nothing
either: uncommitted offsets are read again, and both handlers are safe to
replay (alerts are idempotent by content, tracks collapse duplicates on read).

A record that the database rejects for its content (not for being away) is
sent to ``wardstream.deadletter`` after the batch is retried one record at a
time, so one bad record never blocks a partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from alerts.metrics import Metrics

log = logging.getLogger(__name__)

Handler = Callable[[Sequence[ConsumerRecord[bytes, bytes]]], Awaitable[None]]
DeadLetter = Callable[[ConsumerRecord[bytes, bytes], str, str], Awaitable[None]]

_UNAVAILABLE_SQLSTATE = ("08", "53", "57P", "58")


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means "the database is away" (retry) rather than "bad data"."""
    if isinstance(exc, (OSError, TimeoutError, asyncio.TimeoutError, ConnectionError,
                        asyncpg.InterfaceError, asyncpg.PostgresConnectionError)):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", "") or ""
        return state.startswith(_UNAVAILABLE_SQLSTATE)
    return False


class KafkaSink:
    """Consume one topic into the database with commit-after-write.

    Parameters
    ----------
    name : str
        Metric label and log name (``alerts``, ``tracks``).
    topics : sequence of str
        Topics to consume.
    group_id : str
        Kafka consumer group (committed offsets live there).
    bootstrap : str
        Kafka bootstrap servers.
    handler : callable
        ``await handler(records)``; must write the batch in one transaction.
    dead_letter : callable
        ``await dead_letter(record, reason, detail)`` for a record the database refuses.
    max_records : int
        Largest batch per poll.
    """

    def __init__(
        self, name: str, topics: Sequence[str], group_id: str, bootstrap: str, handler: Handler,
        dead_letter: DeadLetter, metrics: Metrics, *, max_records: int = 5000,
        max_backoff_s: float = 10.0, write_timeout_s: float = 30.0,
        session_timeout_ms: int = 10_000,
    ) -> None:
        self.name = name
        self.topics = list(topics)
        self.group_id = group_id
        self.bootstrap = bootstrap
        self.handler = handler
        self.dead_letter = dead_letter
        self.metrics = metrics
        self.max_records = max_records
        self.max_backoff_s = max_backoff_s
        self.write_timeout_s = write_timeout_s
        self.session_timeout_ms = session_timeout_ms
        self.db_up = True
        self.last_error: str | None = None
        self.written = 0
        self.assigned = False
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        metrics.sink_db_up.labels(name).set(1)

    async def start(self) -> None:
        """Connect the consumer and start the loop."""
        self._consumer = AIOKafkaConsumer(
            *self.topics, bootstrap_servers=self.bootstrap, group_id=self.group_id,
            enable_auto_commit=False, auto_offset_reset="earliest",
            max_poll_interval_ms=3_600_000, session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(500, self.session_timeout_ms // 4),
            metadata_max_age_ms=5_000,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name=f"sink-{self.name}")

    async def stop(self) -> None:
        """Stop after the batch in hand (its offsets stay uncommitted if unwritten)."""
        self._stopping.set()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer:
            with contextlib.suppress(Exception):
                await self._consumer.stop()

    @property
    def healthy(self) -> bool:
        """False while the loop has died or the database is away."""
        return self.db_up and self._task is not None and not self._task.done()

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while not self._stopping.is_set():
            try:
                batches = await consumer.getmany(timeout_ms=500, max_records=self.max_records)
            except Exception as exc:  # a broker hiccup: log and poll again
                log.warning("sink %s: poll failed: %s", self.name, exc)
                await asyncio.sleep(1.0)
                continue
            self.assigned = bool(consumer.assignment())
            records = [r for part in batches.values() for r in part]
            if not records:
                continue
            await self._write_until_done(consumer, records)
            offsets = {tp: part[-1].offset + 1 for tp, part in batches.items() if part}
            await self._commit(consumer, offsets)

    async def _write_until_done(
        self, consumer: AIOKafkaConsumer, records: list[ConsumerRecord[bytes, bytes]]
    ) -> None:
        self.metrics.sink_pending.labels(self.name).set(len(records))
        delay = 0.2
        paused = False
        try:
            while True:
                started = time.perf_counter()
                try:
                    await asyncio.wait_for(self.handler(records), self.write_timeout_s)
                except Exception as exc:
                    if not database_unavailable(exc):
                        log.warning("sink %s: batch refused (%s); retrying record by record",
                                    self.name, exc)
                        if await self._one_by_one(records):
                            break
                        exc = ConnectionError("database went away during record-by-record retry")
                    self._mark_down(exc)
                    if not paused:
                        consumer.pause(*consumer.assignment())
                        paused = True
                    await self._backoff(consumer, delay)
                    delay = min(self.max_backoff_s, delay * 2)
                    continue
                self.metrics.sink_batch_seconds.labels(self.name).observe(
                    time.perf_counter() - started)
                break
        finally:
            if paused:
                consumer.resume(*consumer.assignment())
        self._mark_up()
        self.written += len(records)
        self.metrics.sink_records.labels(self.name, "written").inc(len(records))
        self.metrics.sink_pending.labels(self.name).set(0)

    async def _one_by_one(self, records: list[ConsumerRecord[bytes, bytes]]) -> bool:
        """Write each record alone; dead-letter refused ones. False if the DB went away."""
        for record in records:
            try:
                await asyncio.wait_for(self.handler([record]), self.write_timeout_s)
            except Exception as exc:
                if database_unavailable(exc):
                    return False
                await self.dead_letter(record, "store_refused", str(exc)[:500])
                self.metrics.sink_records.labels(self.name, "dead_letter").inc()
        return True

    async def _backoff(self, consumer: AIOKafkaConsumer, delay: float) -> None:
        wait = delay * (0.8 + 0.4 * random.random())
        # keep polling (partitions are paused, so nothing is fetched) to stay in the group
        with contextlib.suppress(Exception):
            await consumer.getmany(timeout_ms=int(wait * 1000))
        if self._stopping.is_set():
            raise asyncio.CancelledError

    def _mark_down(self, exc: BaseException) -> None:
        if self.db_up:
            log.error("sink %s: database unavailable (%s); holding offsets and retrying",
                      self.name, exc)
        self.db_up = False
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        self.metrics.sink_db_up.labels(self.name).set(0)
        self.metrics.sink_retries.labels(self.name).inc()

    def _mark_up(self) -> None:
        if not self.db_up:
            log.info("sink %s: database back; catching up", self.name)
        self.db_up = True
        self.last_error = None
        self.metrics.sink_db_up.labels(self.name).set(1)

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        for attempt in range(5):
            try:
                await consumer.commit(offsets)
                return
            except Exception as exc:  # rebalance or broker hiccup: the data is written already
                log.warning("sink %s: commit failed (attempt %d): %s", self.name, attempt + 1, exc)
                await asyncio.sleep(0.5 * (attempt + 1))

    def describe(self) -> dict[str, Any]:
        """State for /readyz."""
        return {"db_up": self.db_up, "running": self._task is not None and not self._task.done(),
                "written": self.written, "last_error": self.last_error}
