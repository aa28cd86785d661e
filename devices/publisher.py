"""Publishing canonical telemetry to Kafka: batched envelopes, backpressure, no silent loss.

Connections :meth:`Publisher.submit` the messages of a frame under their
partition key and get a future that completes when Kafka has acknowledged
them (``acks=all``); the servers send the device its acknowledgement only
then. Messages queued under one key within ``linger_ms`` are sent as one
JSON array (a batched envelope, at most ``max_envelope`` messages), which is
what lets one worker evaluate tens of thousands of fixes per second.

The queue is bounded by ``max_queue`` messages (queued plus in flight).
When it is full, :attr:`Publisher.full` is true and the servers stop
reading from their sockets (TCP backpressure reaches the devices) until
acknowledgements bring the depth under the low watermark; nothing is
dropped. A failed send fails the futures of its messages, so the device is
not acknowledged and resends. :meth:`Publisher.stop` flushes everything
queued before closing the producer.

By default (``envelope_by="partition"``) the messages of every key that
hashes to the same partition (the producer's default murmur2 partitioner,
``stream.keying.partition_of``) share one envelope, keyed by the first of
those keys and produced to that partition explicitly: each person's data
still lands on the partition of its own key, in order, but one envelope
may carry several persons. That is what the stream worker expects (it
routes by ``device_id`` inside an envelope and never by the record key; see
docs/stream.md) and it cuts the per-record producer and broker cost when
thousands of devices report once each per linger window. With
``envelope_by="key"`` every envelope holds one key's messages only (for
consumers that route by record key).

Tansu (the embedded broker) has no idempotent producer: the producer runs
with ``enable_idempotence=False`` and ``acks="all"``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from devices.metrics import GatewayMetrics
from devices.wire import encode_messages
from geofence.model import DeadLetter, Telemetry, encode
from stream.topics import DEADLETTER as DEADLETTER_TOPIC
from stream.topics import TELEMETRY as TELEMETRY_TOPIC

log = logging.getLogger(__name__)


Done = Callable[[BaseException | None], None]
"""Completion callback: ``None`` when Kafka acknowledged, else the error."""
_Entry = tuple[Sequence[Telemetry], Done, float]


class Publisher:
    """Batching, bounded, acknowledged producer of canonical telemetry."""

    def __init__(self, bootstrap: str, *, topic: str = TELEMETRY_TOPIC,
                 deadletter_topic: str = DEADLETTER_TOPIC, max_queue: int = 20_000,
                 linger_ms: float = 5.0, max_envelope: int = 500,
                 metrics: GatewayMetrics | None = None, client_id: str = "wardstream-gateway",
                 envelope_by: str = "partition") -> None:
        if envelope_by not in ("key", "partition"):
            raise ValueError("envelope_by is 'key' or 'partition'")
        self.envelope_by = envelope_by
        self._by_partition = envelope_by == "partition"
        self._partition_of: dict[str, int] = {}
        self._partitions: list[int] = []
        self.bootstrap = bootstrap
        self.topic = topic
        self.deadletter_topic = deadletter_topic
        self.max_queue = max_queue
        self.low_watermark = max_queue * 3 // 4
        self.linger_s = linger_ms / 1000.0
        self.max_envelope = max_envelope
        self.metrics = metrics or GatewayMetrics()
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._pending: dict[str, list[_Entry]] = {}
        # envelope_by="partition" once the partitions are known: partition -> (the key of
        # its first submission, the submissions in order); one envelope per partition
        self._pending_parts: dict[int, tuple[str, list[_Entry]]] = {}
        self._woken = False
        self._depth = 0
        self.full = False
        """True while the bounded queue is at its limit: stop reading sockets."""
        self._waiters: list[Callable[[], None]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._dead_inflight: set[asyncio.Future[None]] = set()
        self.published = 0
        self.failed = 0

    # -- lifecycle
    async def start(self) -> None:
        """Connect the producer and start the flush loop."""
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, client_id=self.client_id, acks="all",
            enable_idempotence=False, linger_ms=0, max_batch_size=1 << 20,
            max_request_size=8 << 20, request_timeout_ms=30_000)
        await self._producer.start()
        self._partitions = sorted(await self._producer.partitions_for(self.topic))
        self._task = asyncio.get_running_loop().create_task(self._run(), name="publisher")

    async def stop(self) -> None:
        """Flush everything queued, wait for Kafka, close the producer."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._producer is not None:
            await self._producer.flush()
            if self._dead_inflight:
                await asyncio.gather(*self._dead_inflight, return_exceptions=True)
            await self._producer.stop()
            self._producer = None

    # -- submitting
    @property
    def depth(self) -> int:
        """Messages queued or in flight (not yet acknowledged by Kafka)."""
        return self._depth


    def submit(self, key: str, messages: Sequence[Telemetry],
               received: float | None = None) -> asyncio.Future[None]:
        """Queue ``messages`` under ``key``; the future completes on Kafka's acknowledgement.

        ``received`` is the ``time.monotonic()`` at which the frame arrived
        (for the publish-latency histogram).
        """
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def done(exc: BaseException | None) -> None:
            if not fut.done():
                if exc is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(exc)

        self.submit_cb(key, messages, done, received)
        return fut

    def submit_cb(self, key: str, messages: Sequence[Telemetry], done: Done,
                  received: float | None = None) -> None:
        """Like :meth:`submit` with a callback instead of a future (the TCP hot path).

        ``done(None)`` runs when Kafka acknowledged the messages, ``done(exc)``
        when it did not; it runs on the event loop and must not raise.
        """
        if self._closing:
            done(RuntimeError("publisher is stopping"))
            return
        entry = (messages, done, received if received is not None else time.monotonic())
        if self._partitions and self._by_partition:
            part = self._partition_of.get(key)
            if part is None:
                part = self._partition(key)
            group = self._pending_parts.get(part)
            if group is None:
                self._pending_parts[part] = (key, [entry])
            else:
                group[1].append(entry)
        else:
            self._pending.setdefault(key, []).append(entry)
        self._depth += len(messages)
        if self._depth >= self.max_queue:
            self.full = True
        if not self._woken:  # one Event.set per flush, not one per frame
            self._woken = True
            self._wake.set()

    def add_waiter(self, resume: Callable[[], None]) -> None:
        """Call ``resume`` once the queue drains under the low watermark."""
        self._waiters.append(resume)

    async def wait_space(self) -> None:
        """Wait until the queue is no longer full."""
        if not self.full:
            return
        event = asyncio.Event()
        self.add_waiter(event.set)
        await event.wait()

    def dead_letter(self, letter: DeadLetter, key: str | None = None) -> None:
        """Send one dead letter (fire and forget, flushed on stop; failures are logged)."""
        self.metrics.dead_letters.labels(letter.reason).inc()
        if self._producer is None:
            log.error("dead letter lost, producer not running: %s", letter.reason)
            return
        task = asyncio.ensure_future(self._send_dead(letter, key))
        self._dead_inflight.add(task)
        task.add_done_callback(self._dead_inflight.discard)

    async def _send_dead(self, letter: DeadLetter, key: str | None) -> None:
        assert self._producer is not None
        try:
            fut = await self._producer.send(self.deadletter_topic, encode(letter),
                                            key=key.encode() if key else None)
            await fut
        except Exception:
            log.exception("dead letter (%s) not accepted by Kafka", letter.reason)

    # -- flushing
    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._woken = False
            if self.linger_s and not self._closing:
                await asyncio.sleep(self.linger_s)
            try:
                await self._drain()
            except Exception:  # the flush loop must outlive any bug, or every socket stalls
                log.exception("publisher drain failed")
            if self._closing and not self._pending and not self._pending_parts:
                return

    def _partition(self, key: str) -> int:
        p = self._partition_of.get(key)
        if p is None:
            from aiokafka.partitioner import murmur2

            # the producer's default partitioner: same partition as a per-key record
            p = self._partitions[(murmur2(key.encode()) & 0x7FFFFFFF) % len(self._partitions)]
            self._partition_of[key] = p
        return p

    async def _drain(self) -> None:
        """Send everything pending: one record batch per partition, one envelope per key."""
        pending, self._pending = self._pending, {}
        parts, self._pending_parts = self._pending_parts, {}
        by_part: dict[int, list[tuple[str, list[_Entry]]]] = {}
        if self.envelope_by == "partition":
            # submissions queued by key (before the partitions were known) go first
            for key, entries in pending.items():
                groups = by_part.setdefault(self._partition(key), [])
                if groups:
                    groups[0][1].extend(entries)
                else:
                    groups.append((key, list(entries)))
            for partition, (key, entries) in parts.items():
                groups = by_part.setdefault(partition, [])
                if groups:
                    groups[0][1].extend(entries)
                else:
                    groups.append((key, entries))
        else:
            for key, entries in pending.items():
                by_part.setdefault(self._partition(key), []).append((key, entries))
        for partition, groups in by_part.items():
            await self._send_partition(partition, groups)

    def _chunks(self, entries: list[_Entry]) -> list[list[_Entry]]:
        chunks: list[list[_Entry]] = []
        chunk: list[_Entry] = []
        n = 0
        for entry in entries:
            chunk.append(entry)
            n += len(entry[0])
            if n >= self.max_envelope:
                chunks.append(chunk)
                chunk, n = [], 0
        if chunk:
            chunks.append(chunk)
        return chunks

    async def _send_partition(self, partition: int, groups: list[tuple[str, list[_Entry]]]
                              ) -> None:
        """Append every envelope of ``groups`` to record batches for ``partition`` and send them.

        One batch (one produce request entry, one delivery future) carries
        many keys' envelopes: the per-record cost of ``producer.send`` is
        what limits a gateway with thousands of devices otherwise.
        """
        producer = self._producer
        assert producer is not None
        batch = producer.create_batch()
        in_batch: list[_Entry] = []
        max_envelope = self.max_envelope
        for key, entries in groups:
            kb = key.encode()
            if len(entries) == 1 and len(entries[0][0]) <= max_envelope:
                chunks = [entries]  # the common case: one submission under this key
            else:
                chunks = self._chunks(entries)
            for chunk in chunks:
                try:
                    if len(chunk) == 1:
                        value = encode_messages(chunk[0][0])
                    else:
                        value = encode_messages([m for entry in chunk for m in entry[0]])
                except Exception as exc:  # never expected: fail these, keep the rest going
                    log.exception("telemetry envelope for key %r not encodable", key)
                    self._complete(chunk, exc)
                    continue
                if batch.append(key=kb, value=value, timestamp=None) is None:
                    if in_batch:
                        await self._send_batch(batch, partition, in_batch)
                    batch, in_batch = producer.create_batch(), []
                    if batch.append(key=kb, value=value, timestamp=None) is None:
                        await self._send_one(kb, value, partition, chunk)  # larger than a batch
                        batch = producer.create_batch()
                        continue
                in_batch.extend(chunk)
        if in_batch:
            await self._send_batch(batch, partition, in_batch)

    async def _send_batch(self, batch: Any, partition: int, entries: list[_Entry]) -> None:
        assert self._producer is not None
        try:
            delivery = await self._producer.send_batch(batch, self.topic, partition=partition)
        except Exception as exc:
            log.error("telemetry batch for partition %d not queued: %s", partition, exc)
            self._complete(entries, exc)
            return
        delivery.add_done_callback(lambda f: self._complete(entries, self._error_of(f)))

    async def _send_one(self, key: bytes, value: bytes, partition: int,
                        entries: list[_Entry]) -> None:
        assert self._producer is not None
        try:
            delivery = await self._producer.send(self.topic, value, key=key, partition=partition)
        except Exception as exc:
            log.error("telemetry envelope of %d bytes not queued: %s", len(value), exc)
            self._complete(entries, exc)
            return
        delivery.add_done_callback(lambda f: self._complete(entries, self._error_of(f)))

    @staticmethod
    def _error_of(f: asyncio.Future[object]) -> BaseException | None:
        if f.cancelled():
            return RuntimeError("send cancelled")
        return f.exception()

    def _complete(self, chunk: list[_Entry], exc: BaseException | None) -> None:
        now = time.monotonic()
        n = 0
        hist = self.metrics.publish_latency
        counts, bounds, total = hist.counts, hist.bounds, 0.0
        for messages, done, received in chunk:
            n += len(messages)
            try:
                done(exc)
            except Exception:
                log.exception("publish completion callback failed")
            if exc is None:  # FastHistogram.observe, inlined: this runs once per frame
                latency = now - received
                counts[bisect_left(bounds, latency)] += 1
                total += latency
        hist.sum += total
        self._depth -= n
        self.full = self._depth >= self.max_queue
        self.metrics.queue_depth.set(self._depth)
        if exc is None:
            self.published += n
            self.metrics.messages.inc(n)
        else:
            self.failed += n
            self.metrics.publish_errors.inc()
            log.error("Kafka did not accept %d messages: %s", n, exc)
        if self._waiters and self._depth < self.low_watermark:
            waiters, self._waiters = self._waiters, []
            for resume in waiters:
                resume()
