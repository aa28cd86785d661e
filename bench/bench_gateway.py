"""Gateway benchmark: thousands of JT/T 808 terminals over TCP into Kafka.

Run by hand (not a timed test)::

    PYTHONPATH=. python bench/bench_gateway.py [--connections 5000] [--seconds 20]
        [--generators N] [--frames-per-write 1] [--rate 0] [--kafka HOST:PORT]

What it does, all on this machine:

1. starts the embedded broker (Tansu) unless ``--kafka`` is given;
2. writes an orders file naming every simulated terminal and starts
   ``wardstream gateway`` as a separate process (the process measured);
3. starts ``--generators`` load-generator processes (default: one per
   core), each holding its share of ``--connections`` TCP connections; each
   connection is a terminal that registers and authenticates (0x0100/0x0102)
   and then reports 0x0200 locations stop-and-wait: it sends
   ``--frames-per-write`` frames in one write and sends again when the
   gateway has acknowledged them (the gateway acknowledges only after Kafka
   accepted them), or, with ``--rate``, at an offered rate (open loop). The
   generators are driven over stdin and answer one JSON line per window
   (acknowledged fixes, their CPU time, a round-trip histogram);
4. measures over ``--seconds`` after a warm-up: fixes/s published (the
   gateway's own ``wardstream_gateway_messages_published_total`` counter),
   fixes/s acknowledged to the terminals, the CPU shares (cores) of the
   gateway, the broker, the generators and the whole machine, fixes per
   gateway CPU-second, the gateway's frame-receipt to Kafka-ack latency
   histogram (p50/p99 interpolated within buckets) and the terminals'
   send-to-acknowledgement round trip (p50/p99, 0.1 ms bins);
5. as baselines in the same run: the raw producer ceiling (the same
   envelopes sent by one plain aiokafka producer, no sockets, no decoding)
   and, with ``--socket-floor``, a do-nothing JT/T 808 replier
   (:class:`FloorServer`) under the same terminals and generators, i.e. what
   the TCP reads and writes alone cost per CPU second on this event loop;
   the gateway's ratio to it is reported in wall-clock and per-CPU-second
   terms.

By default (``--pin``, with two or more cores) the gateway (and the socket
floor) runs on the first core and this process, the broker and the
generators on the others, as a gateway runs in production on a core its
load does not compete for; ``gateway_core_idle_fraction`` and
``gateway_core_irq_fraction`` say how much of that core was idle and how
much went to interrupt work the kernel charges to no process (loopback TCP
delivery of the gateway's replies, delayed ACKs). ``--no-pin`` lets all of
them share every core. Other jobs on the machine may still use the
gateway's core: the wall-clock rate is what the gateway did with the CPU
it got (``gateway_cpu_share``); ``fixes_per_gateway_cpu_second``
(published fixes divided by the gateway's user+system CPU seconds in the
window) is what a gateway process does on a core of its own.
``busiest_generator_cpu_share`` near 1.0 would mean a generator, not the
gateway, limited the rate. ``--repeat N`` measures N windows and reports
each and the range.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway_load import (  # noqa: E402  (bench/ is on the path when run)
    GeneratorPool,
    hist_percentile,
    merge_windows,
    phone,
    raise_fd_limit,
)

from devices import jt808  # noqa: E402
from devices.wire import encode_messages  # noqa: E402
from stream.broker import EmbeddedBroker, free_port  # noqa: E402


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores (Linux /proc/stat)."""
    with open("/proc/stat") as fh:
        vals = [int(x) for x in fh.readline().split()[1:]]
    idle = vals[3] + vals[4]
    return float(sum(vals) - idle), float(sum(vals))


def core_jiffies(cpu: int | None) -> list[int]:
    """/proc/stat counters of one core (user nice system idle iowait irq softirq ...)."""
    if cpu is None:
        return []
    with open("/proc/stat") as fh:
        for line in fh:
            if line.startswith(f"cpu{cpu} "):
                return [int(x) for x in line.split()[1:]]
    return []


