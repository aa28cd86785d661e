"""Push simulated telemetry through the real entry points.

Sinks
-----
* Kafka: canonical messages in batched envelopes (JSON arrays) keyed by
  :func:`geofence.engine.partition_keys`, so one person's (and one
  no-contact group's) data stays on one partition, in delivery order.
* JT/T 808: one TCP connection per device that registers (0x0100),
  authenticates (0x0102) and reports locations (0x0200) and offline
  backfill (0x0704), built with :mod:`devices.jt808`'s encoders. JT/T 808
  carries no accuracy and whole-second times: the gateway assumes its own
  default accuracy, so accuracy-dependent scenarios (jitter, outliers) do
  not survive this path unchanged (see docs/simulators.md).
* OsmAnd: HTTP GET requests as phone tracker apps send them (``id``,
  ``timestamp`` in ms, ``lat``, ``lon``, ``accuracy``, ``batt``); a phone's
  identity check-in is posted to the gateway's ``POST /checkin`` as the
  supervision app sends it (JSON body, ``Authorization: Bearer <key>``).

Pacing
------
``--rate R`` sends R telemetry messages per second (token bucket, checked
every few milliseconds); ``--speedup X`` follows the messages' own event
times X times faster than real time; neither sends as fast as possible.
``--event-time wall`` shifts every timestamp by one constant so that the
first message is stamped with the wall clock at start (durations are kept,
so dwell and signal-loss semantics do not change).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from geofence.model import Order, parse_orders
from stream.topics import TELEMETRY

TOPIC = TELEMETRY
KEYINGS = ("partition", "device")
"""How :class:`KafkaSink` keys messages: the project's partition key, or the device id."""
_DEC = msgspec.json.Decoder()
_ENC = msgspec.json.Encoder()


# --------------------------------------------------------------------------- items


@dataclass
class Item:
    """One line of telemetry: its messages (parsed) or the raw bytes when malformed."""

    raw: bytes
    messages: list[dict[str, Any]] | None
    backfill: bool = False

    @property
    def count(self) -> int:
        return 1 if self.messages is None else len(self.messages)


def parse_line(line: bytes) -> Item:
    """Split a telemetry line into messages (any well-formed JSON object or array)."""
    try:
        obj = _DEC.decode(line)
    except msgspec.DecodeError:
        return Item(line, None)
    if isinstance(obj, dict) and ("device_id" in obj or "camera_id" in obj):
        return Item(line, [obj])
    if isinstance(obj, list) and obj and all(isinstance(o, dict) for o in obj):
        return Item(line, obj, backfill=True)
    return Item(line, None)


def read_items(path: str) -> Iterator[Item]:
    """Items of a JSONL file, in file (delivery) order."""
    with open(path, "rb") as f:
        for line in f:
            line = line.rstrip(b"\n")
            if line:
                yield parse_line(line)


def shift_ts(item: Item, offset_ms: int) -> Item:
    """The same item with every integer ``ts`` moved by ``offset_ms``."""
    if item.messages is None or offset_ms == 0:
        return item
    msgs = []
    for m in item.messages:
        if isinstance(m.get("ts"), int):
            m = {**m, "ts": m["ts"] + offset_ms}
        msgs.append(m)
    return Item(b"", msgs, item.backfill)


def item_ts(item: Item) -> int | None:
    """Largest integer ``ts`` of an item (None when it has none)."""
    if item.messages is None:
        return None
    ts = [m["ts"] for m in item.messages if isinstance(m.get("ts"), int)]
    return max(ts) if ts else None


# --------------------------------------------------------------------------- pacing


class Pacer:
    """Token bucket: ``await take(n)`` returns when ``n`` more messages are allowed.

    The schedule is absolute (``start + sent / rate``), so small sleeps that
    overshoot do not accumulate into a lower rate.
    """

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.start = time.perf_counter()
        self.sent = 0

    async def take(self, n: int) -> None:
        if self.rate is None or self.rate <= 0:
            self.sent += n
            return
        due = self.start + self.sent / self.rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        self.sent += n


