"""``wardstream demo``: the whole system on embedded defaults, one command.

The demo is a small process supervisor. It starts, in order, the embedded
broker (unless ``WARDSTREAM_KAFKA`` names a Kafka), the stream worker, the
device gateway, the command-centre API with its dashboard, and a simulated
caseload that reports through the gateway over HTTP (the OsmAnd protocol, which,
unlike JT/T 808, carries each fix's accuracy), with a few phone-supervised
persons whose identity check-ins go through the gateway's ``POST /checkin``
(:mod:`stream.demo_phones`). Each part
runs as its own ``wardstream`` subprocess, exactly as in production. Ctrl-C
(or SIGTERM) stops every child, newest first, and the demo exits 0 with no
stray process left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from geofence.errors import WardstreamError
from stream.broker import EmbeddedBroker, free_port, metadata_ok
from stream.children import die_with_parent
from stream.cli import Parser, resolve
from stream.embedded_pg import DatabaseUnavailable, EmbeddedPostgres, can_connect
from stream.errors import BrokerError
from stream.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DEMO_SCHEMA = "wardstream_demo"


@dataclass
class Part:
    """One child process of the demo."""

    name: str
    command: str
    args: list[str]
    ready: Callable[[], bool] | None = None
    shows: str = ""
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None


def _port_open(port: int) -> Callable[[], bool]:
    import socket

    def check() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.3):
            return True
        return False

    return check


class Demo:
    """Start the parts, report them, stop them all on a signal."""

    def __init__(self, out: Callable[[str], None] = print) -> None:
        self.parts: list[Part] = []
        self.broker: EmbeddedBroker | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.out = out
        self.schema_dsn: str | None = None  # a database whose demo schema is dropped at the end
        self.failed = False
        given = os.environ.get("WARDSTREAM_DEMO_LOGS")
        # the logs hold the demo operator's password: a directory only this user can enter
        if given:
            self.log_dir = Path(given)  # an existing directory keeps its mode; the files are 0600
            self.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.own_log_dir = False
        else:
            self.log_dir = Path(tempfile.mkdtemp(prefix="wardstream-demo-"))
            self.own_log_dir = True

    def start_part(self, part: Part, timeout: float = 60.0) -> bool:
        try:
            resolve(part.command)
        except WardstreamError as exc:
            self.out(f"  - {part.name}: {exc}; left out")
            return False
        fd = os.open(self.log_dir / f"{part.name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                     0o600)
        log = os.fdopen(fd, "ab")
        part.proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", part.command, *part.args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **part.env}, start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),  # a killed demo stops its parts
        )
        log.close()
        self.parts.append(part)
        deadline = time.monotonic() + timeout
        while part.ready is not None and not part.ready():
            if part.proc.poll() is not None or time.monotonic() > deadline:
                self.failed = True
                self.out(f"  ! {part.name} did not start; see {self.log_dir / (part.name + '.log')}")
                return False
            time.sleep(0.1)
        self.out(f"  + {part.name}{': ' + part.shows if part.shows else ''}")
        return True

    def stop(self) -> None:
        for part in reversed(self.parts):
            proc = part.proc
            if proc is None or proc.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for part in reversed(self.parts):
            proc = part.proc
            if proc is None:
                continue
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self.broker is not None:
            self.broker.stop_sync()
            self.broker = None
        if self.schema_dsn is not None:
            self.drop_schema(self.schema_dsn)
            self.schema_dsn = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
        if self.own_log_dir and not self.failed:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def drop_schema(self, dsn: str) -> None:
        """Remove the demo's schema from a database that outlives the demo."""
        import asyncio

        import asyncpg

        async def drop() -> None:
            conn = await asyncpg.connect(dsn, timeout=5)
            try:
                await conn.execute(f"DROP SCHEMA IF EXISTS {DEMO_SCHEMA} CASCADE")
            finally:
                await conn.close()

        try:
            asyncio.run(drop())
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            self.out(f"  ! schema {DEMO_SCHEMA} left in the database: {exc}")
        else:
            self.out(f"  - database: schema {DEMO_SCHEMA} dropped")

    def database(self) -> str | None:
        """The configured PostgreSQL if it answers, else a throwaway cluster, else None."""
        dsn = Settings.from_env().database_url
        if can_connect(dsn):
            self.out(f"  + database: PostgreSQL at {dsn.split('@')[-1]} (schema {DEMO_SCHEMA}, "
                     "dropped when the demo stops)")
            self.schema_dsn = dsn
            return dsn
        try:
            self.postgres = EmbeddedPostgres().start()
        except DatabaseUnavailable as exc:
            self.out(f"  - database: {exc}; the command centre is left out")
            return None
        self.out(f"  + database: throwaway PostgreSQL on 127.0.0.1:{self.postgres.port} "
                 "(deleted when the demo stops)")
        return self.postgres.dsn

    def demo_password(self, timeout: float = 15.0) -> str | None:
        """The demo operator's password, as the api printed it in its log."""
        log = self.log_dir / "api.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if log.exists():
                for line in log.read_text(errors="replace").splitlines():
                    if "demo operator" in line and " password " in line:
                        return line.rsplit(" password ", 1)[1].strip()
            time.sleep(0.2)
        return None


