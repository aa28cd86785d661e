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
from argparse import Namespace
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

from devices import vendor
from devices.errors import DeviceError, FrameError
from devices.wire import encode_one
from geofence.errors import OrderError
from geofence.model import Telemetry
from stream.cli import Parser

PROTOCOLS = ("jt808", "watch", "gt06", "h02", "osmand", "checkin")


def load_vendor_models(path: str) -> dict[str, vendor.Profile]:
    """JT/T 808 vendor alarm profiles: the built-in ones plus those of a JSON file.

    Raises
    ------
    VendorMapError
        The file cannot be read, is not JSON, or holds an unusable entry.
    """
    import json

    try:
        with open(path, "rb") as fh:
            doc = json.load(fh)
    except OSError as exc:
        raise vendor.VendorMapError(f"cannot read vendor map {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise vendor.VendorMapError(f"vendor map {path} is not JSON: {exc}") from None
    return vendor.parse_models(doc)


def decode_frame(protocol: str, frame: str, *, tz_offset_h: float | None = None,
                 now_ms: int | None = None, model: str | None = None,
                 models: Mapping[str, vendor.Profile] | None = None
                 ) -> tuple[list[Telemetry], str]:
    """Decode one frame given as on the command line; returns telemetry and a note.

    ``model`` and ``models`` pick the JT/T 808 vendor alarm profile (:mod:`devices.vendor`).

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
        d = jt808.decode(raw, tz_offset_h=tz, now_ms=now, escaped=escaped, model=model,
                         models=vendor.MODELS if models is None else models)
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
    if protocol == "checkin":
        from devices import checkin

        return list(checkin.decode(text, now)), "checkin (POST /checkin body)"
    raise FrameError("unsupported", f"unknown protocol {protocol!r}")


def decode_main(argv: Sequence[str]) -> int:
    """``wardstream decode --protocol P FRAME``: canonical JSON lines, exit 1 if invalid."""
    p = Parser(prog="wardstream decode",
                                description="Decode one tracker frame to canonical telemetry.")
    p.add_argument("--protocol", required=True, choices=PROTOCOLS)
    p.add_argument("--tz-offset-h", type=float, default=None,
                   help="UTC offset of device times (jt808 default: WARDSTREAM_JT808_TZ_OFFSET_H"
                        " or 8; watch default 0)")
    p.add_argument("--model", default=None,
                   help="jt808: device model, picks its vendor alarm map (strap removal, "
                        "vibration, tamper items)")
    p.add_argument("--models", default=None, metavar="FILE",
                   help="jt808: JSON file of vendor alarm maps by model, added to the built-in ones")
    p.add_argument("frame", help="hex (jt808, gt06), text (watch, h02), request target or JSON "
                   "(osmand), JSON body (checkin)")
    args = p.parse_args(list(argv))
    if (args.model is not None or args.models is not None) and args.protocol != "jt808":
        print("wardstream decode: --model and --models apply to --protocol jt808 only",
              file=sys.stderr)
        return 2
    models = None
    if args.models is not None:
        try:
            models = load_vendor_models(args.models)
        except vendor.VendorMapError as exc:
            print(f"wardstream decode: {exc}", file=sys.stderr)
            return 2
    tz = args.tz_offset_h
    if tz is None and args.protocol == "jt808":
        from stream.settings import Settings

        tz = float(Settings.from_env().jt808_tz_offset_h)
    try:
        messages, note = decode_frame(args.protocol, args.frame, tz_offset_h=tz,
                                      model=args.model, models=models)
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
    p.add_argument("--jt808-models", default=None, metavar="FILE",
                   help="JSON file of JT/T 808 vendor alarm maps by device model, added to the "
                        "built-in ones")
    p.add_argument("--provisioning", default=None,
                   help="provisioned devices (JSON or YAML; `wardstream devices add`); required "
                        "unless --allow-unprovisioned")
    p.add_argument("--allow-unprovisioned", action="store_true",
                   help="INSECURE: accept any device an order names, without provisioning")
    for proto in ("jt808", "watch", "gt06", "h02"):
        p.add_argument(f"--{proto}-allow", default=None, metavar="CIDR[,CIDR...]",
                       help=f"source networks the {proto} listener accepts (default: any)")
    p.add_argument("--rate-per-device", type=float, default=5.0,
                   help="sustained telemetry messages a second per device (0: no limit)")
    p.add_argument("--rate-burst", type=int, default=500,
                   help="messages a device may send at once, e.g. a backfill")
    p.add_argument("--future-skew", type=float, default=float(settings.future_skew_s),
                   help="seconds an event time may lead its arrival (WARDSTREAM_FUTURE_SKEW_S)")
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
    from devices import provisioning as prov

    if args.provisioning is None and not args.allow_unprovisioned:
        print("wardstream gateway: no provisioned devices: give --provisioning FILE "
              "(see `wardstream devices add`) or, for a test rig, --allow-unprovisioned",
              file=sys.stderr)
        return 2
    try:
        book = prov.load(args.provisioning) if args.provisioning else None
        mode = prov.exposed(args.provisioning) if args.provisioning else None
        if mode is not None:
            print(f"wardstream gateway: warning: {args.provisioning} is accessible to other "
                  f"users (mode {mode:03o}); make it owner-only (chmod 600)", file=sys.stderr)
        allow = {proto: prov.parse_networks(getattr(args, f"{proto}_allow").split(","),
                                            f"--{proto}-allow")
                 for proto in ("jt808", "watch", "gt06", "h02")
                 if getattr(args, f"{proto}_allow")}
    except prov.ProvisioningError as exc:
        print(f"wardstream gateway: invalid provisioning: {exc}", file=sys.stderr)
        return 2
    if args.rate_per_device < 0 or args.rate_burst < 1 or args.future_skew < 0:
        print("wardstream gateway: --rate-per-device and --future-skew must be >= 0, "
              "--rate-burst >= 1", file=sys.stderr)
        return 2
    try:
        jt808_models = load_vendor_models(args.jt808_models) if args.jt808_models else None
    except vendor.VendorMapError as exc:
        print(f"wardstream gateway: {exc}", file=sys.stderr)
        return 2
    ports = {proto: getattr(args, f"{proto}_port") for proto in ("jt808", "watch", "gt06", "h02")
             if getattr(args, f"{proto}_port") is not None}
    config = GatewayConfig(
        kafka=args.kafka, orders=orders,
        server=ServerConfig(host=args.host, max_bad_frames=args.max_bad_frames,
                            idle_timeout_s=args.idle_timeout,
                            jt808_tz_offset_h=float(settings.jt808_tz_offset_h), ports=ports,
                            reuse_port=args.reuse_port, jt808_models=jt808_models,
                            allow_networks=allow,
                            rate_per_s=args.rate_per_device, rate_burst=args.rate_burst,
                            future_skew_s=args.future_skew),
        provisioning=book, allow_unprovisioned=args.allow_unprovisioned,
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
    from stream.errors import StreamError

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
    except StreamError as exc:  # a topic that breaks the contract: the reason names the fix
        print(f"wardstream gateway: cannot start: {exc}", file=sys.stderr)
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


def devices_main(argv: Sequence[str]) -> int:
    """``wardstream devices add|remove|list --file F``: manage the provisioning file."""
    from devices import provisioning as prov

    p = Parser(prog="wardstream devices",
                                description="Provision the devices the gateway accepts.")
    sub = p.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="provision a device (replaces an entry of the same id)")
    add.add_argument("--file", required=True, help="provisioning file (created 0600 if absent)")
    add.add_argument("--device-id", required=True)
    add.add_argument("--protocol", required=True, choices=prov.PROTOCOLS)
    add.add_argument("--model", default=None, help="device model")
    add.add_argument("--network", action="append", default=[], metavar="CIDR",
                     help="source network the device connects from (repeatable; none: any)")
    add.add_argument("--secret", choices=("generate", "none"), default=None,
                     help="generate a secret (printed once) or none; default: generate for "
                          "osmand, checkin and mqtt, none for the TCP protocols")
    for name in ("province", "city"):
        add.add_argument(f"--jt808-{name}", type=int, default=None,
                         help=f"jt808 registration {name} id to require")
    for name in ("manufacturer", "terminal-model", "terminal-id", "plate"):
        add.add_argument(f"--jt808-{name}", default=None,
                         help=f"jt808 registration {name.replace('-', ' ')} to require")
    rm = sub.add_parser("remove", help="remove a device")
    rm.add_argument("--file", required=True)
    rm.add_argument("--device-id", required=True)
    ls = sub.add_parser("list", help="list provisioned devices (hashes are not shown)")
    ls.add_argument("--file", required=True)
    mq = sub.add_parser("mosquitto-config",
                        help="write the MQTT broker's password file and ACL from the "
                             "provisioning file (new device passwords printed once)")
    mq.add_argument("--file", required=True, help="provisioning file")
    mq.add_argument("--out", required=True, metavar="DIR",
                    help="directory of the broker's passwd and acl files")
    mq.add_argument("--topic-prefix", default="wardstream/telemetry",
                    help="devices publish on PREFIX/<device_id>")
    args = p.parse_args(list(argv))
    if args.action == "mosquitto-config":
        return _mosquitto_config(args)
    try:
        book = (prov.load(args.file) if os.path.exists(args.file) or args.action != "add"
                else prov.Provisioning())
        if args.action == "list":
            for d in book:
                nets = ",".join(str(n) for n in d.networks) or "any"
                extra = " secret" if d.secret_hash else ""
                print(f"{d.device_id}\t{d.protocol}\t{d.model or '-'}\tfrom {nets}{extra}")
            return 0
        if args.action == "remove":
            if not book.remove(args.device_id):
                print(f"wardstream devices: {args.device_id!r} is not provisioned in {args.file}",
                      file=sys.stderr)
                return 2
            prov.save(book, args.file)
            return 0
        jt = {k: getattr(args, f"jt808_{k}") for k in ("province", "city", "manufacturer",
                                                         "terminal_model", "terminal_id", "plate")}
        if any(v is not None for v in jt.values()) and args.protocol != "jt808":
            print("wardstream devices: --jt808-* fields need --protocol jt808", file=sys.stderr)
            return 2
        entry: dict[str, Any] = {"device_id": args.device_id, "protocol": args.protocol,
                                 "networks": args.network}
        if args.model:
            entry["model"] = args.model
        if any(v is not None for v in jt.values()):
            entry["jt808"] = {k: v for k, v in jt.items() if v is not None}
        device = prov.parse_entry(entry, "--device-id " + args.device_id)
        want = args.secret or ("generate" if args.protocol in ("osmand", "checkin", "mqtt")
                               else "none")
        secret = None
        if want == "generate":
            device, secret = prov.with_secret(device)
        book.add(device)
        prov.save(book, args.file)
    except (prov.ProvisioningError, OSError) as exc:
        return _devices_error(exc, args.file)
    if secret is not None:
        print(f"{device.device_id} secret (shown once, not stored): {secret}")
    else:
        print(f"{device.device_id} provisioned ({device.protocol})")
    return 0


def _devices_error(exc: Exception, path: str) -> int:
    """``wardstream devices``: one line on stderr for an unusable provisioning file or
    an unwritable ``path``; the exit status 2."""
    if isinstance(exc, OSError):
        print(f"wardstream devices: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
    else:
        print(f"wardstream devices: {exc}", file=sys.stderr)
    return 2


def _mosquitto_config(args: Namespace) -> int:
    """``wardstream devices mosquitto-config``: the broker's passwd and acl files."""
    from urllib.parse import urlsplit

    from devices import broker_auth
    from devices import provisioning as prov
    from stream.settings import Settings

    url = urlsplit(Settings.from_env().mqtt_url)
    if not url.username or not url.password:
        print("wardstream devices: the gateway's MQTT user and password come from "
              "WARDSTREAM_MQTT_URL (mqtt://user:password@host:port); it has none",
              file=sys.stderr)
        return 2
    passwd = os.path.join(args.out, "passwd")
    try:
        book = prov.load(args.file)
        existing: dict[str, str] = {}
        if os.path.exists(passwd):
            with open(passwd, encoding="utf-8") as fh:
                existing = broker_auth.parse_passwd(fh.read())
        text, acl, issued = broker_auth.build(book, existing, url.username, url.password,
                                              args.topic_prefix.rstrip("/"))
        os.makedirs(args.out, mode=0o700, exist_ok=True)
        if issued:
            prov.save(book, args.file)
        broker_auth.write_private(passwd, text)
        broker_auth.write_private(os.path.join(args.out, "acl"), acl)
    except (prov.ProvisioningError, OSError) as exc:
        return _devices_error(exc, args.out)
    for dev, secret in sorted(issued.items()):
        print(f"{dev} MQTT password (shown once, not stored): {secret}")
    print(f"wrote {passwd} and {os.path.join(args.out, 'acl')} "
          f"(the gateway and {len(text.splitlines()) - 1} devices)")
    return 0
