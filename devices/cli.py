"""``wardstream decode`` and ``wardstream gateway``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Coroutine, Sequence
from typing import Any

from devices.errors import DeviceError, FrameError
from devices.wire import encode_one
from geofence.errors import OrderError
from geofence.model import Telemetry
from stream.cli import Parser

PROTOCOLS = ("jt808", "watch", "gt06", "h02", "osmand")


def decode_frame(protocol: str, frame: str, *, tz_offset_h: float | None = None,
                 now_ms: int | None = None) -> tuple[list[Telemetry], str]:
    """Decode one frame given as on the command line; returns telemetry and a note.

    Raises
    ------
    FrameError
        With the reason the frame is invalid.
    """
    from devices import gt06, h02, jt808, osmand, watch

    now = int(time.time() * 1000) if now_ms is None else now_ms
    text = frame.strip()

    def unhex(s: str) -> bytes:
        try:
            return bytes.fromhex(s.replace(" ", ""))
        except ValueError:
            raise FrameError("malformed", "a binary frame is given as hex") from None

    if protocol == "jt808":
        raw = unhex(text)
        escaped = raw[:1] == b"\x7e" and raw[-1:] == b"\x7e"
        tz = jt808.DEFAULT_TZ_OFFSET_H if tz_offset_h is None else tz_offset_h
        d = jt808.decode(raw, tz_offset_h=tz, now_ms=now, escaped=escaped)
        for err in d.errors:
            print(f"item rejected: {err.reason}: {err.detail}", file=sys.stderr)
        h = d.message.header
        return d.telemetry, f"jt808 0x{h.msg_id:04X} v{h.version} from {h.device_id} serial {h.serial}"
    if protocol == "watch":
        wd = watch.decode(text.encode("latin-1"), tz_offset_h=tz_offset_h or 0.0, now_ms=now)
        return wd.telemetry, f"watch {wd.frame.kind} from {wd.frame.device_id}"
    if protocol == "gt06":
        gd = gt06.decode(unhex(text))
        if gd.login_id is not None:
            return [], f"gt06 login from {gd.login_id}"
        return gd.telemetry("(login)", now), f"gt06 0x{gd.frame.protocol:02X} (device id comes from the login)"
    if protocol == "h02":
        hd = h02.decode(text.encode("latin-1"), now_ms=now)
        return hd.telemetry, f"h02 {hd.kind} from {hd.device_id}"
    if protocol == "osmand":
        return osmand.decode(text, now), "osmand"
    raise FrameError("unsupported", f"unknown protocol {protocol!r}")


def decode_main(argv: Sequence[str]) -> int:
    """``wardstream decode --protocol P FRAME``: canonical JSON lines, exit 1 if invalid."""
    p = Parser(prog="wardstream decode",
                                description="Decode one tracker frame to canonical telemetry.")
    p.add_argument("--protocol", required=True, choices=PROTOCOLS)
    p.add_argument("--tz-offset-h", type=float, default=None,
                   help="UTC offset of device times (jt808 default: WARDSTREAM_JT808_TZ_OFFSET_H"
                        " or 8; watch default 0)")
    p.add_argument("frame", help="hex (jt808, gt06), text (watch, h02), request target or JSON (osmand)")
    args = p.parse_args(list(argv))
    tz = args.tz_offset_h
    if tz is None and args.protocol == "jt808":
        from stream.settings import Settings

        tz = float(Settings.from_env().jt808_tz_offset_h)
    try:
        messages, note = decode_frame(args.protocol, args.frame, tz_offset_h=tz)
    except FrameError as exc:
        print(f"invalid frame: {exc.reason}: {exc.detail}", file=sys.stderr)
        return 1
    for msg in messages:
        sys.stdout.write(encode_one(msg).decode() + "\n")
    if not messages:
        print(f"{note}: no telemetry in this frame", file=sys.stderr)
    return 0


def load_devices(path: str) -> list[tuple[str, str]]:
    """Registry entries from a JSON file: ``["WB-1", {"device_id": "WB-2", "key": "P-7"}]``."""
    import json

    with open(path, "rb") as fh:
        data = json.load(fh)
    if not isinstance(data, list):
        raise ValueError("a devices file is a JSON array")
    out: list[tuple[str, str]] = []
    for i, item in enumerate(data):
        if isinstance(item, str) and item:
            out.append((item, item))
        elif isinstance(item, dict) and isinstance(item.get("device_id"), str) and item["device_id"]:
            out.append((item["device_id"], str(item.get("key") or item["device_id"])))
        else:
            raise ValueError(f"entry {i} is neither a device id nor {{device_id, key}}")
    return out


def gateway_main(argv: Sequence[str]) -> int:
    """``wardstream gateway --orders F [--jt808-port N] ...``: run until SIGINT/SIGTERM."""
    from stream.settings import Settings

    settings = Settings.from_env()
    p = Parser(prog="wardstream gateway",
                                description="Device gateway: tracker protocols into Kafka.")
    p.add_argument("--orders", required=True, help="supervision orders file (JSON or YAML)")
    p.add_argument("--devices", default=None,
                   help="registry file: JSON array of device ids (or {\"device_id\", \"key\"}) "
                        "accepted without an order")
    p.add_argument("--kafka", default=settings.kafka, help="bootstrap servers (WARDSTREAM_KAFKA)")
    p.add_argument("--host", default="0.0.0.0", help="bind address of the device servers")
    for proto in ("jt808", "watch", "gt06", "h02", "osmand"):
        p.add_argument(f"--{proto}-port", type=int, default=None,
                       help=f"{proto} port (off unless given; 0 = any free port)")
    p.add_argument("--mqtt-url", default=settings.mqtt_url if "WARDSTREAM_MQTT_URL" in os.environ
                   else None, help="MQTT broker, e.g. mqtt://127.0.0.1:1883 (default: "
                   "WARDSTREAM_MQTT_URL when set, else no MQTT)")
    p.add_argument("--mqtt-topic", default="wardstream/telemetry/#", help="MQTT topic filter")
    p.add_argument("--metrics-port", type=int, default=settings.gateway_metrics_port)
    p.add_argument("--idle-timeout", type=float, default=300.0, help="seconds without a byte")
    p.add_argument("--max-bad-frames", type=int, default=10,
                   help="consecutive bad frames before a connection is closed")
    p.add_argument("--max-queue", type=int, default=20_000,
                   help="messages queued for Kafka before sockets stop being read")
    p.add_argument("--linger-ms", type=float, default=5.0,
                   help="how long telemetry waits to be batched before it is sent to Kafka")
    p.add_argument("--max-envelope", type=int, default=500,
                   help="most messages in one batched envelope (one Kafka record)")
    p.add_argument("--envelope-by", choices=("key", "partition"), default="partition",
                   help="one envelope per partition (default: several persons' messages, each "
                   "on its own key's partition) or per partition key (one person per record)")
    p.add_argument("--reuse-port", action="store_true",
                   help="SO_REUSEPORT: run several gateway processes on the same ports")
    p.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                   help="event loop: uvloop when installed (auto), or the standard one")
    p.add_argument("--no-follow-orders", action="store_true",
                   help="do not follow the wardstream.orders topic")
    args = p.parse_args(list(argv))
    logging.basicConfig(level=getattr(logging, settings.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from devices.gateway import GatewayConfig
    from devices.servers import ServerConfig
    from geofence.model import parse_orders

    try:
        with open(args.orders, "rb") as fh:
            orders = parse_orders(fh.read())
    except OSError as exc:
        print(f"wardstream gateway: cannot read orders {args.orders!r}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    except OrderError as exc:
        print(f"wardstream gateway: invalid orders {args.orders!r}: {exc.reason}: {exc.detail}",
              file=sys.stderr)
        return 2
    try:
        extra = load_devices(args.devices) if args.devices else []
    except (OSError, ValueError) as exc:
        print(f"wardstream gateway: invalid devices file {args.devices!r}: {exc}", file=sys.stderr)
        return 2
    ports = {proto: getattr(args, f"{proto}_port") for proto in ("jt808", "watch", "gt06", "h02")
             if getattr(args, f"{proto}_port") is not None}
    config = GatewayConfig(
        kafka=args.kafka, orders=orders,
        server=ServerConfig(host=args.host, max_bad_frames=args.max_bad_frames,
                            idle_timeout_s=args.idle_timeout,
                            jt808_tz_offset_h=float(settings.jt808_tz_offset_h), ports=ports,
                            reuse_port=args.reuse_port),
        osmand_port=args.osmand_port, mqtt_url=args.mqtt_url, mqtt_topic=args.mqtt_topic,
        metrics_port=args.metrics_port, secret=settings.gateway_secret.encode(),
        follow_orders=not args.no_follow_orders, max_queue=args.max_queue,
        envelope_by=args.envelope_by, extra_devices=extra, linger_ms=args.linger_ms,
        max_envelope=args.max_envelope,
        topic_partitions=settings.topic_partitions)
    if not (ports or args.osmand_port is not None or args.mqtt_url):
        print("wardstream gateway: nothing to serve: give at least one --*-port or --mqtt-url",
              file=sys.stderr)
        return 2
    try:
        return run_loop(_run(config), args.loop)
    except DeviceError as exc:
        print(f"wardstream gateway: {exc}", file=sys.stderr)
        return 2


def run_loop(coro: Coroutine[Any, Any, int], loop: str = "auto") -> int:
    """Run ``coro`` on uvloop when asked for (or, with ``auto``, when installed)."""
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                raise DeviceError("--loop uvloop: uvloop is not installed") from None
        else:
            return int(uvloop.run(coro))
    return asyncio.run(coro)


GC_THRESHOLDS = (50_000, 20, 100)
"""Collector thresholds of the gateway process (CPython's defaults are 700, 10, 10)."""


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the per-frame path.

    Every frame allocates a few short-lived objects that reference counting
    frees; with CPython's default thresholds the collector still ran every
    700 allocations and its full passes walked every order, registry entry
    and connection: about 13 % of the gateway's CPU under 5,000 connections
    (py-spy, bench/bench_gateway.py). What exists at start is frozen (moved
    out of the collector's reach) and collections run far less often;
    cyclic garbage is still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _run(config: object) -> int:
    from aiokafka.errors import KafkaError

    from devices.gateway import Gateway, GatewayConfig

    assert isinstance(config, GatewayConfig)
    gateway = Gateway(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await gateway.start()
    except KafkaError as exc:
        print(f"wardstream gateway: Kafka at {config.kafka} is not usable: {exc}", file=sys.stderr)
        await gateway.stop()
        return 1
    except OSError as exc:
        print(f"wardstream gateway: cannot listen: {exc}", file=sys.stderr)
        await gateway.stop()
        return 1
    tune_gc()
    where = ", ".join(f"{name} {config.server.host}:{port}" for name, port in gateway.ports.items())
    print(f"wardstream gateway: {where}; kafka {config.kafka}; {len(gateway.registry)} devices",
          flush=True)
    await stop.wait()
    print("wardstream gateway: stopping, flushing Kafka", flush=True)
    await gateway.stop()
    print(f"wardstream gateway: stopped ({gateway.publisher.published} messages published)",
          flush=True)
    return 0
