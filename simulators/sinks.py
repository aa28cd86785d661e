"""Sinks of the simulated telemetry: the real entry points a day is pushed through.

* :class:`KafkaSink`: canonical messages in batched envelopes (JSON arrays)
  keyed by :func:`geofence.engine.partition_keys` (or by device id), so one
  person's data stays on one partition, in delivery order.
* :class:`Jt808Sink`: one TCP connection per device that registers,
  authenticates and reports locations and offline backfill.
* :class:`OsmandSink`: HTTP GET requests as phone tracker apps send them,
  and identity check-ins posted to the gateway's ``POST /checkin``.
* :class:`StdoutSink`: the messages as JSON lines.

:mod:`simulators.feed` paces items into them (``pump``) and holds the
command lines; see its docstring for the protocols' details.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import defaultdict
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import msgspec

from geofence.model import Order
from stream.topics import TELEMETRY

if TYPE_CHECKING:
    from simulators.feed import Item

TOPIC = TELEMETRY
KEYINGS = ("partition", "device")
"""How :class:`KafkaSink` keys messages: the project's partition key, or the device id."""
_ENC = msgspec.json.Encoder()


# --------------------------------------------------------------------------- sinks


class KafkaSink:
    """Batched envelopes to ``wardstream.telemetry``, acks=all, bounded in-flight sends.

    Each message's Kafka key is ``partition_keys(orders)[device_id]``; its
    partition is the one Kafka's default partitioner (murmur2) gives that
    key, so single messages and envelopes of one person (or no-contact
    group) always land together. Envelopes gather consecutive messages of
    one *partition* in delivery order (the record carries the first
    message's key), and are closed at ``envelope_max`` messages, after
    ``span_ms`` of event time (so no envelope reorders the stream by more
    than that across partitions: keep it well under the 120 s lateness
    horizon) or after ``flush_every_s`` of wall time. A backfill batch
    stays one envelope, sent after whatever its partition had pending.

    ``keying="device"`` sends as a vendor platform that knows nothing of
    orders would: each message keyed by its ``device_id`` (``camera_id`` for
    video hits), on the partition Kafka's default partitioner gives that key;
    the worker re-keys what lands on another person's partition.
    """

    def __init__(self, bootstrap: str, orders: Sequence[Order], topic: str = TOPIC,
                 envelope_max: int = 200, linger_ms: int = 20, flush_every_s: float = 0.1,
                 span_ms: int = 5_000, keying: str = "partition") -> None:
        from geofence.engine import partition_keys, person_partition_keys

        if keying not in KEYINGS:
            raise ValueError(f"keying must be one of {', '.join(KEYINGS)}, not {keying!r}")
        self.bootstrap = bootstrap
        self.topic = topic
        self.keying = keying
        self.keys = partition_keys(orders)
        self.person_keys = person_partition_keys(orders)
        self.envelope_max = envelope_max
        self.linger_ms = linger_ms
        self.span_ms = span_ms
        self.producer: Any = None
        self.partitions: list[int] = []
        self._partitioner: Any = None
        self._part_of: dict[str, int] = {}
        self.pending: dict[int, list[bytes]] = {}
        self.pending_key: dict[int, bytes] = {}
        self.pending_since: dict[int, int] = {}
        self.inflight: list[Any] = []
        self.records = 0
        self.messages = 0
        self.flush_every_s = flush_every_s
        self.ends: dict[int, int] = {}  # partition -> offset after the last record sent
        self.last_flush = time.perf_counter()
        self.high_ts = 0

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer
        from aiokafka.partitioner import DefaultPartitioner

        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=False,
            linger_ms=self.linger_ms, max_batch_size=1 << 20, max_request_size=4 << 20,
        )
        if self.topic == TELEMETRY:  # this may be the first process: create as all do
            from stream.settings import Settings
            from stream.topics import ensure_topics, topic_specs

            await ensure_topics(self.bootstrap, topic_specs(Settings.from_env()), partitions=False)
        await self.producer.start()
        self.partitions = sorted(await self.producer.partitions_for(self.topic))
        self._partitioner = DefaultPartitioner()

    def key_of(self, msg: dict[str, Any]) -> str:
        """The partition key :func:`geofence.engine.message_key` gives this message
        (``keying="device"``: the device or camera id)."""
        if self.keying == "device":
            return str(msg.get("device_id") or msg.get("camera_id") or "unknown")
        if msg.get("kind") == "video_hit":
            if msg.get("event") == "face_match" and msg.get("person_id"):
                return self.person_keys.get(str(msg["person_id"]), str(msg["person_id"]))
            return "camera:" + str(msg.get("camera_id"))
        dev = str(msg.get("device_id") or "")
        return self.keys.get(dev, dev or "unknown")

    def partition_of(self, key: str) -> int:
        part = self._part_of.get(key)
        if part is None:
            part = int(self._partitioner(key.encode(), self.partitions, self.partitions))
            self._part_of[key] = part
        return part

    async def put(self, item: Item) -> None:
        if item.messages is None:  # malformed: send as is, so the worker dead-letters it
            await self._send(0, b"malformed", item.raw, 1)
            return
        if item.backfill:  # a device's backfill batch stays one envelope
            key = self.key_of(item.messages[0])
            part = self.partition_of(key)
            await self._flush_part(part)
            await self._send(part, key.encode(), _ENC.encode(item.messages), len(item.messages))
            return
        for m in item.messages:
            key = self.key_of(m)
            part = self.partition_of(key)
            ts = m.get("ts")
            if isinstance(ts, int) and ts > self.high_ts:
                self.high_ts = ts
            bucket = self.pending.get(part)
            if bucket is None:
                bucket = self.pending[part] = []
                self.pending_key[part] = key.encode()
                self.pending_since[part] = self.high_ts
            bucket.append(_ENC.encode(m))
            if len(bucket) >= self.envelope_max:
                await self._flush_part(part)
        now = time.perf_counter()
        stale = [p for p, since in self.pending_since.items() if self.high_ts - since >= self.span_ms]
        if now - self.last_flush >= self.flush_every_s:  # bound the time a fix waits
            self.last_flush = now
            stale = list(self.pending)
        for part in stale:
            await self._flush_part(part)

    async def flush(self) -> None:
        for part in list(self.pending):
            await self._flush_part(part)
        if self.inflight:
            self._note(await asyncio.gather(*self.inflight))
            self.inflight.clear()

    async def _flush_part(self, part: int) -> None:
        bucket = self.pending.pop(part, None)
        key = self.pending_key.pop(part, b"")
        self.pending_since.pop(part, None)
        if bucket:
            await self._send(part, key, b"[" + b",".join(bucket) + b"]", len(bucket))

    async def _send(self, part: int | None, key: bytes, value: bytes, n: int) -> None:
        if key == b"malformed":
            part = None  # let the default partitioner place it
        fut = await self.producer.send(self.topic, value=value, key=key, partition=part)
        self.inflight.append(fut)
        self.records += 1
        self.messages += n
        if len(self.inflight) >= 2000:
            self._note(await asyncio.gather(*self.inflight))
            self.inflight.clear()

    def _note(self, metadata: Sequence[Any]) -> None:
        for md in metadata:
            self.ends[md.partition] = max(self.ends.get(md.partition, 0), md.offset + 1)

    async def stop(self) -> None:
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.flush()
            await self.producer.stop()


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    serial: int = 0
    acks: int = 0
    sent: int = 0
    task: asyncio.Task[None] | None = None