def pinning(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(gateway's cores, everyone else's) when pinning, else (None, None).

    The measured process gets the first core this benchmark may use, to
    itself; the broker, the load generators and this process share the
    others, so that what is measured is the gateway and not how the
    scheduler shares two cores between it and its own load.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return None, None
    return {cpus[0]}, set(cpus[1:])


def pinned_to(cpus: set[int] | None) -> Any:
    """A ``preexec_fn`` that pins the child (and every thread it starts) to ``cpus``."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        out[name] = float(value)
    return out


def hist_quantile(before: dict[str, float], after: dict[str, float], q: float) -> float:
    prefix = "wardstream_gateway_publish_latency_seconds_bucket"
    buckets = []
    for name, value in after.items():
        if name.startswith(prefix):
            le = name.split('le="')[1].rstrip('"}')
            bound = float("inf") if le == "+Inf" else float(le)
            buckets.append((bound, value - before.get(name, 0.0)))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    if not total:
        return float("nan")
    rank, prev_bound, prev_count = q * total, 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return prev_bound
            span = count - prev_count
            return prev_bound + (bound - prev_bound) * ((rank - prev_count) / span if span else 1)
        prev_bound, prev_count = bound, count
    return prev_bound


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def raw_ceiling(bootstrap: str, seconds: float) -> float:
    """Fixes/s one plain aiokafka producer pushes as 500-message envelopes (no sockets, no decode)."""
    from aiokafka import AIOKafkaProducer

    from devices.jt808 import decode

    msgs = decode(jt808.encode_location("013900000001", 1, int(time.time() * 1000), 32.0, 118.7,
                                        battery_pct=80)).telemetry * 500
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False,
                                max_batch_size=1 << 20, max_request_size=8 << 20)
    await producer.start()
    n = 0
    t0 = time.perf_counter()
    pending = []
    try:
        while time.perf_counter() - t0 < seconds:
            value = encode_messages(msgs)  # encoding included, as in the gateway
            pending.append(await producer.send("bench-raw", value, key=f"k{n % 64}".encode()))
            n += len(msgs)
            if len(pending) > 64:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return n / (time.perf_counter() - t0)
    finally:
        await producer.stop()


class FloorServer(asyncio.Protocol):
    """The socket floor: answers every JT/T 808 frame at once, no decoding, no Kafka.

    Registration and authentication get real replies (so the same terminals
    can log in); every other frame gets one pre-built 0x8001. What this
    process spends per reply is the cost of the TCP read and write alone,
    on the same event loop, which the gateway cannot go below.
    """

    REPLY = jt808.encode_general_response("013900000000", 1, 1, jt808.MSG_LOCATION)
    delay_s = 0.0
    """With a delay, reports are answered that much later (as a gateway answers after
    Kafka's acknowledgement) from a queue flushed every millisecond."""
    due: ClassVar[collections.deque[tuple[float, asyncio.BaseTransport, bytes]]] = (
        collections.deque())

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        n = data.count(b"\x7e") // 2
        if data[1:3] in (b"\x01\x00", b"\x01\x02"):
            msg = jt808.parse_frame(data[: data.index(b"\x7e", 1) + 1])
            h = msg.header
            if h.msg_id == jt808.MSG_REGISTER:
                out = jt808.encode_register_response(h.phone, 1, h.serial, 0, "floor")
            else:
                out = jt808.encode_general_response(h.phone, 1, h.serial, h.msg_id)
            self.transport.write(out)  # type: ignore[attr-defined]
            return
        if self.delay_s:
            self.due.append((time.monotonic() + self.delay_s, self.transport, self.REPLY * n))
            return
        self.transport.write(self.REPLY * n)  # type: ignore[attr-defined]


async def _flush_due() -> None:
    due = FloorServer.due
    while True:
        await asyncio.sleep(0.001)
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, transport, data = due.popleft()
            if not transport.is_closing():
                transport.write(data)  # type: ignore[attr-defined]


def serve_floor(port: int, delay_ms: float = 0.0) -> int:
    """Run :class:`FloorServer` on ``port`` (a child process of the benchmark)."""
    FloorServer.delay_s = delay_ms / 1000.0

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(FloorServer, "127.0.0.1", port, backlog=4096)
        flusher = loop.create_task(_flush_due()) if delay_ms else None
        print("floor listening", flush=True)
        await asyncio.Event().wait()
        del flusher

    raise_fd_limit(20_000)
    try:
        import uvloop

        uvloop.run(serve())
    except ImportError:
        asyncio.run(serve())
    return 0


def proc_cpu(pid: int | None) -> float:
    """CPU seconds of ``pid`` so far (0 when there is none or it is gone)."""
    if not pid:
        return 0.0
    try:
        return cpu_seconds(pid)
    except OSError:
        return 0.0


def system_seconds(pid: int | None) -> float:
    """System (kernel) CPU time of a process so far: its socket reads and writes, mostly."""
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return int(fields[12]) / os.sysconf("SC_CLK_TCK")


class Probe:
    """CPU counters and time at one instant: gateway (or floor server), broker, machine."""

    def __init__(self, server_pid: int, broker_pid: int | None,
                 server_core: int | None = None) -> None:
        self.t = time.perf_counter()
        self.server = proc_cpu(server_pid)
        self.server_sys = system_seconds(server_pid)
        self.broker = proc_cpu(broker_pid)
        self.busy, self.total = machine_busy()
        self.core = core_jiffies(server_core)


def shares(p0: Probe, p1: Probe, gen_cpu: list[float]) -> dict[str, Any]:
    """CPU shares (cores) over the window between two probes."""
    el = p1.t - p0.t
    core: dict[str, float] = {}
    if p0.core and p1.core:
        d = [b - a for a, b in zip(p0.core, p1.core, strict=False)]
        total = max(sum(d), 1)
        # the pinned core: idle, and interrupt work (loopback TCP delivery, delayed ACKs)
        # that the kernel does not charge to any process
        core = {"core_idle": (d[3] + d[4]) / total, "core_irq": (d[5] + d[6]) / total}
    return {**core, "elapsed": el, "server_cpu": p1.server - p0.server,
            "server_sys": p1.server_sys - p0.server_sys,
            "server_share": (p1.server - p0.server) / el,
            "broker_share": (p1.broker - p0.broker) / el,
            "generators_share": sum(gen_cpu) / el,
            "generator_max_share": max(gen_cpu) / el if gen_cpu else 0.0,
            "machine_busy_cores": (p1.busy - p0.busy) / max(p1.total - p0.total, 1)
            * (os.cpu_count() or 1)}


async def socket_floor(args: argparse.Namespace, server_cpus: set[int] | None
                       ) -> dict[str, object]:
    """Replies/s and replies per CPU second of :class:`FloorServer` under the same terminals."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve-floor", str(port),
                             "--floor-delay-ms", str(args.floor_delay_ms)],
                            stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            preexec_fn=pinned_to(server_cpus))
    pool = GeneratorPool(port, args.connections, args.generators, args.frames_per_write,
                         args.rate)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        await pool.start()
        await pool.command("start")
        await asyncio.sleep(min(args.warmup, 3.0))
        await pool.command("begin")
        p0 = Probe(proc.pid, None)
        await asyncio.sleep(args.seconds)
        w = merge_windows(await pool.command("end"))
        p1 = Probe(proc.pid, None)
        sh = shares(p0, p1, w["cpu"])
        return {"socket_floor_replies_per_s": round(w["acked"] / sh["elapsed"]),
                "socket_floor_cpu_share": round(sh["server_share"], 2),
                "socket_floor_generators_cpu_share": round(sh["generators_share"], 2),
                "socket_floor_machine_busy_cores": round(sh["machine_busy_cores"], 2),
                "socket_floor_replies_per_cpu_second": round(
                    w["acked"] / max(sh["server_cpu"], 1e-9)),
                "socket_floor_system_cpu_fraction": round(
                    sh["server_sys"] / max(sh["server_cpu"], 1e-9), 2),
                "socket_floor_system_us_per_reply": round(
                    sh["server_sys"] / max(w["acked"], 1) * 1e6, 2)}
    finally:
        await pool.close()
        proc.kill()
        proc.wait()


async def measure_window(pool: GeneratorPool, pid: int, broker_pid: int | None,
                         metrics_port: int, seconds: float, core: int | None
                         ) -> dict[str, Any]:
    """One measurement window: counters, CPU times and latencies before and after."""
    await pool.command("begin")
    before, p0 = scrape(metrics_port), Probe(pid, broker_pid, core)
    await asyncio.sleep(seconds)
    after, p1 = scrape(metrics_port), Probe(pid, broker_pid, core)
    w = merge_windows(await pool.command("end"))
    name = "wardstream_gateway_messages_published_total"
    return {"before": before, "after": after, "p0": p0, "p1": p1, "gen": w,
            "shares": shares(p0, p1, w["cpu"]),
            "published_before": before[name], "published_total": after[name],
            "published": after[name] - before[name],
            "load": round(os.getloadavg()[0], 2)}


def gateway_command(args: argparse.Namespace, orders_path: str, bootstrap: str, jt_port: int,
                    metrics_port: int) -> list[str]:
    prof = ["-m", "cProfile", "-o", args.profile] if args.profile else []
    cmd = [sys.executable, *prof, "-m", "stream.cli", "gateway", "--orders", orders_path,
           "--kafka", bootstrap, "--host", "127.0.0.1", "--jt808-port", str(jt_port),
           "--metrics-port", str(metrics_port), "--no-follow-orders",
           "--max-queue", str(args.max_queue), "--linger-ms", str(args.linger_ms),
           # a throughput rig: every connection sends as fast as it is acknowledged
           "--allow-unprovisioned", "--rate-per-device", "0"]
    if args.envelope_by:
        cmd += ["--envelope-by", args.envelope_by]
    return cmd


async def run(args: argparse.Namespace) -> dict[str, object]:
    limit = raise_fd_limit(args.connections * 2 + 1024)
    server_cpus, other_cpus = pinning(args.pin)
    if other_cpus is not None:
        os.sched_setaffinity(0, other_cpus)  # the broker and the generators inherit it
    core = min(server_cpus) if server_cpus else None
    broker = None
    bootstrap = args.kafka
    if not bootstrap:
        broker = EmbeddedBroker()
        await broker.start()
        bootstrap = broker.bootstrap
    broker_pid = broker.pid if broker is not None else None
    tmp = tempfile.mkdtemp(prefix="bench-gw-")
    orders = [{"person_id": f"P-{i:06d}", "devices": [phone(i)], "jurisdiction": "320102",
               "rules": []} for i in range(args.connections)]
    orders_path = os.path.join(tmp, "orders.json")
    with open(orders_path, "w") as fh:
        json.dump(orders, fh)
    jt_port, metrics_port = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), WARDSTREAM_GATEWAY_SECRET="bench",
               WARDSTREAM_LOG_LEVEL="WARNING")
    gw = subprocess.Popen(gateway_command(args, orders_path, bootstrap, jt_port, metrics_port),
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          preexec_fn=pinned_to(server_cpus))
    pool = GeneratorPool(jt_port, args.connections, args.generators, args.frames_per_write,
                         args.rate)
    try:
        assert gw.stdout is not None
        line = gw.stdout.readline()
        if "wardstream gateway:" not in line:
            raise RuntimeError(f"gateway did not start: {line}{gw.stdout.read()}")
        print(f"gateway pid {gw.pid}, broker pid {broker_pid}", file=sys.stderr, flush=True)
        t = time.perf_counter()
        logged_in = await pool.start()
        connect_s = time.perf_counter() - t
        print(f"{logged_in} terminals registered and authenticated in {connect_s:.1f} s "
              f"by {pool.n} load-generator processes", file=sys.stderr, flush=True)
        await pool.command("start")
        await asyncio.sleep(args.warmup)
        windows = []
        for _ in range(args.repeat):
            windows.append(await measure_window(pool, gw.pid, broker_pid, metrics_port,
                                                args.seconds, core))
        first, last = windows[0], windows[-1]
        elapsed = sum(w["shares"]["elapsed"] for w in windows)
        published = sum(w["published"] for w in windows)
        cpu = sum(w["shares"]["server_cpu"] for w in windows)
        conns = last["after"].get('wardstream_gateway_connections{protocol="jt808"}', 0)
        hist: dict[int, int] = {}
        for w in windows:
            for b, c in w["gen"]["hist"].items():
                hist[b] = hist.get(b, 0) + c

        def avg(k: str) -> float:
            return round(sum(w["shares"][k] * w["shares"]["elapsed"] for w in windows)
                         / elapsed, 2)

        result: dict[str, object] = {
            "cores": os.cpu_count(), "fd_limit": limit,
            "gateway_pinned_to": sorted(server_cpus) if server_cpus else "not pinned",
            "connections": int(conns),
            "generators": pool.n, "frames_per_write": args.frames_per_write,
            "envelope_by": args.envelope_by or "gateway default",
            "linger_ms": args.linger_ms, "seconds": round(elapsed, 1),
            "published_fixes_per_s": round(published / elapsed),
            "acknowledged_fixes_per_s": round(sum(w["gen"]["acked"] for w in windows) / elapsed),
            "gateway_cpu_seconds": round(cpu, 2),
            # cores used by each party over the windows: the gateway, the broker, the
            # generators (sum, and the busiest one: near 1.0 it is a generator that limits
            # the wall-clock rate), and the whole machine
            "gateway_cpu_share": avg("server_share"),
            "broker_cpu_share": avg("broker_share"),
            "generators_cpu_share": avg("generators_share"),
            "busiest_generator_cpu_share": avg("generator_max_share"),
            "machine_busy_cores": avg("machine_busy_cores"),
            **({"gateway_core_idle_fraction": avg("core_idle"),
                "gateway_core_irq_fraction": avg("core_irq")} if core is not None else {}),
            "fixes_per_gateway_cpu_second": round(published / max(cpu, 1e-9)),
            # the kernel's part (socket reads and writes, loopback TCP) of the gateway's CPU
            "gateway_system_cpu_fraction": round(
                sum(w["shares"]["server_sys"] for w in windows) / max(cpu, 1e-9), 2),
            "gateway_system_us_per_fix": round(
                sum(w["shares"]["server_sys"] for w in windows) / max(published, 1) * 1e6, 2),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "gateway_frame_to_kafka_p50_ms": round(
                hist_quantile(first["before"], last["after"], 0.50) * 1000, 1),
            "gateway_frame_to_kafka_p99_ms": round(
                hist_quantile(first["before"], last["after"], 0.99) * 1000, 1),
            "terminal_round_trip_p50_ms": round(hist_percentile(hist, 0.50) * 1000, 1),
            "terminal_round_trip_p99_ms": round(hist_percentile(hist, 0.99) * 1000, 1),
            "connections_lost": last["gen"]["lost"],
            "offered_fixes_per_s": args.rate or "closed loop",
            "sends_skipped_still_waiting": sum(w["gen"]["skipped"] for w in windows),
        }
        if len(windows) > 1:
            # per-window figures: the machine is shared, so report the spread, not one number
            per = [{"published_fixes_per_s": round(w["published"] / w["shares"]["elapsed"]),
                    "gateway_cpu_share": round(w["shares"]["server_share"], 2),
                    "fixes_per_gateway_cpu_second": round(
                        w["published"] / max(w["shares"]["server_cpu"], 1e-9)),
                    "frame_to_kafka_p99_ms": round(
                        hist_quantile(w["before"], w["after"], 0.99) * 1000, 1),
                    "load_average_1m": w["load"]} for w in windows]
            result["windows"] = per
            for k in ("published_fixes_per_s", "fixes_per_gateway_cpu_second",
                      "frame_to_kafka_p99_ms", "gateway_cpu_share"):
                vals = [w[k] for w in per]
                result[f"{k}_range"] = [min(vals), max(vals)]
        await pool.close()
        gw.send_signal(signal.SIGTERM)
        gw.wait(timeout=60)
        if not args.no_baseline:
            result["raw_producer_fixes_per_s"] = round(await raw_ceiling(bootstrap, 5.0))
            result["gateway_vs_raw"] = round(
                result["published_fixes_per_s"] / result["raw_producer_fixes_per_s"], 3)  # type: ignore[operator]
        if args.socket_floor:
            result.update(await socket_floor(args, server_cpus))
            result["gateway_vs_socket_floor_wall"] = round(
                result["published_fixes_per_s"]  # type: ignore[operator]
                / result["socket_floor_replies_per_s"], 3)
            result["gateway_vs_socket_floor_per_cpu_second"] = round(
                result["fixes_per_gateway_cpu_second"]  # type: ignore[operator]
                / result["socket_floor_replies_per_cpu_second"], 3)
        return result
    finally:
        await pool.close()
        if gw.poll() is None:
            gw.kill()
            gw.wait()
        if broker is not None:
            await broker.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, default=5000)
    p.add_argument("--generators", type=int, default=os.cpu_count() or 2,
                   help="load-generator processes sharing the connections (default: one per core)")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--repeat", type=int, default=1,
                   help="measurement windows of --seconds each (reports the range across them)")
    p.add_argument("--linger-ms", type=float, default=5.0, help="the gateway's --linger-ms")
    p.add_argument("--frames-per-write", type=int, default=1)
    p.add_argument("--rate", type=float, default=0.0,
                   help="offered fixes/s (open loop, for latency); 0 = closed loop (capacity)")
    p.add_argument("--max-queue", type=int, default=50_000)
    p.add_argument("--kafka", default="")
    p.add_argument("--envelope-by", choices=("key", "partition"), default="",
                   help="the gateway's --envelope-by (default: the gateway's default)")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--socket-floor", action="store_true",
                   help="also measure a do-nothing JT/T 808 replier under the same terminals")
    p.add_argument("--floor-delay-ms", type=float, default=0.0,
                   help="with --socket-floor: the floor answers reports this much later, as "
                        "the gateway answers after Kafka (default: at once)")
    p.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                   help="give the gateway (and the socket floor) the first core to itself and "
                        "run the broker and the generators on the others (default: on, with "
                        "two or more cores); --no-pin lets them share every core")
    p.add_argument("--serve-floor", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    p.add_argument("--profile", default="", help="run the gateway under cProfile, writing here")
    args = p.parse_args(argv)
    if args.serve_floor:
        return serve_floor(args.serve_floor, args.floor_delay_ms)
    try:
        import uvloop

        result = uvloop.run(run(args))
    except ImportError:
        result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
    else:
        width = max(len(k) for k in result)
        for k, v in result.items():
            print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
