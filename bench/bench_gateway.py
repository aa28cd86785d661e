"""Gateway benchmark: thousands of JT/T 808 terminals over TCP into Kafka.

Run by hand (not a timed test)::

    PYTHONPATH=. python bench/bench_gateway.py [--connections 5000] [--seconds 20]
        [--frames-per-write 1] [--kafka HOST:PORT]

What it does, all on this machine:

1. starts the embedded broker (Tansu) unless ``--kafka`` is given;
2. writes an orders file naming every simulated terminal and starts
   ``wardstream gateway`` as a separate process (the process measured);
3. in this process, opens ``--connections`` TCP connections, each a
   terminal that registers and authenticates (0x0100/0x0102) and then
   reports 0x0200 locations stop-and-wait: it sends ``--frames-per-write``
   frames in one write and sends again when the gateway has acknowledged
   them (the gateway acknowledges only after Kafka accepted them);
4. measures over ``--seconds`` after a warm-up: fixes/s published (the
   gateway's own ``wardstream_gateway_messages_published_total`` counter),
   fixes/s acknowledged to the terminals, the gateway's frame-receipt to
   Kafka-ack latency histogram (p50/p99 interpolated within buckets) and the
   terminals' send-to-acknowledgement round trip (p50/p99, exact);
5. as a baseline in the same run, the raw producer ceiling: the same
   envelopes sent by one plain aiokafka producer with no sockets and no
   decoding, so the gateway figure can be read as a ratio.

The machine's core count, its load average and the CPU time the gateway
process used are printed: the broker, the gateway and this load generator
(and whatever else runs on the machine) share the cores, so the wall-clock
rate is a lower bound of what a gateway process does on a core of its own;
``fixes_per_gateway_cpu_second`` (published fixes divided by the gateway's
user+system CPU seconds in the window) is the per-core capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devices import jt808  # noqa: E402
from devices.wire import encode_messages  # noqa: E402
from stream.broker import EmbeddedBroker, free_port  # noqa: E402


def raise_fd_limit(want: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, want), hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def phone(i: int) -> str:
    return f"{13900000000 + i:012d}"


class Terminal(asyncio.Protocol):
    """One simulated terminal: stop-and-wait bursts of pre-encoded location frames."""

    def __init__(self, bench: Bench, idx: int) -> None:
        self.bench, self.idx = bench, idx
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.waiting = 0
        self.sent_at = 0.0
        self.login: asyncio.Future[bytes] | None = None
        self.frames: list[bytes] = []
        self.k = 0
        self.running = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.login is not None and not self.login.done():
            self.buf += data
            if self.buf.count(b"\x7e") >= 2:
                end = self.buf.index(b"\x7e", 1)
                frame, self.buf = self.buf[: end + 1], self.buf[end + 1:]
                self.login.set_result(frame)
            return
        n = data.count(b"\x7e") // 2  # each 0x8001 is one 7E...7E frame
        self.waiting -= n
        if self.waiting <= 0 and self.running:
            self.bench.acked(self, time.perf_counter() - self.sent_at)
            if not self.bench.rate:
                self.send_burst()

    async def exchange(self, frame: bytes) -> jt808.Message:
        loop = asyncio.get_running_loop()
        self.login = loop.create_future()
        assert self.transport is not None
        self.transport.write(frame)
        reply = await asyncio.wait_for(self.login, 60)
        return jt808.parse_frame(reply)

    def send_burst(self) -> None:
        per = self.bench.per_write
        frames = self.frames
        out = [frames[(self.k + j) % len(frames)] for j in range(per)]
        self.k += per
        self.waiting = per
        self.sent_at = time.perf_counter()
        assert self.transport is not None
        self.transport.write(b"".join(out))

    def connection_lost(self, exc: Exception | None) -> None:
        self.running = False
        self.bench.lost += 1


class Bench:
    def __init__(self, port: int, connections: int, per_write: int, rate: float = 0.0) -> None:
        self.port, self.n, self.per_write, self.rate = port, connections, per_write, rate
        self.skipped = 0
        self.terminals: list[Terminal] = []
        self.count = 0
        self.latencies: list[float] = []
        self.record = False
        self.lost = 0

    def acked(self, t: Terminal, rtt: float) -> None:
        self.count += self.per_write
        if self.record:
            self.latencies.append(rtt)

    async def connect_all(self) -> None:
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(400)
        now = int(time.time() * 1000)

        async def one(i: int) -> None:
            async with sem:
                tr, t = await loop.create_connection(lambda: Terminal(self, i), "127.0.0.1",
                                                     self.port)
                assert isinstance(t, Terminal)
                t.transport = tr  # type: ignore[assignment]
                p = phone(i)
                msg = await t.exchange(jt808.encode_register(p, 1))
                _, result, code = jt808.decode_register_response(msg.body)
                assert result == 0, result
                msg = await t.exchange(jt808.encode_auth(p, 2, code))
                assert jt808.decode_general_response(msg.body)[2] == 0
                t.frames = [jt808.encode_location(p, 3 + k, now - (10 - k) * 1000,
                                                  32.0 + (i % 1000) / 1e4, 118.7 + k / 1e4,
                                                  speed_kmh=4.5, battery_pct=80)
                            for k in range(10)]
                self.terminals.append(t)

        await asyncio.gather(*(one(i) for i in range(self.n)))

    def start(self) -> None:
        for t in self.terminals:
            t.running = True
            if not self.rate:
                t.send_burst()
        if self.rate:
            asyncio.get_running_loop().create_task(self.paced())

    async def paced(self) -> None:
        """Open loop at ``rate`` fixes/s: terminals take turns; one still waiting is skipped."""
        tick = 0.01
        per_tick = self.rate * tick / self.per_write
        owed, i = 0.0, 0
        next_t = time.perf_counter()
        while any(t.running for t in self.terminals[:1]):
            owed += per_tick
            while owed >= 1:
                owed -= 1
                t = self.terminals[i % len(self.terminals)]
                i += 1
                if t.waiting > 0:
                    self.skipped += 1
                else:
                    t.send_burst()
            next_t += tick
            await asyncio.sleep(max(0.0, next_t - time.perf_counter()))


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


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


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


async def run(args: argparse.Namespace) -> dict[str, object]:
    limit = raise_fd_limit(args.connections * 2 + 1024)
    broker = None
    bootstrap = args.kafka
    if not bootstrap:
        broker = EmbeddedBroker()
        await broker.start()
        bootstrap = broker.bootstrap
    tmp = tempfile.mkdtemp(prefix="bench-gw-")
    orders = [{"person_id": f"P-{i:06d}", "devices": [phone(i)], "jurisdiction": "320102",
               "rules": []} for i in range(args.connections)]
    orders_path = os.path.join(tmp, "orders.json")
    with open(orders_path, "w") as fh:
        json.dump(orders, fh)
    jt_port, metrics_port = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), WARDSTREAM_GATEWAY_SECRET="bench",
               WARDSTREAM_LOG_LEVEL="WARNING")
    prof = ["-m", "cProfile", "-o", args.profile] if args.profile else []
    gw = subprocess.Popen(
        [sys.executable, *prof, "-m", "stream.cli", "gateway", "--orders", orders_path, "--kafka", bootstrap,
         "--host", "127.0.0.1", "--jt808-port", str(jt_port), "--metrics-port", str(metrics_port),
         "--no-follow-orders", "--max-queue", str(args.max_queue),
         "--envelope-by", args.envelope_by],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert gw.stdout is not None
        line = gw.stdout.readline()
        if "wardstream gateway:" not in line:
            raise RuntimeError(f"gateway did not start: {line}{gw.stdout.read()}")
        bench = Bench(jt_port, args.connections, args.frames_per_write, args.rate)
        t = time.perf_counter()
        await bench.connect_all()
        connect_s = time.perf_counter() - t
        print(f"{len(bench.terminals)} terminals registered and authenticated in {connect_s:.1f} s",
              flush=True)
        bench.start()
        await asyncio.sleep(args.warmup)
        before, c0, t0 = scrape(metrics_port), bench.count, time.perf_counter()
        cpu0 = cpu_seconds(gw.pid)
        bench.record = True
        await asyncio.sleep(args.seconds)
        bench.record = False
        after, c1, t1 = scrape(metrics_port), bench.count, time.perf_counter()
        cpu1 = cpu_seconds(gw.pid)
        for term in bench.terminals:
            term.running = False
        elapsed = t1 - t0
        published = after["wardstream_gateway_messages_published_total"] - before[
            "wardstream_gateway_messages_published_total"]
        conns = after.get('wardstream_gateway_connections{protocol="jt808"}', 0)
        result: dict[str, object] = {
            "cores": os.cpu_count(), "fd_limit": limit, "connections": int(conns),
            "frames_per_write": args.frames_per_write, "envelope_by": args.envelope_by, "seconds": round(elapsed, 1),
            "published_fixes_per_s": round(published / elapsed),
            "acknowledged_fixes_per_s": round((c1 - c0) / elapsed),
            "gateway_cpu_share": round((cpu1 - cpu0) / elapsed, 2),
            "fixes_per_gateway_cpu_second": round(published / max(cpu1 - cpu0, 1e-9)),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "gateway_frame_to_kafka_p50_ms": round(hist_quantile(before, after, 0.50) * 1000, 1),
            "gateway_frame_to_kafka_p99_ms": round(hist_quantile(before, after, 0.99) * 1000, 1),
            "terminal_round_trip_p50_ms": round(percentile(bench.latencies, 0.50) * 1000, 1),
            "terminal_round_trip_p99_ms": round(percentile(bench.latencies, 0.99) * 1000, 1),
            "connections_lost": bench.lost,
            "offered_fixes_per_s": args.rate or "closed loop",
            "sends_skipped_still_waiting": bench.skipped,
        }
        for term in bench.terminals:
            if term.transport is not None:
                term.transport.close()
        gw.send_signal(signal.SIGTERM)
        gw.wait(timeout=60)
        if not args.no_baseline:
            result["raw_producer_fixes_per_s"] = round(await raw_ceiling(bootstrap, 5.0))
            result["gateway_vs_raw"] = round(
                result["published_fixes_per_s"] / result["raw_producer_fixes_per_s"], 3)  # type: ignore[operator]
        return result
    finally:
        if gw.poll() is None:
            gw.kill()
        if broker is not None:
            await broker.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, default=5000)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--frames-per-write", type=int, default=1)
    p.add_argument("--rate", type=float, default=0.0,
                   help="offered fixes/s (open loop, for latency); 0 = closed loop (capacity)")
    p.add_argument("--max-queue", type=int, default=50_000)
    p.add_argument("--kafka", default="")
    p.add_argument("--envelope-by", choices=("key", "partition"), default="key")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    p.add_argument("--profile", default="", help="run the gateway under cProfile, writing here")
    args = p.parse_args(argv)
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