@dataclass
class Jt808Sink:
    """One JT/T 808 terminal per device, registering and authenticating first."""

    host: str
    port: int
    version: int = 2013
    conns: dict[str, _Conn] = field(default_factory=dict)
    frames: int = 0
    messages: int = 0
    refused: int = 0
    last_pos: dict[str, tuple[float, float]] = field(default_factory=dict)
    refused_devices: set[str] = field(default_factory=set)
    hangups: int = 0
    reconnects: int = 0

    async def start(self) -> None:
        return None

    async def _connect(self, dev: str) -> _Conn | None:
        from devices import jt808
        from devices.framing import FlagFramer

        reader, writer = await asyncio.open_connection(self.host, self.port)
        conn = _Conn(reader, writer)
        framer = FlagFramer()

        async def reply() -> bytes | None:
            while True:
                data = await asyncio.wait_for(reader.read(4096), 10.0)
                if not data:
                    return None
                frames, _ = framer.feed(data)
                if frames:
                    return frames[0]

        writer.write(jt808.encode_register(dev, 0, version=self.version, terminal_id=dev[-7:]))
        await writer.drain()
        raw = await reply()
        if raw is None:
            writer.close()
            self.hangups += 1
            return None
        msg = jt808.parse_frame(raw)
        _, result, code = jt808.decode_register_response(msg.body)
        if result != 0:
            writer.close()
            self.refused += 1
            self.refused_devices.add(dev)  # not named by an active order: stop trying
            return None
        writer.write(jt808.encode_auth(dev, 1, code, version=self.version))
        await writer.drain()
        await reply()
        conn.serial = 2

        async def drain_acks() -> None:  # platform responses; counted, never block the sender
            with contextlib.suppress(Exception):
                while True:
                    data = await reader.read(65536)
                    if not data:
                        return
                    conn.acks += len(framer.feed(data)[0])

        conn.task = asyncio.create_task(drain_acks())
        return conn

    async def _conn(self, dev: str) -> _Conn | None:
        c = self.conns.get(dev)
        if c is not None and c.writer.is_closing():
            del self.conns[dev]  # the gateway hung up (e.g. the order ended): register again
            self.reconnects += 1
            c = None
        if c is None:
            if dev in self.refused_devices:
                return None
            try:
                c = await self._connect(dev)
            except (TimeoutError, OSError):
                self.hangups += 1
                c = None
            if c is None:
                return None
            self.conns[dev] = c
        return c

    def _loc(self, m: dict[str, Any], alarm: int = 0) -> dict[str, Any]:
        return {"ts_ms": int(m["ts"]), "lat": float(m["lat"]), "lon": float(m["lon"]),
                "valid": bool(m.get("valid", True)), "alarm": alarm,
                "speed_kmh": float(m.get("speed_mps") or 0.0) * 3.6,
                "battery_pct": int(m["battery_pct"]) if m.get("battery_pct") is not None else None}

    async def put(self, item: Item) -> None:
        from devices import jt808

        if item.messages is None:
            return  # JSON-level garbage has no JT/T 808 equivalent
        by_dev: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for m in item.messages:
            if "device_id" in m and _valid(m):
                by_dev[str(m["device_id"])].append(m)
        for dev, msgs in by_dev.items():
            conn = await self._conn(dev)
            if conn is None:
                continue
            frames: list[bytes] = []
            locs = []
            for m in msgs:
                if m.get("kind") == "fix":
                    self.last_pos[dev] = (float(m["lat"]), float(m["lon"]))
                    locs.append(self._loc(m))
                elif m.get("kind") == "device_event":
                    bit = _ALARM_BITS.get(str(m.get("event")))
                    if bit is None or dev not in self.last_pos:
                        continue  # no alarm bit for charging, power_on, heartbeat
                    lat, lon = self.last_pos[dev]
                    locs.append(self._loc({"ts": m["ts"], "lat": lat, "lon": lon}, 1 << bit))
            if not locs:
                continue
            if item.backfill:
                for i in range(0, len(locs), 20):
                    frames.append(jt808.encode_batch(dev, conn.serial, locs[i:i + 20], version=self.version))
                    conn.serial += 1
            else:
                for loc in locs:
                    frames.append(jt808.encode_location(dev, conn.serial, version=self.version, **loc))
                    conn.serial += 1
            conn.writer.write(b"".join(frames))
            conn.sent += len(frames)
            self.frames += len(frames)
            self.messages += len(locs)
            if conn.writer.transport.get_write_buffer_size() > 1 << 16:
                await conn.writer.drain()

    async def flush(self) -> None:
        for c in self.conns.values():
            with contextlib.suppress(Exception):
                await c.writer.drain()

    async def settle(self, timeout: float = 60.0) -> bool:
        """Wait until the gateway acknowledged every frame (it acks after Kafka took it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(c.acks >= c.sent or c.writer.is_closing() for c in self.conns.values()):
                return True
            await asyncio.sleep(0.1)
        return False

    async def stop(self) -> None:
        await self.flush()
        await self.settle()
        for c in self.conns.values():
            if c.task is not None:
                c.task.cancel()
            c.writer.close()
        self.conns.clear()


_CHECK = None


def _valid(m: dict[str, Any]) -> bool:
    """Whether a message passes the contract's validation (the rest has no device equivalent)."""
    global _CHECK
    if _CHECK is None:
        from geofence.model import TelemetryDecoder

        _CHECK = TelemetryDecoder(now_ms=lambda: 2**50)
    return not _CHECK.decode(_ENC.encode(m)).rejected


