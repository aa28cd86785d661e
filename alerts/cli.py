"""``wardstream api`` and ``wardstream users``.

``wardstream api [--host H] [--port N] [--no-sinks] [--orders F] [--zones F]
[--demo-user NAME]`` serves the HTTP API, live feed and dashboard, reading
``WARDSTREAM_DATABASE_URL`` and ``WARDSTREAM_KAFKA``. By default it also runs
the sinks (alerts topic -> store, telemetry topic -> track store) and the
escalator in the same process, so a demo needs one process.

``wardstream users add --username U --role R --jurisdiction CODE`` reads the
password from stdin (one line; prompts without echo on a terminal).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from alerts.db import create_pool, system_clock
from alerts.errors import AlertsError
from alerts.store import ROLES
from geofence.errors import WardstreamError
from stream.cli import Parser
from stream.settings import Settings

log = logging.getLogger("wardstream.api")


async def create_demo_operator(
    settings: Settings, username: str = "demo", role: str = "supervisor", jurisdiction: str = ""
) -> str:
    """Create (or reset) a demo operator with a random password and return the password.

    National scope (jurisdiction ``""``) and role supervisor by default, so
    the demo sees every command centre's alerts.
    """
    from alerts.auth import add_operator, new_password

    password = new_password()
    pool = await create_pool(settings.database_url, settings.database_schema)
    try:
        async with pool.acquire() as conn:
            await add_operator(conn, username, password, role, jurisdiction, replace=True)
            from alerts.store import audit

            await audit(conn, system_clock(), "cli", "operator.demo", username,
                        {"role": role, "jurisdiction": jurisdiction}, "local")
    finally:
        await pool.close()
    return password


async def import_files(settings: Settings, orders: str | None, zones: str | None) -> tuple[int, int]:
    """Load an orders file and a zones file into the store (new versions only if changed)."""
    from alerts import store
    from geofence.model import parse_orders

    n_orders = n_zones = 0
    pool = await create_pool(settings.database_url, settings.database_schema)
    try:
        async with pool.acquire() as conn, conn.transaction():
            now = system_clock()
            if orders:
                raw = Path(orders).read_bytes()
                parsed = parse_orders(raw)
                bodies = _order_bodies(raw)
                for order in parsed:
                    body = bodies.get(order.person_id)
                    if body is None:
                        continue
                    v = await store.save_order(
                        conn, body, order.jurisdiction,
                        order.valid_from if isinstance(order.valid_from, int) else None,
                        order.valid_until if isinstance(order.valid_until, int) else None,
                        order.devices, now, "import")
                    n_orders += v is not None
            if zones:
                data = json.loads(Path(zones).read_text(encoding="utf-8"))
                for feature in data.get("features", []):
                    zid = str(feature.get("id") or (feature.get("properties") or {}).get("id"))
                    jur = str((feature.get("properties") or {}).get("jurisdiction") or "")
                    v = await store.save_zone(conn, zid, {**feature, "id": zid}, jur, now, "import")
                    n_zones += v is not None
    finally:
        await pool.close()
    return n_orders, n_zones


def _order_bodies(raw: bytes) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(raw)
    except ValueError:
        import yaml

        data = yaml.safe_load(raw)
    if isinstance(data, dict) and "orders" in data:
        data = data["orders"]
    return {str(o["person_id"]): o for o in data if isinstance(o, dict) and "person_id" in o}


async def serve(settings: Settings, host: str, port: int, run_sinks: bool,
                demo_user: str | None, ready_file: str | None = None) -> int:
    """Run the service and the web server until SIGINT/SIGTERM."""
    from aiohttp import web

    from alerts.api import create_app
    from alerts.service import Service, ServiceOptions

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    service = Service(settings, options=ServiceOptions(run_sinks=run_sinks))
    await service.start()
    runner = web.AppRunner(create_app(service), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        await service.stop()
        raise
    print(f"wardstream api: http://{host}:{port}/ (dashboard), sinks "
          f"{'on' if run_sinks and settings.kafka else 'off'}", flush=True)
    if demo_user:
        password = await create_demo_operator(settings, demo_user)
        print(f"wardstream api: demo operator {demo_user!r} password {password}", flush=True)
    if ready_file:
        Path(ready_file).write_text(f"{host}:{port}\n")
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await service.stop()
    return 0


def api_main(argv: Sequence[str]) -> int:
    """``wardstream api``."""
    settings = Settings.from_env()
    parser = Parser(prog="wardstream api", description=__doc__.split("\n\n")[1])
    parser.add_argument("--host", default=settings.api_host)
    parser.add_argument("--port", type=int, default=settings.api_port)
    parser.add_argument("--sinks", action=argparse.BooleanOptionalAction, default=True,
                        help="run the Kafka sinks and escalator in this process (default on)")
    parser.add_argument("--orders", help="import an orders file into the store on start")
    parser.add_argument("--zones", help="import a zones GeoJSON file into the store on start")
    parser.add_argument("--demo-user", metavar="NAME", nargs="?", const="demo",
                        help="create/reset a national-scope supervisor NAME (default demo) with "
                             "a random password and print it")
    parser.add_argument("--ready-file", help=argparse.SUPPRESS)
    args = parser.parse_args(list(argv))
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        if args.orders or args.zones:
            n_o, n_z = asyncio.run(import_files(settings, args.orders, args.zones))
            print(f"wardstream api: imported {n_o} order version(s), {n_z} zone version(s)",
                  flush=True)
        return asyncio.run(serve(settings, args.host, args.port, args.sinks, args.demo_user,
                                 args.ready_file))
    except (WardstreamError, OSError) as exc:
        print(f"wardstream api: {exc}", file=sys.stderr)
        return 2


def users_main(argv: Sequence[str]) -> int:
    """``wardstream users add --username U --role R --jurisdiction CODE`` (password on stdin)."""
    parser = Parser(prog="wardstream users")
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="create an operator (password read from stdin)")
    add.add_argument("--username", required=True)
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--jurisdiction", required=True,
                     help="admin-code prefix: 32 (province), 3201 (city), 320102 (county)")
    add.add_argument("--replace", action="store_true", help="reset an existing operator")
    args = parser.parse_args(list(argv))
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    settings = Settings.from_env()

    async def run() -> int:
        from alerts.auth import add_operator

        pool = await create_pool(settings.database_url, settings.database_schema)
        try:
            async with pool.acquire() as conn:
                op_id = await add_operator(conn, args.username, password, args.role,
                                           args.jurisdiction, replace=args.replace)
                from alerts.store import audit

                await audit(conn, system_clock(), "cli", "operator.add", args.username,
                            {"role": args.role, "jurisdiction": args.jurisdiction}, "local")
        finally:
            await pool.close()
        print(f"operator {args.username!r} ({args.role}, jurisdiction {args.jurisdiction!r}) id {op_id}")
        return 0

    try:
        return asyncio.run(run())
    except (AlertsError, WardstreamError, OSError) as exc:
        print(f"wardstream users: {exc}", file=sys.stderr)
        return 2