class Clock:
    """Follows event time: item with ts T is due at ``wall0 + (T - t0) / speedup``."""

    def __init__(self, speedup: float) -> None:
        self.speedup = speedup
        self.t0: int | None = None
        self.wall0 = time.perf_counter()
        self.high = -1

    async def wait_for(self, ts: int | None) -> None:
        if ts is None:
            return
        if self.t0 is None:
            self.t0 = ts
            self.wall0 = time.perf_counter()
        self.high = max(self.high, ts)  # backfill (old ts) does not pull the clock back
        due = self.wall0 + (self.high - self.t0) / 1000.0 / self.speedup
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)


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

    async def _get(self, params: dict[str, str]) -> None:
        assert self.sem is not None
        try:
            async with self.session.get(self.url, params=params) as resp:
                await resp.read()
                if resp.status >= 400:
                    self.errors += 1
        except Exception:
            self.errors += 1
        finally:
            self.sem.release()

    async def _post_checkin(self, body: dict[str, Any], key: str | None) -> None:
        assert self.sem is not None
        from urllib.parse import urljoin

        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        try:
            async with self.session.post(urljoin(self.url, "/checkin"), data=_ENC.encode(body),
                                         headers={**headers,
                                                  "Content-Type": "application/json"}) as resp:
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
                await self._send(self._post_checkin(m, self.keys.get(str(m["device_id"]))))
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
            await self._send(self._get(params))

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


# --------------------------------------------------------------------------- driving


@dataclass
class SendStats:
    """What a run sent and how fast."""

    messages: int = 0
    items: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


async def pump(items: Iterable[Item], sink: Any, *, rate: float | None = None,
               speedup: float | None = None, offset_ms: int | None = 0, total: int | None = None,
               progress: bool = False, stop: asyncio.Event | None = None,
               max_seconds: float | None = None) -> SendStats:
    """Send ``items`` to ``sink`` with the chosen pacing; returns what was sent.

    ``offset_ms=None`` means "event time = wall time": the offset is chosen
    from the first timestamped item.
    """
    from tqdm import tqdm

    pacer = Pacer(rate)
    clock = Clock(speedup) if speedup else None
    stats = SendStats()
    bar = tqdm(total=total, unit=" msg", unit_scale=True, disable=not progress, smoothing=0.05)
    start = time.perf_counter()
    offset = offset_ms
    try:
        for item in items:
            if stop is not None and stop.is_set():
                break
            if max_seconds is not None and time.perf_counter() - start >= max_seconds:
                break
            if offset is None:
                t = item_ts(item)
                if t is not None:
                    offset = int(time.time() * 1000) - t
            item = shift_ts(item, offset or 0)
            if clock is not None:
                await clock.wait_for(item_ts(item))
            await pacer.take(item.count)
            await sink.put(item)
            stats.messages += item.count
            stats.items += 1
            bar.update(item.count)
        await sink.flush()
    finally:
        stats.seconds = time.perf_counter() - start
        bar.close()
    return stats


