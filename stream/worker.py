"""``wardstream worker``: run one stream worker until SIGTERM/SIGINT.

    wardstream worker --zones FILE --orders FILE [--kafka HOST:PORT] [--web-port N]

The worker joins the consumer group of ``wardstream.telemetry`` (several
workers split the partitions), publishes alert lifecycle records to
``wardstream.alerts``, and serves ``/metrics``, ``/healthz`` and ``/readyz``
on its web port. It stops cleanly on SIGTERM or SIGINT: it snapshots its
partitions, commits, and leaves the group so the others take over at once.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from geofence.errors import ValidationError
from geofence.model import parse_orders
from stream.cli import Parser
from stream.errors import StreamError
from stream.settings import Settings

log = logging.getLogger("wardstream.worker")


def _parser(settings: Settings) -> argparse.ArgumentParser:
    ap = Parser(prog="wardstream worker", description=__doc__.split("\n")[0])
    ap.add_argument("--zones", required=True, help="GeoJSON FeatureCollection of zones")
    ap.add_argument("--orders", required=True, help="supervision orders (JSON array or YAML)")
    ap.add_argument("--kafka", default=settings.kafka or None,
                    help="bootstrap servers (default: WARDSTREAM_KAFKA)")
    ap.add_argument("--web-port", type=int, default=settings.worker_web_port,
                    help="port of /metrics, /healthz, /readyz (0: any free port)")
    ap.add_argument("--web-host", default="127.0.0.1", help="bind address of the web port")
    ap.add_argument("--group", default=settings.worker_group, help="consumer group")
    return ap


def _reason(exc: Exception) -> str:
    return exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Start a worker and keep it running until a signal arrives."""
    from geofence.zones import load_zones
    from stream.app import Worker

    try:
        zones = load_zones(args.zones)
    except (ValidationError, OSError) as exc:
        print(f"wardstream worker: zones {args.zones!r}: {_reason(exc)}", file=sys.stderr)
        return 2
    try:
        orders = parse_orders(Path(args.orders).read_bytes())
    except (ValidationError, OSError) as exc:
        print(f"wardstream worker: orders {args.orders!r}: {_reason(exc)}", file=sys.stderr)
        return 2
    worker = Worker(args.kafka, zones, orders, settings.replace(worker_group=args.group),
                    web_port=args.web_port, web_host=args.web_host)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await worker.start()
    except (StreamError, OSError) as exc:
        print(f"wardstream worker: cannot start: {exc}", file=sys.stderr)
        await worker.stop()
        return 1
    print(f"wardstream worker: kafka {args.kafka}, group {args.group}, metrics on"
          f" http://{args.web_host}:{worker.web_port}/metrics", flush=True)
    waiter = asyncio.create_task(worker.wait_stopped())
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if waiter in done and waiter.exception() is not None:
        log.error("worker failed: %s", waiter.exception())
        code = 1
    for t in (waiter, stopper):
        t.cancel()
    await worker.stop()
    return code


def main(argv: Sequence[str]) -> int:
    """Entry point of ``wardstream worker``."""
    settings = Settings.from_env()
    args = _parser(settings).parse_args(list(argv))
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    if not args.kafka:
        print("wardstream worker: no Kafka given: set WARDSTREAM_KAFKA or pass --kafka"
              " (`wardstream broker` starts an embedded one)", file=sys.stderr)
        return 2
    return asyncio.run(run(args, settings))