def demo_provisioning(orders_path: str, log_dir: Path) -> tuple[str, str]:
    """Provision every device of the demo's orders with a key of its own.

    Wristbands and trackers are provisioned for OsmAnd (the simulator's
    protocol), the phones of persons whose order has a ``checkin`` rule for
    check-ins: each device gets a fresh key, as a real deployment gives its
    phones, and the gateway refuses a keyless report or check-in from a
    provisioned device. The provisioning (salted hashes) and the keys the
    simulator sends are written owner-only into the demo's log directory;
    returns both paths.
    """
    import json

    from devices.provisioning import Provisioning, hash_secret, new_secret, save
    from geofence.model import parse_orders

    orders = parse_orders(Path(orders_path).read_bytes())
    log_dir.mkdir(parents=True, exist_ok=True)
    keys = {d: new_secret() for o in orders for d in o.devices}
    phones = {d for o in orders if any(r.type == "checkin" for r in o.rules) for d in o.devices}
    path = str(log_dir / "devices.json")
    save(Provisioning.parse([{"device_id": d, "protocol": "checkin" if d in phones else "osmand",
                              "secret_hash": hash_secret(k)} for d, k in keys.items()]), path)
    keys_path = log_dir / "osmand-keys.json"
    fd = os.open(keys_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(keys, fh)
    return path, str(keys_path)


@dataclass
class DemoDay:
    """The files of a demo day (see :func:`stage_demo`)."""

    zones: str
    caseload_orders: str
    """The simulated caseload's orders (what ``simulate live`` rebuilds the caseload from)."""
    orders: str
    """Every order: the caseload's and the demo phones' (worker, gateway, API)."""
    checkins: str | None
    """The demo phones' check-ins, timed (``simulate live --checkins``); None without phones."""
    shown: str
    """The simulated clock's local time at the start (HH:MM)."""
    phones: int = 0


def stage_demo(out_dir: Path, persons: int, now_ms: int | None = None,
               phones: bool = True) -> DemoDay:
    """Generate the demo caseload into ``out_dir`` with its clock at the local time of day.

    The breaches are staged from the current time of day in the orders' time
    zone, so the simulated people are where people are at this hour (at home
    in the curfew hours) and incidents start within the first minute. With
    ``phones``, the demo's phone-supervised persons are added
    (:func:`stream.demo_phones.demo_phones`), their first check-in window
    opening a minute or two after ``now_ms``.
    """
    import json

    from simulators.caseload import dumps, generate
    from simulators.live import demo_config, local_time_of_day

    now = int(time.time() * 1000) if now_ms is None else now_ms
    start = local_time_of_day(now)
    caseload = generate(demo_config(persons, front_load_s=start))
    out_dir.mkdir(parents=True, exist_ok=True)
    zones, orders = out_dir / "demo-zones.geojson", out_dir / "demo-orders.json"
    zones.write_text(json.dumps(caseload.zones), encoding="utf-8")
    orders.write_bytes(dumps(caseload.orders))
    shown = f"{int(start // 3600):02d}:{int(start % 3600 // 60):02d}"
    if not phones:
        return DemoDay(str(zones), str(orders), str(orders), None, shown)
    from stream.demo_phones import demo_phones, write_checkins

    staged = demo_phones(caseload, now)
    every = out_dir / "demo-orders-with-phones.json"
    every.write_bytes(dumps(caseload.orders + staged.orders))
    checkins = out_dir / "demo-checkins.jsonl"
    write_checkins(checkins, staged.checkins)
    return DemoDay(str(zones), str(orders), str(every), str(checkins), shown,
                   len(staged.orders))


def demo_day(out_dir: Path, persons: int, now_ms: int | None = None) -> tuple[str, str, str]:
    """The demo caseload without phones: the zones and orders paths and the local time shown."""
    day = stage_demo(out_dir, persons, now_ms, phones=False)
    return day.zones, day.orders, day.shown


def _print_inbox(log: Path, seen: int) -> int:
    """Print the notifier's new ``inbox:`` lines (pages its demo receivers got)."""
    try:
        with log.open("rb") as f:
            f.seek(seen)
            chunk = f.read()
    except OSError:
        return seen
    end = chunk.rfind(b"\n") + 1
    for line in chunk[:end].decode(errors="replace").splitlines():
        if line.startswith("inbox: "):
            print(f"    {line}", flush=True)
    return seen + end


def main(argv: Sequence[str]) -> int:
    """Run the demo until Ctrl-C or SIGTERM."""
    parser = Parser(prog="wardstream demo", description=__doc__)
    parser.add_argument("--zones", help="zones written by `wardstream simulate generate` "
                        "(default: a demo day generated at start, clock at the local time)")
    parser.add_argument("--orders", help="orders written with --zones (give both or neither)")
    parser.add_argument("--api-port", type=int, default=8080)
    parser.add_argument("--persons", type=int, default=200, help="simulated persons")
    parser.add_argument("--no-simulator", action="store_true", help="start no simulated devices")
    parser.add_argument("--no-phones", action="store_true",
                        help="no phone-supervised persons checking in (demo day only)")
    args = parser.parse_args(argv)
    if (args.zones is None) != (args.orders is None):
        parser.error("--zones and --orders go together")
    if args.persons < 2:
        parser.error("--persons must be at least 2")

    stopping = {"now": False}

    def _stop(signum: int, _frame: object) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    demo = Demo(out=lambda line: print(line, flush=True))
    try:
        print("wardstream demo: starting", flush=True)
        kafka = os.environ.get("WARDSTREAM_KAFKA", "")
        if not kafka:
            demo.broker = EmbeddedBroker(log_path=demo.log_dir / "broker.log")
            try:
                demo.broker.start_sync()
            except BrokerError as exc:
                print(f"wardstream demo: {exc}", file=sys.stderr, flush=True)
                demo.failed = True
                return 1
            kafka = demo.broker.bootstrap
            print(f"  + broker: Kafka bootstrap {kafka} (embedded Tansu, memory only)", flush=True)
        else:
            host, _, port = kafka.split(",")[0].rpartition(":")
            if not metadata_ok(host or "127.0.0.1", int(port)):
                print(f"wardstream demo: WARDSTREAM_KAFKA={kafka} does not answer", file=sys.stderr)
                return 1
            print(f"  + broker: using Kafka at {kafka}", flush=True)
        env = {"WARDSTREAM_KAFKA": kafka}
        all_orders, checkins = args.orders, None
        if args.zones is None:
            from simulators.live import DEMO_TIMEZONE

            # phones need the simulator to check in: without it, they would only miss
            day = stage_demo(demo.log_dir, args.persons,
                             phones=not (args.no_phones or args.no_simulator))
            args.zones, args.orders, all_orders, checkins = (day.zones, day.caseload_orders,
                                                             day.orders, day.checkins)
            print(f"  + demo day: {args.persons} persons, simulated clock at {day.shown} local "
                  f"({DEMO_TIMEZONE}), incidents from the first minute", flush=True)
            if day.phones:
                print(f"  + demo phones: {day.phones} phone-supervised persons checking in "
                      "(POST /checkin); check-in alerts within the first minutes", flush=True)
        have_data = Path(args.zones).exists() and Path(args.orders).exists()
        if not have_data:
            print(f"  - demo data missing ({args.zones}, {args.orders}); worker, gateway and "
                  "simulator left out", flush=True)
        web_port, jt808_port, osmand_port, gw_metrics = (free_port() for _ in range(4))
        if have_data and not stopping["now"]:
            demo.start_part(Part(
                "worker", "worker",
                ["--zones", args.zones, "--orders", all_orders, "--kafka", kafka,
                 "--web-port", str(web_port)],
                ready=_port_open(web_port), shows=f"metrics http://127.0.0.1:{web_port}/metrics",
                env=env))
        if have_data and not stopping["now"]:
            devices, osmand_keys = demo_provisioning(all_orders, demo.log_dir)
            demo.start_part(Part(
                "gateway", "gateway",
                ["--orders", all_orders, "--kafka", kafka, "--jt808-port", str(jt808_port),
                 "--osmand-port", str(osmand_port), "--metrics-port", str(gw_metrics),
                 "--provisioning", devices],
                ready=_port_open(jt808_port),
                shows=f"JT/T 808 on 127.0.0.1:{jt808_port}, OsmAnd on http://127.0.0.1:{osmand_port}/",
                env=env))
        database = None if stopping["now"] else demo.database()
        if database is not None and not stopping["now"]:
            data_args = ["--orders", all_orders, "--zones", args.zones] if have_data else []
            api_log = demo.log_dir / "api.log"
            if api_log.exists():
                api_log.unlink()  # the password is read from a fresh log
            started = demo.start_part(Part(
                "api", "api", ["--port", str(args.api_port), "--demo-user", "demo", *data_args],
                ready=_port_open(args.api_port),
                shows=f"command-centre dashboard http://127.0.0.1:{args.api_port}/",
                env={**env, "WARDSTREAM_DATABASE_URL": database,
                     "WARDSTREAM_DATABASE_SCHEMA": DEMO_SCHEMA}))
            password = demo.demo_password() if started else None
            if password:
                print(f"    log in as: demo / {password}  (a fresh password each run)", flush=True)
            if started and not stopping["now"]:
                notifier_log = demo.log_dir / "notifier.log"
                if notifier_log.exists():
                    notifier_log.unlink()  # the inbox is printed from a fresh log
                demo.start_part(Part(
                    "notifier", "notifier", ["--demo-inbox"],
                    shows="pages red alerts' duty officers (e-mail and webhook, inbox below)",
                    env={**env, "WARDSTREAM_DATABASE_URL": database,
                         "WARDSTREAM_DATABASE_SCHEMA": DEMO_SCHEMA,
                         "PYTHONUNBUFFERED": "1"}))
        if have_data and not args.no_simulator and not stopping["now"]:
            demo.start_part(Part(
                "simulator", "simulate",
                ["live", "--zones", args.zones, "--orders", args.orders,
                 "--osmand", f"http://127.0.0.1:{osmand_port}/", "--osmand-keys", osmand_keys,
                 "--persons", str(args.persons),
                 *(["--checkins", checkins] if checkins is not None else [])],
                shows=f"{args.persons} simulated wristbands reporting through the gateway "
                      "(OsmAnd over HTTP, which carries accuracy)", env=env))
        kept = "" if not demo.own_log_dir else ", removed when the demo stops"
        print(f"wardstream demo: running (logs in {demo.log_dir}{kept}); Ctrl-C stops everything",
              flush=True)
        inbox_seen = 0
        while not stopping["now"]:
            time.sleep(0.2)
            inbox_seen = _print_inbox(demo.log_dir / "notifier.log", inbox_seen)
            for part in demo.parts:
                if part.proc is not None and part.proc.poll() is not None and not stopping["now"]:
                    print(f"  ! {part.name} exited with code {part.proc.returncode}", flush=True)
                    demo.failed = True
                    part.proc = None
    finally:
        print("wardstream demo: stopping", flush=True)
        demo.stop()
        if demo.failed and demo.own_log_dir:
            print(f"wardstream demo: logs kept in {demo.log_dir}", flush=True)
        print("wardstream demo: stopped", flush=True)
    return 0
