"""The command-centre service: store, sinks, escalation, outbox and live hub.

One :class:`Service` owns everything the API needs and starts and stops its
children with it (mode-style): the PostgreSQL pool (migrated on start), the
Kafka producer, the sinks (``wardstream.alerts`` -> alert store,
``wardstream.telemetry`` -> track and check-in stores, orders and zones ->
control store), the outbox relay that publishes the API's own lifecycle and
control records, the escalator, the retention job of tracks and check-ins
and the live hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
from aiokafka import AIOKafkaProducer, ConsumerRecord

from alerts.checkins import CheckinStore
from alerts.db import Clock, create_pool, system_clock, utc
from alerts.escalation import Escalator, parse_policy
from alerts.live import LiveHub
from alerts.metrics import Metrics
from alerts.sink import KafkaSink
from alerts.store import apply_records, decode_record, record_json, risk_of
from alerts.tracks import TrackStore
from geofence.model import CheckIn, DeadLetter, Fix, TelemetryDecoder, encode, format_ts
from stream.repartition import origin_of
from stream.settings import Settings
from stream.topics import ALERTS as ALERTS_TOPIC
from stream.topics import DEADLETTER as DEADLETTER_TOPIC
from stream.topics import ORDERS as ORDERS_TOPIC
from stream.topics import TELEMETRY as TELEMETRY_TOPIC
from stream.topics import ZONES as ZONES_TOPIC
from stream.topics import ensure_topics, topic_specs

log = logging.getLogger(__name__)



@dataclass
class ServiceOptions:
    """What to run besides the pool."""

    run_sinks: bool = True
    run_escalator: bool = True
    run_retention: bool = True
    alerts_group: str = "wardstream-alert-store"
    tracks_group: str = "wardstream-track-store"
    alerts_topic: str = ALERTS_TOPIC
    telemetry_topic: str = TELEMETRY_TOPIC
    deadletter_topic: str = DEADLETTER_TOPIC
    session_timeout_ms: int = 10_000
    control_group: str = "wardstream-control-store"
    orders_topic: str = ORDERS_TOPIC
    zones_topic: str = ZONES_TOPIC
    run_control_sink: bool = True


class Service:
    """Everything behind ``wardstream api``.

    Parameters
    ----------
    settings : Settings
        ``database_url``, ``database_schema``, ``kafka``, ``token_ttl_s``,
        ``track_retention_days``, ``escalation``.
    clock : callable, optional
        Wall clock in epoch ms (tests pass a controllable one).
    """

    def __init__(self, settings: Settings, clock: Clock = system_clock,
                 options: ServiceOptions | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.options = options or ServiceOptions()
        self.metrics = Metrics()
        self.hub = LiveHub()
        self.tracks = TrackStore(settings.track_retention_days)
        self.checkins = CheckinStore(settings.track_retention_days)
        self.pool: asyncpg.Pool | None = None
        self.producer: AIOKafkaProducer | None = None
        self.sinks: list[KafkaSink] = []
        self.escalator: Escalator | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._outbox_wake = asyncio.Event()
        self._decoder = TelemetryDecoder(max_batch=settings.max_batch,
                                         max_bytes=settings.max_payload_bytes)
        self._device_map: dict[str, tuple[str, str]] = {}
        self._device_map_at = 0.0
        self._db_ok = False
        self.listening = False
        self._pending_events: list[int] = []
        self._events_wake = asyncio.Event()

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Migrate and connect, then start the children."""
        s = self.settings
        self.pool = await create_pool(s.database_url, s.database_schema)
        self._db_ok = True
        if s.kafka:
            await self._ensure_topics()
            self.producer = AIOKafkaProducer(bootstrap_servers=s.kafka, acks="all",
                                             enable_idempotence=False, linger_ms=5)
            await self.producer.start()
            self._tasks.append(asyncio.create_task(self._outbox_loop(), name="outbox"))
            if self.options.run_sinks:
                self.sinks = [
                    KafkaSink("alerts", [self.options.alerts_topic], self.options.alerts_group, s.kafka,
                              self.handle_alerts, self.dead_letter, self.metrics,
                              max_records=2000, session_timeout_ms=self.options.session_timeout_ms),
                    KafkaSink("tracks", [self.options.telemetry_topic], self.options.tracks_group, s.kafka,
                              self.handle_telemetry, self.dead_letter, self.metrics,
                              max_records=2000, session_timeout_ms=self.options.session_timeout_ms),
                ]
                if self.options.run_control_sink:
                    self.sinks.append(KafkaSink(
                        "control", [self.options.orders_topic, self.options.zones_topic],
                        self.options.control_group, s.kafka, self.handle_control,
                        self.dead_letter, self.metrics, max_records=500,
                        session_timeout_ms=self.options.session_timeout_ms))
                # consumer-group joins take seconds (Tansu: half the session timeout);
                # the API serves meanwhile and /readyz says not ready until they run
                self._tasks.append(asyncio.create_task(self._start_sinks(), name="sinks-start"))
        self.hub.start()
        self._tasks.append(asyncio.create_task(self._listen_loop(), name="live-listen"))
        self._tasks.append(asyncio.create_task(self._forward_loop(), name="live-forward"))
        for _ in range(100):  # the feed should hear the first event after start (5 s at most)
            if self.listening:
                break
            await asyncio.sleep(0.05)
        if self.options.run_escalator:
            self.escalator = Escalator(self.pool, self.clock, self.metrics,
                                       parse_policy(s.escalation), on_records=self._escalated)
            self.escalator.start()
        if self.options.run_retention:
            self._tasks.append(asyncio.create_task(self._retention_loop(), name="retention"))
        self._tasks.append(asyncio.create_task(self._db_probe_loop(), name="db-probe"))

    async def _start_sinks(self) -> None:
        results = await asyncio.gather(*(sink.start() for sink in self.sinks),
                                       return_exceptions=True)
        for sink, result in zip(self.sinks, results, strict=True):
            if isinstance(result, BaseException):
                log.error("sink %s did not start: %s", sink.name, result)

    async def stop(self) -> None:
        """Stop children in reverse order."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.escalator:
            await self.escalator.stop()
        for sink in self.sinks:
            await sink.stop()
        await self.hub.stop()
        if self.producer:
            with contextlib.suppress(Exception):
                await self._publish_outbox()
            await self.producer.stop()
        if self.pool:
            await self.pool.close()

    async def _ensure_topics(self) -> None:
        o = self.options
        await ensure_topics(self.settings.kafka, topic_specs(self.settings, names={
            TELEMETRY_TOPIC: o.telemetry_topic, ALERTS_TOPIC: o.alerts_topic,
            DEADLETTER_TOPIC: o.deadletter_topic, ORDERS_TOPIC: o.orders_topic,
            ZONES_TOPIC: o.zones_topic}), partitions=False)

    # ---------------------------------------------------------------- readiness

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """``(ready, details)`` for /readyz."""
        sinks = {s.name: s.describe() for s in self.sinks}
        ready = self._db_ok and all(s.healthy for s in self.sinks)
        return ready, {"database": self._db_ok, "sinks": sinks,
                       "kafka": bool(self.settings.kafka)}

    async def _db_probe_loop(self) -> None:
        while True:
            await asyncio.sleep(2.0)
            assert self.pool is not None
            try:
                async with self.pool.acquire(timeout=3) as conn:
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), 3)
                self._db_ok = True
            except Exception:
                self._db_ok = False

    # ---------------------------------------------------------------- sinks

    async def dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: str, detail: str) -> None:
        """Send a refused Kafka record to the dead-letter topic."""
        if self.producer is None:
            return
        raw = (record.value or b"")[:4096].decode("utf-8", errors="replace")
        dl = DeadLetter(reason=reason, raw=raw, detail=detail,
                        source=f"{record.topic}:{record.partition}@{record.offset}",
                        at=format_ts(self.clock()))
        with contextlib.suppress(Exception):
            await self.producer.send_and_wait(self.options.deadletter_topic, encode(dl))

    async def handle_alerts(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Sink handler: lifecycle records -> alert store (idempotent), then live feed."""
        assert self.pool is not None
        datas: list[dict[str, Any]] = []
        bad: list[tuple[ConsumerRecord[bytes, bytes], str]] = []
        for r in records:
            try:
                datas.append(record_json(decode_record(r.value or b"")))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                bad.append((r, str(exc)))
        now = self.clock()
        async with self.pool.acquire(timeout=5) as conn, conn.transaction():
            new = await apply_records(conn, datas, now)
        for r, why in bad:
            await self.dead_letter(r, "invalid_alert_record", why)
            self.metrics.sink_records.labels("alerts", "invalid").inc()
        del new  # the live feed learns of new events from PostgreSQL (see _listen)

    async def handle_control(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Sink handler: orders and zones from the compacted control topics -> store.

        A value is the order (keyed by person_id) or the GeoJSON feature (keyed by
        zone id); a null value ends the order or removes the zone. Content equal to
        the current version creates nothing, so the API's own publications (and
        replays of the compacted topics) do not multiply versions. An invalid
        order or feature is dead-lettered, never stored.
        """
        from alerts import store
        from alerts.db import utc
        from alerts.errors import BadRequestError
        from geofence.errors import ValidationError
        from geofence.model import parse_order

        assert self.pool is not None
        now = self.clock()
        bad: list[tuple[ConsumerRecord[bytes, bytes], str]] = []
        changed_orders = False
        async with self.pool.acquire(timeout=5) as conn, conn.transaction():
            for r in records:
                key = (r.key or b"").decode("utf-8", errors="replace")
                try:
                    body = None if r.value is None else msgspec.json.decode(r.value)
                    if r.topic == self.options.orders_topic:
                        changed_orders = True
                        if body is None:
                            cur = await conn.fetchrow(
                                "SELECT version, jurisdiction, body FROM orders WHERE person_id = $1"
                                " ORDER BY version DESC LIMIT 1", key)
                            if cur is not None and cur["body"] is not None:
                                await conn.execute(
                                    "INSERT INTO orders (person_id, version, jurisdiction, body,"
                                    " created_at, created_by) VALUES ($1, $2, $3, NULL, $4, 'kafka')",
                                    key, cur["version"] + 1, cur["jurisdiction"], utc(now))
                                await conn.execute(
                                    "UPDATE devices SET valid_until = $2 WHERE person_id = $1"
                                    " AND valid_until > $2", key, utc(now))
                            continue
                        if not isinstance(body, dict):
                            raise ValidationError("wrong_type", "an order is a JSON object")
                        order = parse_order(body)
                        await store.save_order(
                            conn, body, order.jurisdiction,
                            order.valid_from if isinstance(order.valid_from, int) else None,
                            order.valid_until if isinstance(order.valid_until, int) else None,
                            order.devices, now, "kafka")
                    else:
                        if body is not None and not isinstance(body, dict):
                            raise ValidationError("wrong_type", "a zone is a GeoJSON Feature object")
                        zone_id = key or str((body or {}).get("id") or "")
                        if not zone_id:
                            raise ValidationError("missing_field", "a zone needs a key or an id")
                        if body is not None:
                            from alerts.api import validate_feature

                            validate_feature(zone_id, body)
                        props = (body or {}).get("properties") or {}
                        jur = str(props.get("jurisdiction") or "") if isinstance(props, dict) else ""
                        current = await store.zone_jurisdiction(conn, zone_id)
                        await store.save_zone(conn, zone_id, body, jur or current or "", now,
                                              "kafka")
                except (msgspec.DecodeError, ValidationError, BadRequestError) as exc:
                    bad.append((r, str(exc)))
        for r, why in bad:
            await self.dead_letter(r, "invalid_control_record", why)
            self.metrics.sink_records.labels("control", "invalid").inc()
        if changed_orders:
            self.invalidate_device_map()

    async def _push_risk(self, persons: set[str]) -> None:
        if not persons or not self.hub.clients or self.pool is None:
            return
        try:
            async with self.pool.acquire(timeout=3) as conn:
                risks = await risk_of(conn, sorted(persons), self.clock())
        except Exception as exc:
            log.debug("risk refresh skipped: %s", exc)
            return
        for pid, (colour, code) in risks.items():
            self.hub.publish({"type": "risk", "person_id": pid, "risk": colour,
                              "jurisdiction": code}, code)

    async def handle_telemetry(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Sink handler: fixes -> track store (COPY), check-ins -> check-in store,
        then live positions."""
        assert self.pool is not None
        fixes: list[Fix] = []
        checkins: list[CheckIn] = []
        for r in records:
            if origin_of(r.headers) is not None:
                continue  # a copy re-keyed to its person's partition: tracked as sent
            batch = self._decoder.decode(r.value or b"")
            for m in batch.messages:
                if isinstance(m, Fix):
                    fixes.append(m)
                elif isinstance(m, CheckIn):
                    checkins.append(m)
            if batch.rejected:  # the worker dead-letters telemetry; here they are only counted
                self.metrics.sink_records.labels("tracks", "rejected").inc(len(batch.rejected))
        if not fixes and not checkins:
            return
        now = self.clock()
        async with self.pool.acquire(timeout=5) as conn:
            expired = await self.tracks.write(conn, fixes, now)
            expired += await self.checkins.write(conn, checkins, now)
            if checkins:  # a phone supervised by check-ins is on the map where it checked in
                await self.tracks.note_positions(conn, [
                    (c.device_id, utc(c.ts), c.lat, c.lon, c.accuracy_m) for c in checkins])
            if expired:
                self.metrics.sink_records.labels("tracks", "expired").inc(expired)
            if self.hub.clients:
                await self._refresh_device_map(conn)
        if self.hub.clients:
            located: list[Fix | CheckIn] = [f for f in fixes if f.valid]
            for f in [*located, *checkins]:
                owner = self._device_map.get(f.device_id)
                if owner:
                    self.hub.position(owner[0], owner[1], {
                        "device_id": f.device_id, "ts": format_ts(f.ts), "ts_ms": f.ts,
                        "lat": f.lat, "lon": f.lon, "accuracy_m": f.accuracy_m})

    async def _refresh_device_map(self, conn: asyncpg.Connection) -> None:
        if time.monotonic() - self._device_map_at < 10.0:
            return
        rows = await conn.fetch(
            "SELECT d.device_id, d.person_id, p.jurisdiction FROM devices d"
            " JOIN persons p USING (person_id) WHERE d.valid_until > now()")
        self._device_map = {r["device_id"]: (r["person_id"], r["jurisdiction"]) for r in rows}
        self._device_map_at = time.monotonic()

    def invalidate_device_map(self) -> None:
        """Reload device -> person on the next batch (after an order change)."""
        self._device_map_at = 0.0

    # ---------------------------------------------------------------- outbox

    def wake_outbox(self) -> None:
        """Publish queued records now rather than at the next second."""
        self._outbox_wake.set()

    async def _outbox_loop(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._outbox_wake.wait(), 1.0)
            self._outbox_wake.clear()
            try:
                await self._publish_outbox()
            except Exception as exc:  # Kafka or database away: the rows wait
                log.warning("outbox publish failed: %s", exc)

    async def _publish_outbox(self) -> None:
        assert self.pool is not None and self.producer is not None
        while True:
            async with self.pool.acquire(timeout=5) as conn, conn.transaction():
                rows = await conn.fetch(
                    "SELECT id, topic, key, value FROM outbox ORDER BY id LIMIT 500"
                    " FOR UPDATE SKIP LOCKED")
                if not rows:
                    self.metrics.outbox_pending.set(0)
                    return
                topics = {ALERTS_TOPIC: self.options.alerts_topic,
                          ORDERS_TOPIC: self.options.orders_topic,
                          ZONES_TOPIC: self.options.zones_topic}
                futures = [
                    await self.producer.send(
                        topics.get(r["topic"], r["topic"]), None if r["value"] is None else encode(r["value"]),
                        key=None if r["key"] is None else r["key"].encode())
                    for r in rows
                ]
                await asyncio.gather(*futures)
                await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])",
                                   [r["id"] for r in rows])
                self.metrics.outbox_published.inc(len(rows))

    async def _escalated(self, items: list[tuple[dict[str, Any], str]]) -> None:
        self.wake_outbox()

    # ---------------------------------------------------------------- live feed

    async def _listen_loop(self) -> None:
        """Forward committed lifecycle events (NOTIFY from alert_events) to the hub.

        One dedicated connection LISTENs on ``wardstream_events_<schema>``; ids
        are batched for a few milliseconds and fetched with their alert's
        jurisdiction, then pushed to the clients in scope with the affected
        persons' new risk colours. The connection is re-opened with backoff
        when the database goes away.
        """
        channel = f"wardstream_events_{self.settings.database_schema}"
        delay = 0.5
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.settings.database_url, timeout=5)
                await conn.add_listener(channel, self._on_notify)
                self.listening = True
                delay = 0.5
                while not conn.is_closed():
                    await asyncio.sleep(1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live feed listener: %s", exc)
            finally:
                self.listening = False
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close()
            await asyncio.sleep(delay)
            delay = min(10.0, delay * 2)

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self._pending_events.append(int(payload))
            self._events_wake.set()

    async def _forward_loop(self) -> None:
        while True:
            await self._events_wake.wait()
            await asyncio.sleep(0.02)  # gather the ids of one transaction
            self._events_wake.clear()
            ids, self._pending_events = self._pending_events, []
            if not ids or self.pool is None:
                continue
            try:
                async with self.pool.acquire(timeout=5) as conn:
                    rows = await conn.fetch(
                        "SELECT e.record, a.jurisdiction, a.person_id FROM alert_events e"
                        " JOIN alerts a USING (alert_id) WHERE e.id = ANY($1::bigint[])"
                        " ORDER BY e.id", ids)
            except Exception as exc:  # database away: these ids are lost to the feed only
                log.warning("live feed fetch failed: %s", exc)
                continue
            for r in rows:
                self.hub.publish(r["record"], r["jurisdiction"])
            await self._push_risk({r["person_id"] for r in rows if r["person_id"]})

    # ---------------------------------------------------------------- retention

    async def _retention_loop(self) -> None:
        while True:
            try:
                assert self.pool is not None
                async with self.pool.acquire(timeout=5) as conn:
                    dropped = await self.tracks.drop_expired(conn, self.clock())
                    dropped += await self.checkins.drop_expired(conn, self.clock())
                if dropped:
                    log.info("track retention dropped %s", ", ".join(dropped))
                    self.metrics.track_dropped.inc(len(dropped))
            except Exception as exc:
                log.warning("track retention failed: %s", exc)
            await asyncio.sleep(3600)