def add_send_parser(sub: Any) -> None:
    """The ``send`` subcommand's options."""
    s = sub.add_parser("send", help="send a generated day to Kafka, the gateway or stdout")
    s.add_argument("--dir", required=True, help="folder written by `generate` (telemetry.jsonl, orders.json)")
    dest = s.add_mutually_exclusive_group(required=True)
    dest.add_argument("--kafka", help="bootstrap servers")
    dest.add_argument("--jt808", help="gateway HOST:PORT; one JT/T 808 terminal per device")
    dest.add_argument("--osmand", help="gateway OsmAnd URL, e.g. http://127.0.0.1:5055/")
    dest.add_argument("--stdout", action="store_true")
    s.add_argument("--osmand-keys", metavar="FILE", default=None,
                   help="JSON object of device id -> OsmAnd device key, sent as key= "
                        "(needed when the gateway has provisioned devices)")
    s.add_argument("--phone-keys", metavar="FILE", default=None,
                   help="JSON object of phone id -> key, sent with each check-in as a bearer "
                        "key (added to --osmand-keys)")
    s.add_argument("--topic", default=TOPIC)
    pace = s.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, default=None, help="telemetry messages per second")
    pace.add_argument("--speedup", type=float, default=None,
                      help="follow event time this many times faster than real time")
    s.add_argument("--event-time", choices=("original", "wall"), default="original",
                   help="keep the simulated day's timestamps or shift them to now")
    s.add_argument("--envelope", type=int, default=200, help="messages per Kafka envelope")
    s.add_argument("--keying", choices=KEYINGS, default="partition",
                   help="Kafka keys: the person's partition key (as the gateway sends) or the"
                        " device id (as a vendor platform sends; the worker re-keys it)")
    s.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    s.add_argument("--quiet", action="store_true")


def add_live_parser(sub: Any) -> None:
    """The ``live`` subcommand's options."""
    s = sub.add_parser("live", help="a live caseload forever (event time = wall time)")
    s.add_argument("--zones", required=True, help="zones written by `generate` (e.g. config/demo-zones.geojson)")
    s.add_argument("--orders", required=True, help="orders written by `generate` (e.g. config/demo-orders.json)")
    dest = s.add_mutually_exclusive_group(required=True)
    dest.add_argument("--kafka", help="bootstrap servers")
    dest.add_argument("--jt808", help="gateway HOST:PORT")
    dest.add_argument("--osmand", help="gateway OsmAnd URL")
    dest.add_argument("--stdout", action="store_true")
    s.add_argument("--osmand-keys", metavar="FILE", default=None,
                   help="JSON object of device id -> OsmAnd device key, sent as key= "
                        "(needed when the gateway has provisioned devices)")
    s.add_argument("--phone-keys", metavar="FILE", default=None,
                   help="JSON object of phone id -> key, sent with each check-in as a bearer "
                        "key (added to --osmand-keys)")
    s.add_argument("--persons", type=int, default=None, help="only the first N persons of the orders")
    s.add_argument("--checkins", metavar="FILE", default=None,
                   help="timed check-ins to post as well, JSON lines {\"deliver_ms\": ..., "
                        "\"message\": {...}} in delivery order (as `wardstream demo` writes them)")
    s.add_argument("--speedup", type=float, default=1.0,
                   help="simulated minutes per wall minute (1 = real time)")
    s.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    s.add_argument("--quiet", action="store_true")


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def load_keys(path: str | None) -> dict[str, str]:
    """Device keys from a JSON object file ``{"device_id": "key", ...}`` (none: no keys).

    Raises :class:`ValueError` with a one-line reason for an unusable file.
    """
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in data.items()):
        raise ValueError(f"{path}: device keys are a JSON object of device id -> key")
    return data


def make_sink(args: argparse.Namespace, orders: Sequence[Order]) -> Any:
    if getattr(args, "kafka", None):
        return KafkaSink(args.kafka, orders, topic=getattr(args, "topic", TOPIC),
                         envelope_max=getattr(args, "envelope", 200),
                         keying=getattr(args, "keying", "partition"))
    if getattr(args, "jt808", None):
        host, port = _hostport(args.jt808)
        return Jt808Sink(host, port)
    if getattr(args, "osmand", None):
        keys = load_keys(getattr(args, "osmand_keys", None))
        keys.update(load_keys(getattr(args, "phone_keys", None)))
        return OsmandSink(args.osmand, keys=keys)
    return StdoutSink()


def _count_lines(path: str) -> int:
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            n += chunk.count(b"\n")
    return n


