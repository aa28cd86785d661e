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
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from geofence.model import Order, parse_orders
from simulators.sinks import (
    KEYINGS,
    TOPIC,
    Jt808Sink,
    KafkaSink,
    OsmandSink,
    StdoutSink,
)

__all__ = [
    "KEYINGS", "TOPIC", "Item", "Jt808Sink", "KafkaSink", "OsmandSink", "SendStats", "StdoutSink",
    "item_ts", "load_keys", "merge_timed", "parse_line", "pump", "read_items", "read_timed",
    "shift_ts",
]

_DEC = msgspec.json.Decoder()


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