_ALARM_BITS = {"sos": 0, "power_off": 8, "removed": 16, "tamper": 17, "battery_low": 18}


@dataclass
class OsmandSink:
    """OsmAnd HTTP GET clients (one keep-alive session, ``concurrency`` in flight); check-ins
    go to ``POST /checkin`` on the same server."""

    url: str
    concurrency: int = 64
    keys: Mapping[str, str] = field(default_factory=dict)
    """Device key by device id, sent as ``key=`` (what a gateway with provisioning requires)."""
    session: Any = None
    sem: asyncio.Semaphore | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    messages: int = 0
    errors: int = 0

    async def start(self) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession()
        self.sem = asyncio.Semaphore(self.concurrency)

    async def _request(self, method: str, url: str, **kw: Any) -> None:
        """One request; a refusal (status 400 or more) or a failure counts as an error."""
        assert self.sem is not None
        try:
            async with self.session.request(method, url, **kw) as resp:
                await resp.read()
                if resp.status >= 400:
                    self.errors += 1
        except Exception:
            self.errors += 1
        finally:
            self.sem.release()

    async def put(self, item: Item) -> None:
        if item.messages is None:
            return
        for m in item.messages:
            if m.get("kind") == "checkin" and _valid(m):
                key = self.keys.get(str(m["device_id"]))
                auth = {"Authorization": f"Bearer {key}"} if key is not None else {}
                await self._send(self._request(
                    "POST", urljoin(self.url, "/checkin"), data=_ENC.encode(m),
                    headers={**auth, "Content-Type": "application/json"}))
                continue
            if m.get("kind") != "fix" or not _valid(m):
                continue
            params = {"id": str(m["device_id"]), "timestamp": str(m["ts"]), "lat": repr(m["lat"]),
                      "lon": repr(m["lon"]), "accuracy": repr(m.get("accuracy_m", 10.0))}
            if m.get("battery_pct") is not None:
                params["batt"] = str(m["battery_pct"])
            if m.get("speed_mps") is not None:
                params["speed"] = repr(m["speed_mps"])
            if m.get("valid") is False:
                params["valid"] = "false"
            key = self.keys.get(params["id"])
            if key is not None:
                params["key"] = key
            await self._send(self._request("GET", self.url, params=params))

    async def _send(self, request: Coroutine[Any, Any, None]) -> None:
        """Run one request once fewer than ``concurrency`` are in flight."""
        assert self.sem is not None
        await self.sem.acquire()
        t = asyncio.create_task(request)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)
        self.messages += 1

    async def flush(self) -> None:
        if self.tasks:
            await asyncio.gather(*list(self.tasks))

    async def stop(self) -> None:
        await self.flush()
        if self.session is not None:
            await self.session.close()


class StdoutSink:
    """Lines to stdout (event-time shifted, paced): for pipes and inspection."""

    messages = 0

    async def start(self) -> None:
        return None

    async def put(self, item: Item) -> None:
        if item.messages is None:
            sys.stdout.buffer.write(item.raw + b"\n")
            self.messages += 1
            return
        body = item.messages if item.backfill else item.messages[0]
        sys.stdout.buffer.write(_ENC.encode(body) + b"\n")
        self.messages += item.count

    async def flush(self) -> None:
        sys.stdout.flush()

    async def stop(self) -> None:
        await self.flush()