async def _run(sink: Any, items: Iterable[Item], **kw: Any) -> SendStats:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await sink.start()
    try:
        return await pump(items, sink, stop=stop, **kw)
    finally:
        await sink.stop()


def send_main(args: argparse.Namespace) -> int:
    """``wardstream simulate send``."""
    import os

    with open(os.path.join(args.dir, "orders.json"), "rb") as f:
        orders = parse_orders(f.read())
    path = os.path.join(args.dir, "telemetry.jsonl")
    try:
        sink = make_sink(args, orders)
    except ValueError as exc:
        print(f"wardstream simulate send: {exc}", file=sys.stderr)
        return 2
    progress = not args.quiet and sys.stderr.isatty() and not args.stdout
    total = None
    if progress:
        with open(os.path.join(args.dir, "truth.json"), "rb") as f:
            total = json.load(f)["meta"].get("messages")
    stats = asyncio.run(_run(
        sink, read_items(path), rate=args.rate, speedup=args.speedup,
        offset_ms=None if args.event_time == "wall" else 0, total=total, progress=progress,
        max_seconds=args.seconds))
    if not args.quiet:
        print(f"sent {stats.messages} messages in {stats.seconds:.1f} s ({stats.rate:,.0f}/s)",
              file=sys.stderr)
    return 0


def live_main(args: argparse.Namespace) -> int:
    """``wardstream simulate live``: the demo feed."""
    from simulators.live import live_items

    with open(args.orders, "rb") as f:
        orders = parse_orders(f.read())
    with open(args.zones, "rb") as f:
        zones = json.load(f)
    if args.persons is not None:
        orders = orders[: args.persons]
    try:  # unusable keys or check-ins are a one-line error, before anything is sent
        sink = make_sink(args, orders)
        timed = list(read_timed(args.checkins)) if args.checkins is not None else []
    except (ValueError, OSError) as exc:
        print(f"wardstream simulate live: {exc}", file=sys.stderr)
        return 2
    items: Iterable[Item] = live_items(zones, orders, speedup=args.speedup)
    if timed:
        items = merge_timed(items, timed)
    if not args.quiet:
        print(f"live feed: {len(orders)} persons, speedup {args.speedup:g}, Ctrl-C stops", file=sys.stderr)
    # items already carry wall-clock event times: follow them in real time
    stats = asyncio.run(_run(sink, items, speedup=1.0, offset_ms=0,
                             progress=False, max_seconds=args.seconds))
    if not args.quiet:
        print(f"live feed stopped: {stats.messages} messages in {stats.seconds:.0f} s", file=sys.stderr)
    return 0


def read_timed(path: str) -> Iterator[tuple[int, Item]]:
    """``(delivery ms, item)`` of a timed file: JSON lines ``{"deliver_ms": ..., "message": ...}``."""
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = _DEC.decode(line)
                at, msg = int(obj["deliver_ms"]), obj["message"]
            except (msgspec.DecodeError, KeyError, TypeError, ValueError):
                raise ValueError(f"{path}:{n}: not a timed line "
                                 "{\"deliver_ms\": ..., \"message\": {...}}") from None
            yield at, Item(b"", [msg])


def merge_timed(items: Iterable[Item], timed: Iterable[tuple[int, Item]]) -> Iterator[Item]:
    """``items`` (in event-time order) with the timed items slipped in at their delivery times.

    A timed item goes before the first item whose time is later than its
    delivery, so the pacing that follows the items' times sends it then.
    """
    pending = iter(timed)
    nxt = next(pending, None)
    for item in items:
        t = item_ts(item)
        while nxt is not None and t is not None and nxt[0] <= t:
            yield nxt[1]
            nxt = next(pending, None)
        yield item
    while nxt is not None:
        yield nxt[1]
        nxt = next(pending, None)


async def aiter_items(items: Iterable[Item]) -> AsyncIterator[Item]:  # pragma: no cover - helper
    for it in items:
        yield it
