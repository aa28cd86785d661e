"""The stream worker: telemetry partitions in, alert lifecycle records out.

One :class:`Worker` per process. It joins the consumer group of
``wardstream.telemetry`` and owns, for every partition assigned to it, one
geofence :class:`~geofence.engine.Engine` holding the per-person state of the
persons keyed to that partition (plain in-process structures, no Faust
tables). Each poll returns a batch per partition; the batch is decoded
(batched envelopes), evaluated by the engine in one call, timers are advanced
to the partition's watermark, and the records are published to
``wardstream.alerts`` keyed by alert_id (acks=all, no idempotence: the Tansu
test broker rejects InitProducerId).

Why aiokafka and not Faust agents: docs/stream.md, "Why not Faust agents".
In short, correct recovery needs (1) committing a partition's offset only up
to the input its last snapshot covers, (2) seeking a newly assigned partition
to its snapshot's offset before any record is processed, and (3) reading the
control topics whole on every worker; Faust commits acknowledged offsets on
its own schedule and at every rebalance, exposes none of the three, and its
exactly_once mode needs transactions, which Tansu rejects.

This module holds the worker's lifecycle and the per-batch path (consume,
decode, re-key, evaluate, advance timers). The rest of the worker lives next
to it as plain functions taking the worker:

- :mod:`stream.partition`: what the worker holds per partition;
- :mod:`stream.rebalance`: revoke (snapshot, park) and assign (restore, seek);
- :mod:`stream.publishing`: alert records, device commands, dead letters;
- :mod:`stream.snapshots`: capturing a partition's state and writing it;
- :mod:`stream.timers`: idle watermarks, snapshots on schedule, gauges;
- :mod:`stream.reload`: order and zone changes from the control topics.

Recovery and hot reload are described in :mod:`stream.recovery`,
:mod:`stream.control` and docs/stream.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from geofence.engine import EngineConfig, ProcessResult, batch_watermark
from geofence.model import (
    AlertRecord,
    DeadLetter,
    Order,
    Telemetry,
    TelemetryDecoder,
    VideoHit,
    dead_letters,
    encode,
    format_ts,
)
from geofence.zones import ZoneCatalogue
from stream.control import ControlChanges, ControlReader
from stream.errors import StreamError
from stream.keying import Router
from stream.metrics import MetricsServer, WorkerMetrics
from stream.partition import PartitionState
from stream.publishing import (
    GEOFENCE_KINDS,
    LIVE_WINDOW_MS,
    dead_letter,
    one_line,
    publish,
    raw_text,
)
from stream.rebalance import Rebalance
from stream.reload import (
    apply_changes_to_catalogue,
    apply_control,
    control_loop,
    dead_letter_control,
)
from stream.repartition import (
    MAX_HOPS,
    REROUTED_HEADER,
    Alignment,
    origin_of,
    project_keyed,
    record_arrival,
    rekeyed,
    split,
)
from stream.settings import Settings
from stream.snapshots import snapshot
from stream.timers import timer_loop
from stream.topics import (
    ALERTS,
    SNAPSHOTS,
    TELEMETRY,
    ensure_topics,
    topic_specs,
)

__all__ = [
    "FALLBACK_LOG",
    "GEOFENCE_KINDS",
    "LIVE_WINDOW_MS",
    "MAX_CLOCK_SKEW_MS",
    "PartitionState",
    "Worker",
]

log = logging.getLogger(__name__)
FALLBACK_LOG = "retrying one message at a time"
"""Logged (and counted in ``wardstream_worker_batch_fallbacks_total``) when a
batch fails in the engine and is evaluated message by message instead."""

MAX_CLOCK_SKEW_MS = 60_000
"""Event times further than this ahead of the wall clock do not move a watermark."""


def _wall_ms() -> int:
    return int(time.time() * 1000)


class Worker:
    """A stream worker (start, run, stop), mode-style.

    Parameters
    ----------
    bootstrap : str
        Kafka bootstrap servers.
    zones : ZoneCatalogue
        Zones from the ``--zones`` file (control-topic changes apply on top).
    orders : sequence of Order
        Orders from the ``--orders`` file (control-topic changes apply on top).
    settings : Settings
        Partitions, group, snapshot interval, watermark guard, ...
    web_port : int or None
        Port of ``/metrics``; ``None`` serves no web port, 0 picks a free one.
    engine_config : EngineConfig, optional
        Defaults from ``settings`` (lateness, face-match confidence).
    """

    def __init__(
        self,
        bootstrap: str,
        zones: ZoneCatalogue,
        orders: Sequence[Order],
        settings: Settings | None = None,
        *,
        web_port: int | None = None,
        web_host: str = "127.0.0.1",
        engine_config: EngineConfig | None = None,
        max_records: int = 20_000,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.bootstrap = bootstrap
        self.zones = zones
        self.orders: dict[str, Order] = {o.person_id: o for o in orders}
        self.config = engine_config or EngineConfig(
            lateness_ms=self.settings.lateness_s * 1000,
            face_match_min_confidence=self.settings.face_match_min_confidence,
        )
        self.metrics = WorkerMetrics()
        self.decoder = TelemetryDecoder(max_batch=self.settings.max_batch,
                                        max_bytes=self.settings.max_payload_bytes,
                                        max_future_ms=self.settings.future_skew_s * 1000)
        self.max_records = max_records
        self._web = (MetricsServer(self.metrics, web_host, web_port, self.is_ready)
                     if web_port is not None else None)
        self._parts: dict[int, PartitionState] = {}
        self._parked: dict[int, PartitionState] = {}
        self._lock = asyncio.Lock()
        self._inflight: list[asyncio.Future[Any]] = []
        self._alerts_high: dict[int, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._fatal: BaseException | None = None
        self._ready = False
        self._open_kinds: set[str] = set()
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: AIOKafkaConsumer | None = None
        self._control: ControlReader | None = None
        self.partitions = 0
        self.alerts_partitions: list[int] = []
        self.router: Router | None = None
        self._align = Alignment(TELEMETRY, self.config.lateness_ms, self.decoder)
        self.clock: Callable[[], int] = _wall_ms
        """Epoch ms of the wall clock, which random check-in requests follow."""

    # ------------------------------------------------------------------ lifecycle

    @property
    def web_port(self) -> int | None:
        """The bound web port (after :meth:`start`)."""
        return self._web.port if self._web is not None else None

    def is_ready(self) -> bool:
        """Joined the group and restored every assigned partition."""
        return self._ready

    def assigned(self) -> list[int]:
        """Telemetry partitions this worker owns now."""
        return sorted(self._parts)

    def _gc_callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_t0 = time.perf_counter()
        elif self._gc_t0:
            self.metrics.gc_pause.labels(str(info.get("generation", "?"))).observe(
                time.perf_counter() - self._gc_t0)

    async def start(self) -> None:
        """Create topics, load control state, join the group, start the loops."""
        s = self.settings
        self._gc_t0 = 0.0
        gc.callbacks.append(self._gc_callback)
        await ensure_topics(self.bootstrap, topic_specs(s))
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=False,
            linger_ms=2, max_request_size=4 * 1024 * 1024, max_batch_size=512 * 1024,
        )
        await self._producer.start()
        self.partitions = len(await self._producer.partitions_for(TELEMETRY))
        self.alerts_partitions = sorted(await self._producer.partitions_for(ALERTS))
        snap_parts = len(await self._producer.partitions_for(SNAPSHOTS))
        if snap_parts < self.partitions:
            raise StreamError(f"{SNAPSHOTS} has {snap_parts} partitions, fewer than the"
                              f" {self.partitions} of {TELEMETRY}; add partitions to it")
        self._control = ControlReader(self.bootstrap)
        initial = await self._control.start()
        apply_changes_to_catalogue(self, initial)
        await dead_letter_control(self, initial)
        self.router = Router.build(self.orders.values(), self.partitions)
        self._reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                        enable_auto_commit=False, auto_offset_reset="earliest",
                                        fetch_max_wait_ms=20,
                                        max_partition_fetch_bytes=8 * 1024 * 1024)
        await self._reader.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=s.worker_group,
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=max(100, s.session_timeout_ms // 5),
            rebalance_timeout_ms=max(s.session_timeout_ms, 30_000),
            max_poll_interval_ms=300_000,
            # Tansu answers a fetch only when max wait expires, new data or not:
            # a short wait bounds the added latency (Kafka returns early anyway)
            fetch_max_wait_ms=20,
            max_partition_fetch_bytes=s.max_payload_bytes + 65536,
            fetch_max_bytes=max(52_428_800, s.max_payload_bytes + 65536),
        )
        await self._consumer.start()
        self._consumer.subscribe([TELEMETRY], listener=Rebalance(self))
        if self._web is not None:
            await self._web.start()
        self._tasks = [
            asyncio.create_task(self._consume_loop(), name="consume"),
            asyncio.create_task(timer_loop(self), name="timers"),
            asyncio.create_task(control_loop(self), name="control"),
        ]
        log.info("worker started: %d telemetry partitions, group %s", self.partitions,
                 s.worker_group)

    async def wait_stopped(self) -> None:
        """Block until :meth:`stop` is called or a loop fails (then re-raise)."""
        stop = asyncio.create_task(self._stopping.wait())
        done, _ = await asyncio.wait([stop, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
        if stop not in done:
            stop.cancel()
            for t in done:
                exc = t.exception()
                if exc is not None:
                    raise exc
        if self._fatal is not None:
            raise self._fatal

    async def stop(self) -> None:
        """Snapshot every partition, commit, leave the group, disconnect."""
        self._stopping.set()
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._gc_callback)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        if self._consumer is not None:
            if self._fatal is None:
                async with self._lock:
                    for ps in list(self._parts.values()):
                        with contextlib.suppress(Exception):
                            await snapshot(self, ps)
            await self._consumer.stop()
        for closer in (self._reader, self._control, self._producer, self._web):
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer.stop()
        self._consumer = None

    def _fail(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc
            log.error("worker stopping: %s", exc)
        self._stopping.set()

    # ------------------------------------------------------------------ consuming

    async def _consume_loop(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        while not self._stopping.is_set():
            held = self._align.pending()
            try:
                data = await consumer.getmany(timeout_ms=self._align.poll_timeout_ms(100),
                                              max_records=self.max_records)
            except KafkaError:
                log.exception("fetch failed; retrying")
                await asyncio.sleep(0.5)
                continue
            if not data and not held:
                continue
            if held:
                await asyncio.sleep(0)  # a poll of buffered data may not yield
            async with self._lock:
                assert self.router is not None
                data = self._align.align(
                    data, {p: ps.next_offset for p, ps in self._parts.items()}, consumer,
                    self.router, time.monotonic())
                for tp, msgs in data.items():
                    ps = self._parts.get(tp.partition)
                    if ps is None or tp.topic != TELEMETRY:
                        continue
                    try:
                        await self._process(ps, tp, msgs)
                    except KafkaError:
                        raise  # publishing failed: restart from the last snapshot
                    except Exception as exc:
                        await self._skip_batch(ps, msgs, exc)

    async def _skip_batch(self, ps: PartitionState, msgs: list[Any],
                          exc: Exception) -> None:
        """A failure no single message could be blamed for: dead-letter the batch
        as ``internal_error`` and go on after it rather than fail again on restart."""
        log.exception("partition %d: handling offsets %d..%d failed; dead-lettering them",
                      ps.partition, msgs[0].offset, msgs[-1].offset)
        at = format_ts(int(time.time() * 1000))
        detail = one_line(exc)
        await dead_letter(self, [
            DeadLetter("internal_error", raw_text(r.value), f"telemetry:{ps.partition}@{r.offset}",
                       detail, at)
            for r in msgs if r.offset >= ps.next_offset])
        ps.next_offset = max(ps.next_offset, msgs[-1].offset + 1)
        ps.last_input = time.monotonic()
        ps.dirty = True

    async def _process(self, ps: PartitionState, tp: TopicPartition, msgs: list[Any]) -> None:
        assert self._consumer is not None
        m = self.metrics
        p = ps.partition
        for r in msgs:
            if r.offset < ps.next_offset:  # already processed: no decoded copy to keep
                self._align.take(p, r.offset)
        msgs = [r for r in msgs if r.offset >= ps.next_offset]
        if not msgs:
            return
        if msgs[0].offset > ps.next_offset:
            log.warning("partition %d: offsets %d..%d are gone (retention); continuing at %d",
                        p, ps.next_offset, msgs[0].offset - 1, msgs[0].offset)
        if ps.ledger is not None and ps.ledger_until is None:
            ps.ledger_until = self._consumer.highwater(tp)
        batch: list[Telemetry] = []
        origin: dict[int, int] = {}
        now_ms = int(time.time() * 1000)
        hops: dict[int, int] = {}
        rekey: set[int] = set()
        for rec in msgs:
            source = f"telemetry:{p}@{rec.offset}"
            via = origin_of(rec.headers)
            if rec.value is None:
                await dead_letter(self, [DeadLetter("empty_payload", "", source,
                                                    "telemetry message has no value",
                                                    format_ts(now_ms))])
                continue
            # arrival: the record's timestamp, never later than now (a producer
            # clock ahead must not widen the window)
            arrival = record_arrival(rec.timestamp, now_ms)
            try:
                decoded = self._align.take(p, rec.offset)
                if decoded is None:
                    decoded = self.decoder.decode(rec.value, arrival)
            except Exception as exc:
                log.exception("partition %d: decoding offset %d failed", p, rec.offset)
                await dead_letter(self, [DeadLetter("internal_error", raw_text(rec.value),
                                                    source, one_line(exc),
                                                    format_ts(now_ms))])
                continue
            if via is None and decoded.messages and self.router is not None \
                    and not project_keyed(rec.key, decoded.messages[0], self.router):
                rekey.update(id(x) for x in decoded.messages)
            if decoded.rejected:
                await dead_letter(self, dead_letters(decoded.rejected, source))
            taken = decoded.messages
            if via is not None:
                # drop what a copy re-keyed again after its source's crash repeats
                new = ps.seen.take(via, len(taken))
                taken = [x for x, n in zip(taken, new, strict=True) if n]
                m.fixes_in.labels("duplicate").inc(len(new) - len(taken))
            for msg in taken:
                origin[id(msg)] = rec.offset
                if via is not None:
                    hops[id(msg)] = via.hops
            batch.extend(taken)
        batch = await self._repartition(p, batch, hops, rekey, origin, msgs[-1].offset)
        records: list[AlertRecord] = []
        if batch:
            t0 = time.perf_counter()
            failed = 0
            try:
                result = ps.engine.process(batch)
            except Exception:
                # an engine failure must not block the partition: isolate the culprit
                persons = ps.engine.persons_of(batch)
                m.batch_fallbacks.inc()
                log.exception("partition %d: evaluating a batch of %d failed; " + FALLBACK_LOG
                              + "; persons (%d): %s", p, len(batch),
                              len(persons), ", ".join(persons[:50])
                              + (" ..." if len(persons) > 50 else ""))
                result, failed = await self._one_by_one(ps, batch, origin)
            records.extend(result.records)
            unknown_ids = {id(u) for u in result.unknown}
            known = [x for x in batch if id(x) not in unknown_ids] if unknown_ids else batch
            top = batch_watermark(known)
            if top >= 0:
                # a device clock far ahead must not fire everyone's timers
                top = min(top, int(time.time() * 1000) + MAX_CLOCK_SKEW_MS)
                ps.max_ts = top if ps.max_ts is None else max(ps.max_ts, top)
                records.extend(self._advance(ps, ps.max_ts))
            m.eval_seconds.observe(time.perf_counter() - t0)
            m.batch_size.observe(len(batch))
            if result.unknown:
                await dead_letter(self, self._unknown(p, result.unknown, origin))
            m.fixes_in.labels("duplicate").inc(result.duplicates)
            m.fixes_in.labels("late").inc(result.late)
            m.fixes_in.labels("too_late").inc(result.too_late)
            m.fixes_in.labels("ignored").inc(result.ignored)
            evaluated = (len(batch) - len(result.unknown) - result.duplicates - result.late
                         - result.too_late - result.ignored - failed)
            if evaluated < 0:  # the engine's counts overlap: say so, never stop on it
                log.error("partition %d: counts exceed the batch of %d (unknown %d,"
                          " duplicate %d, late %d, too late %d, ignored %d, failed %d)", p,
                          len(batch), len(result.unknown), result.duplicates, result.late,
                          result.too_late, result.ignored, failed)
                evaluated = 0
            m.fixes_in.labels("evaluated").inc(evaluated)
        ps.next_offset = msgs[-1].offset + 1
        ps.last_input = time.monotonic()
        ps.dirty = True
        await publish(self, ps, records, f"{p}@{msgs[-1].offset}")
        if ps.ledger is not None and ps.ledger_until is not None \
                and ps.next_offset >= ps.ledger_until:
            ps.ledger = None  # past every input processed before the restore

    async def _repartition(self, p: int, batch: list[Telemetry], hops: dict[int, int],
                           rekey: set[int], origin: dict[int, int],
                           last_offset: int) -> list[Telemetry]:
        """Re-key the messages of other partitions to their owners; return this
        partition's share (see :mod:`stream.repartition`)."""
        assert self._producer is not None and self.router is not None
        if not batch:
            return batch
        sp = split(self.router, p, batch, hops, rekey)
        if sp.away:
            self._align.touch(time.monotonic())
        for home, moving in sp.away.items():
            hop = 1 + max(hops.get(id(x), 0) for x in moving)
            key = self.router.key_of(moving[0]).encode()
            for env, where in rekeyed(moving, [origin[id(x)] for x in moving], p, last_offset,
                                      hop, self.settings.max_batch,
                                      self.settings.max_payload_bytes):
                fut = await self._producer.send(TELEMETRY, env, key=key, partition=home,
                                                headers=[(REROUTED_HEADER, where.header())])
                self._inflight.append(fut)  # the snapshot that commits `p` waits for it
            self.metrics.fixes_in.labels("rerouted").inc(len(moving))
        if sp.looping:
            await dead_letter(self, self._unknown(p, sp.looping, origin))
        return sp.local

    async def _one_by_one(self, ps: PartitionState, batch: Sequence[Telemetry],
                          origin: dict[int, int]) -> tuple[ProcessResult, int]:
        """Evaluate messages singly; dead-letter the ones the engine fails on."""
        total = ProcessResult()
        failed = 0
        at = format_ts(int(time.time() * 1000))
        for msg in batch:
            try:
                one = ps.engine.process([msg])
            except Exception as exc:
                source = f"telemetry:{ps.partition}@{origin.get(id(msg), -1)}"
                await dead_letter(self, [DeadLetter("processing_error", encode(msg).decode(),
                                                    source, f"engine failed: {exc!r}"[:512],
                                                    at)])
                failed += 1
                continue
            total.records.extend(one.records)
            total.unknown.extend(one.unknown)
            total.duplicates += one.duplicates
            total.late += one.late
            total.too_late += one.too_late
            total.ignored += one.ignored
        return total, failed

    def _advance(self, ps: PartitionState, watermark: int) -> list[AlertRecord]:
        if ps.watermark is not None and watermark <= ps.watermark:
            return []
        ps.watermark = watermark
        self.metrics.watermark.labels(str(ps.partition)).set(watermark)
        try:
            return ps.engine.advance(watermark)
        except Exception:
            log.exception("partition %d: advancing timers to %d failed", ps.partition,
                          watermark)
            return []

    def _unknown(self, p: int, unknown: Sequence[Telemetry],
                 origin: dict[int, int]) -> list[DeadLetter]:
        assert self.router is not None
        at = format_ts(int(time.time() * 1000))
        out: list[DeadLetter] = []
        for msg in unknown:
            if isinstance(msg, VideoHit):
                known = msg.person_id is not None and msg.person_id in self.router.person_key
                who = f"camera {msg.camera_id!r} person {msg.person_id!r}"
            else:
                known = msg.device_id in self.router.device_person
                who = f"device {msg.device_id!r}"
            home = self.router.partition_of_message(msg) if known else p
            if known and home != p:  # re-keyed MAX_HOPS times while orders kept moving it
                reason = "misrouted"
                detail = (f"{who} belongs to partition {home} but arrived on {p}"
                          f" after {MAX_HOPS} re-keyings")
            elif known:  # on its own partition, but its order is not in force at `ts`
                reason = "unknown_device"
                detail = f"{who}: its order is not active at {format_ts(msg.ts)}"
            else:
                reason = "unknown_device"
                detail = f"{who}: no active order names it"
            source = f"telemetry:{p}@{origin.get(id(msg), -1)}"
            out.append(DeadLetter(reason, encode(msg).decode(), source, detail, at))
        return out

    async def apply_control(self, changes: ControlChanges) -> None:
        """Apply order and zone changes to every partition engine this worker owns."""
        await apply_control(self, changes)
