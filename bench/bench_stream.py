"""Benchmark: the stream worker end to end on the embedded broker.

One run measures, on this machine and against a baseline taken in the same run:

1. **raw ceiling**: a plain aiokafka consumer (no group) reading every
   telemetry envelope of the backlog and decoding it with ``TelemetryDecoder``
   (what any consumer must pay; no evaluation, no publishing);
2. **worker sustained**: one worker (its own process, ``wardstream worker``)
   consuming the same backlog: decode, evaluate with the geofence engine,
   publish alert records and dead letters, snapshot and commit, until it has
   caught up; fixes/s = fixes in the backlog / time from the worker's first
   assignment to its last commit;
3. **latency at a fixed offered load**: a fresh broker, one worker process, a
   producer offering live fixes (``ts`` = wall time) at a fixed rate (default
   10,000 fixes/s) in which a share of persons walk in and out of an exclusion
   zone; p50/p99 of *alert consumed by a downstream consumer* minus *event
   time of the lifecycle event* (the confirming fix), over every record.

Phase 2 runs twice on the same backlog, in the same run: keyed with the
project's partition keys (the direct path of the gateway) and keyed by
``device_id`` (as a vendor platform sends; the worker re-keys every message
to its person's partition first, :mod:`stream.repartition`). The table gives
both rates and their ratio.

Data: generated here. ``--persons`` persons around Nanjing, each with an
inclusion zone (one district polygon with ``--vertices`` vertices), an
exclusion zone (one of 200 circles, dwell 0 so the second certain fix opens)
and a signal_loss rule.

Run::

    PYTHONPATH=. python bench/bench_stream.py                 # full size
    PYTHONPATH=. python bench/bench_stream.py --quick

Prints one table and a JSON line (for ``wardstream bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from geofence.model import AlertRecord, Fix, Order, TelemetryDecoder, encode, parse_orders
from stream.broker import EmbeddedBroker
from stream.keying import Router, partition_of
from stream.settings import Settings
from stream.topics import ALERTS, TELEMETRY, ensure_topics, topic_specs

REPO = Path(__file__).resolve().parent.parent
LON0, LAT0 = 118.79, 32.06
GROUP = "wardstream-bench"


def world(persons: int, vertices: int, seed: int = 1) -> tuple[dict[str, Any], list[Order]]:
    """Zones (one district, 200 exclusion circles) and one order per person."""
    rng = random.Random(seed)
    ring = []
    for i in range(vertices):
        a = 2 * math.pi * i / vertices
        r = 0.08 * (1 + 0.08 * math.sin(7 * a) + 0.03 * math.sin(23 * a))
        ring.append([round(LON0 + r * math.cos(a) / math.cos(math.radians(LAT0)), 7),
                     round(LAT0 + r * math.sin(a), 7)])
    ring.append(ring[0])
    feats: list[dict[str, Any]] = [{"type": "Feature", "id": "D-1", "properties": {},
                                    "geometry": {"type": "Polygon", "coordinates": [ring]}}]
    for z in range(200):
        feats.append({"type": "Feature", "id": f"X-{z}", "properties": {"radius_m": 150},
                      "geometry": {"type": "Point", "coordinates": [
                          round(LON0 + rng.uniform(-0.05, 0.05), 6),
                          round(LAT0 + rng.uniform(-0.05, 0.05), 6)]}})
    orders = [{"person_id": f"P-{i:06d}", "devices": [f"WB-{i:06d}"], "jurisdiction": "320102",
               "rules": [{"id": "inc", "type": "inclusion", "zone": "D-1"},
                         {"id": "exc", "type": "exclusion", "zone": f"X-{i % 200}",
                          "dwell_s": 0},
                         {"id": "sig", "type": "signal_loss", "after_s": 3600}]}
              for i in range(persons)]
    return {"type": "FeatureCollection", "features": feats}, parse_orders(json.dumps(orders))


def positions(zones: dict[str, Any], persons: int, seed: int = 2) -> list[tuple[float, float]]:
    """A home position per person, outside its exclusion zone."""
    rng = random.Random(seed)
    out = []
    for _ in range(persons):
        out.append((LON0 + rng.uniform(-0.04, 0.04), LAT0 + rng.uniform(-0.04, 0.04)))
    return out


def zone_centre(zones: dict[str, Any], i: int) -> tuple[float, float]:
    c = zones["features"][1 + i % 200]["geometry"]["coordinates"]
    return (c[0], c[1])


def fix_for(i: int, ts: int, round_no: int, homes: Sequence[tuple[float, float]],
            zones: dict[str, Any], breach_every: int) -> Fix:
    """Person ``i``'s fix in round ``round_no``: at home, or (for one person in
    ``breach_every``) alternately inside and outside their exclusion zone, two
    rounds each, so episodes open and clear all the time."""
    if i % breach_every == 0 and (round_no // 2) % 2 == 1:
        lon, lat = zone_centre(zones, i)
    else:
        lon, lat = homes[i]
    return Fix(device_id=f"WB-{i:06d}", ts=ts, lat=lat, lon=lon, accuracy_m=10.0)


# ------------------------------------------------------------------ helpers

def spawn_worker(bootstrap: str, zones_file: Path, orders_file: Path, partitions: int,
                 log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update({"PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
                "WARDSTREAM_TOPIC_PARTITIONS": str(partitions),
                "WARDSTREAM_LOG_LEVEL": "INFO"})
    return subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "worker", "--zones", str(zones_file), "--orders",
         str(orders_file), "--kafka", bootstrap, "--web-port", "0", "--group", GROUP],
        stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env)


async def committed(bootstrap: str, partitions: int) -> dict[int, int]:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False)
    await c.start()
    try:
        return {p: (await c.committed(TopicPartition(TELEMETRY, p))) or 0
                for p in range(partitions)}
    finally:
        await c.stop()


async def produce_backlog(bootstrap: str, router: Router, fixes_total: int, persons: int,
                          homes: Sequence[tuple[float, float]], zones: dict[str, Any],
                          envelope: int, breach_every: int,
                          keying: str = "partition") -> tuple[dict[int, int], int]:
    """Pre-produce the throughput backlog; return end offsets and fix count.

    ``keying="device"``: each envelope keyed by its first fix's device id, on
    the partition Kafka's default partitioner gives that key.
    """
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False,
                         linger_ms=5, max_batch_size=1024 * 1024,
                         max_request_size=8 * 1024 * 1024)
    await p.start()
    ends: dict[int, int] = {}
    sent = 0
    base = int(time.time() * 1000) - 6 * 3_600_000
    rounds = max(1, fixes_total // persons)
    futs = []
    try:
        for r in range(rounds):
            ts = base + r * 60_000
            batch = [fix_for(i, ts + i % 1000, r, homes, zones, breach_every)
                     for i in range(persons)]
            if keying == "device":
                groups: dict[int, list[Fix]] = {}
                for f in batch:
                    groups.setdefault(partition_of(f.device_id, router.partitions), []).append(f)
            else:
                groups = router.group(batch)  # type: ignore[assignment]
            for part, group in groups.items():
                for k in range(0, len(group), envelope):
                    chunk = group[k:k + envelope]
                    key = (chunk[0].device_id if keying == "device"
                           else router.key_of(chunk[0])).encode()
                    futs.append(await p.send(TELEMETRY, encode(chunk), key=key, partition=part))
            sent += len(batch)
        for md in await asyncio.gather(*futs):
            ends[md.partition] = max(ends.get(md.partition, 0), md.offset + 1)
    finally:
        await p.stop()
    return ends, sent


async def raw_ceiling(bootstrap: str, partitions: int, ends: dict[int, int]) -> tuple[float, int]:
    """Plain aiokafka getmany + TelemetryDecoder over the whole backlog."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024,
                         fetch_max_bytes=64 * 1024 * 1024)
    await c.start()
    decoder = TelemetryDecoder()
    tps = [TopicPartition(TELEMETRY, p) for p in range(partitions)]
    c.assign(tps)
    await c.seek_to_beginning(*tps)
    n = 0
    pos = dict.fromkeys(range(partitions), 0)
    t0 = time.perf_counter()
    while any(pos[p] < ends.get(p, 0) for p in pos):
        data = await c.getmany(timeout_ms=500, max_records=20_000)
        for tp, recs in data.items():
            for r in recs:
                n += len(decoder.decode(r.value).messages)
            pos[tp.partition] = recs[-1].offset + 1
    dt = time.perf_counter() - t0
    await c.stop()
    return n / dt, n


async def wait_log(log: Path, text: str, timeout: float) -> float:
    t0 = time.monotonic()
    while text not in log.read_text(errors="replace"):
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"worker did not log {text!r} within {timeout} s: see {log}")
        await asyncio.sleep(0.05)
    return time.monotonic()


async def worker_port(log: Path, timeout: float) -> int:
    """The worker's web port, from the line it prints when started."""
    import re

    t0 = time.monotonic()
    while True:
        m = re.search(r"metrics on http://127.0.0.1:(\d+)/", log.read_text(errors="replace"))
        if m:
            return int(m.group(1))
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"worker did not start within {timeout} s: see {log}")
        await asyncio.sleep(0.05)


async def scrape(port: int) -> dict[str, float]:
    """The worker's metrics as {sample name with labels: value}."""
    import aiohttp

    async with aiohttp.ClientSession() as s, \
            s.get(f"http://127.0.0.1:{port}/metrics") as r:
        text = await r.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def hist_quantile(samples: dict[str, float], name: str, q: float, label: str = "") -> float:
    """A quantile from a Prometheus histogram's cumulative buckets (upper bound)."""
    buckets = []
    for k, v in samples.items():
        if k.startswith(name + "_bucket{") and label in k:
            le = k.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((math.inf if le == "+Inf" else float(le), v))
    buckets.sort()
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    total = buckets[-1][1]
    for le, c in buckets:
        if c >= q * total:
            return le
    return math.inf


async def fixes_in(port: int) -> tuple[float, float]:
    """Telemetry messages the worker has consumed, from /metrics: all results
    but ``rerouted`` (a re-keyed message is counted again where it is
    evaluated), and ``rerouted``."""
    import aiohttp

    async with aiohttp.ClientSession() as s, \
            s.get(f"http://127.0.0.1:{port}/metrics") as r:
        text = await r.text()
    lines = [line for line in text.splitlines()
             if line.startswith("wardstream_worker_fixes_in_total{")]
    rerouted = sum(float(x.rsplit(" ", 1)[1]) for x in lines if 'result="rerouted"' in x)
    return sum(float(x.rsplit(" ", 1)[1]) for x in lines) - rerouted, rerouted


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------ phases

async def throughput(a: argparse.Namespace, tmp: Path, zones: dict[str, Any],
                     orders: list[Order], homes: list[tuple[float, float]],
                     keying: str = "partition") -> dict[str, Any]:
    broker = EmbeddedBroker()
    await broker.start()
    try:
        settings = Settings.from_env({}, topic_partitions=a.partitions)
        await ensure_topics(broker.bootstrap, topic_specs(settings))
        router = Router.build(orders, a.partitions)
        t0 = time.perf_counter()
        ends, fixes = await produce_backlog(broker.bootstrap, router, a.fixes, a.persons, homes,
                                            zones, a.envelope, a.breach_every, keying)
        produce_s = time.perf_counter() - t0
        raw_rate, raw_n = await raw_ceiling(broker.bootstrap, a.partitions, ends)
        log = tmp / f"worker-throughput-{keying}.log"
        proc = spawn_worker(broker.bootstrap, tmp / "zones.json", tmp / "orders.json",
                            a.partitions, log)
        try:
            port = await worker_port(log, 90)
            deadline = time.monotonic() + a.timeout
            first: tuple[float, float] | None = None
            while True:
                n, rerouted = await fixes_in(port)
                now = time.monotonic()
                if n + rerouted > 0 and first is None:
                    first = (now, n)
                if n >= fixes:
                    break
                if now > deadline or proc.poll() is not None:
                    raise RuntimeError(f"worker did not catch up (see {log}): {n} < {fixes}")
                await asyncio.sleep(0.05)
            assert first is not None
            worker_s = now - first[0]
            worker_n = n - first[1]
        finally:
            stop(proc)
    finally:
        await broker.stop()
    return {"fixes": fixes, "messages": sum(ends.values()), "produce_s": produce_s,
            "raw_fixes_per_s": raw_rate, "raw_fixes": raw_n,
            "worker_s": worker_s, "worker_fixes_per_s": worker_n / worker_s}


async def latency(a: argparse.Namespace, tmp: Path, zones: dict[str, Any],
                  orders: list[Order], homes: list[tuple[float, float]]) -> dict[str, Any]:
    broker = EmbeddedBroker()
    await broker.start()
    rec_decoder = msgspec.json.Decoder(AlertRecord)
    try:
        settings = Settings.from_env({}, topic_partitions=a.partitions)
        await ensure_topics(broker.bootstrap, topic_specs(settings))
        router = Router.build(orders, a.partitions)
        log = tmp / "worker-latency.log"
        proc = spawn_worker(broker.bootstrap, tmp / "zones.json", tmp / "orders.json",
                            a.partitions, log)
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                                    auto_offset_reset="earliest", fetch_max_wait_ms=5)
        await consumer.start()
        tps = [TopicPartition(ALERTS, p) for p in range(a.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        lat: list[float] = []
        lat_t: list[float] = []
        stop_flag = asyncio.Event()

        async def collect() -> None:
            while not stop_flag.is_set():
                data = await consumer.getmany(timeout_ms=50)
                now = time.time() * 1000
                for recs in data.values():
                    for r in recs:
                        rec = rec_decoder.decode(r.value)
                        if rec.at is not None and rec.event in ("opened", "cleared") \
                                and time.monotonic() - t_start >= a.warmup:
                            from geofence.model import parse_ts
                            lat.append(now - parse_ts(rec.at))
                            lat_t.append(now)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all",
                                    enable_idempotence=False, linger_ms=2)
        await producer.start()
        try:
            await wait_log(log, "assigned telemetry partitions", 90)
            t_start = time.monotonic()
            collector = asyncio.create_task(collect())
            # persons report in rounds; one round = every person once
            tick = 0.05
            per_tick = max(1, int(a.rate * tick))
            sent = 0
            i = 0
            round_no = 0
            while time.monotonic() - t_start < a.duration:
                target = int((time.monotonic() - t_start) / tick + 1) * per_tick
                batch = []
                while sent + len(batch) < target:
                    batch.append(fix_for(i, int(time.time() * 1000), round_no, homes, zones,
                                         a.breach_every))
                    i += 1
                    if i == a.persons:
                        i = 0
                        round_no += 1
                for part, group in router.group(batch).items():
                    await producer.send(TELEMETRY, encode(group), partition=part)
                sent += len(batch)
                await asyncio.sleep(max(0.0, t_start + (target / per_tick) * tick
                                        - time.monotonic()))
            offered_s = time.monotonic() - t_start
            await producer.flush()
            await asyncio.sleep(2.0)
            stop_flag.set()
            await collector
            m = await scrape(await worker_port(log, 5))
            worker_side = {
                "worker_e2a_p50_le_s": hist_quantile(m, "wardstream_worker_event_to_alert_seconds", 0.5),
                "worker_e2a_p99_le_s": hist_quantile(m, "wardstream_worker_event_to_alert_seconds", 0.99),
                "eval_p50_le_s": hist_quantile(m, "wardstream_worker_eval_seconds", 0.5),
                "eval_p99_le_s": hist_quantile(m, "wardstream_worker_eval_seconds", 0.99),
                "gc_pause_max_le_s": max((float(k.split('le="')[1].split('"')[0])
                                          for k, v in m.items()
                                          if k.startswith("wardstream_worker_gc_pause_seconds_bucket")
                                          and v > 0 and '+Inf' not in k), default=0.0),
                "gc_pause_total_s": sum(v for k, v in m.items()
                                        if k.startswith("wardstream_worker_gc_pause_seconds_sum")),
                "load_avg_1m": os.getloadavg()[0],
                "mean_batch": m.get("wardstream_worker_batch_size_sum", 0)
                / max(1.0, m.get("wardstream_worker_batch_size_count", 0)),
            }
        finally:
            await producer.stop()
            await consumer.stop()
            stop(proc)
    finally:
        await broker.stop()
    if os.environ.get("BENCH_DEBUG") and lat_t:
        t0 = lat_t[0]
        for w in range(0, int((lat_t[-1] - t0) / 1000) + 1, 2):
            sel = sorted(v for v, t in zip(lat, lat_t, strict=True) if w <= (t - t0) / 1000 < w + 2)
            if sel:
                print(f"t+{w:>3}s n={len(sel):>4} p50={sel[len(sel) // 2]:.0f} max={sel[-1]:.0f}")
    lat.sort()

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
    return {"offered_fixes": sent, "offered_rate": sent / offered_s, "records": len(lat),
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": lat[-1] if lat else float("nan"),
            **worker_side}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    ap.add_argument("--persons", type=int, default=20_000)
    ap.add_argument("--fixes", type=int, default=600_000, help="throughput backlog size")
    ap.add_argument("--envelope", type=int, default=500, help="fixes per Kafka message")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--vertices", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=10_000, help="offered load, fixes/s")
    ap.add_argument("--duration", type=float, default=25.0, help="latency phase, seconds")
    ap.add_argument("--warmup", type=float, default=5.0,
                    help="seconds of offered load before latency is recorded (the first"
                         " round creates every person's state)")
    ap.add_argument("--breach-every", type=int, default=50,
                    help="one person in N walks in and out of an exclusion zone")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    ap.add_argument("--only", choices=("throughput", "latency"), help="run one phase")
    a = ap.parse_args(list(argv) if argv is not None else None)
    if a.quick:
        a.persons, a.fixes, a.duration, a.vertices = 5_000, 100_000, 8.0, 500
    zones, orders = world(a.persons, a.vertices)
    homes = positions(zones, a.persons)
    with tempfile.TemporaryDirectory(prefix="wardstream-bench-stream-") as d:
        tmp = Path(d)
        (tmp / "zones.json").write_text(json.dumps(zones))
        (tmp / "orders.json").write_bytes(msgspec.json.encode(orders))
        tp = asyncio.run(throughput(a, tmp, zones, orders, homes)) if a.only != "latency" else {}
        if tp:
            dk = asyncio.run(throughput(a, tmp, zones, orders, homes, "device"))
            tp.update(device_worker_s=dk["worker_s"],
                      device_worker_fixes_per_s=dk["worker_fixes_per_s"],
                      device_over_project=dk["worker_fixes_per_s"] / tp["worker_fixes_per_s"])
        lt = asyncio.run(latency(a, tmp, zones, orders, homes)) if a.only != "throughput" else {}
    print(json.dumps({"bench": "stream", "cores": os.cpu_count(), **{f"throughput_{k}": v
                      for k, v in tp.items()}, **{f"latency_{k}": v for k, v in lt.items()}}))
    if not tp or not lt:
        return 0
    rows = [
        ("backlog", f"{tp['fixes']:,} fixes in {tp['messages']:,} messages "
                    f"({a.envelope} per envelope), {a.partitions} partitions, "
                    f"{a.persons:,} persons"),
        ("raw ceiling (aiokafka + decode)", f"{tp['raw_fixes_per_s']:,.0f} fixes/s"),
        ("worker sustained, end to end", f"{tp['worker_fixes_per_s']:,.0f} fixes/s "
                                         f"(over {tp['worker_s']:.1f} s)"),
        ("worker / raw ceiling", f"{tp['worker_fixes_per_s'] / tp['raw_fixes_per_s']:.2f}"),
        ("worker, backlog keyed by device id", f"{tp['device_worker_fixes_per_s']:,.0f} fixes/s "
                                               f"(over {tp['device_worker_s']:.1f} s; re-keyed)"),
        ("device-keyed / project-keyed", f"{tp['device_over_project']:.2f}"),
        ("offered load", f"{lt['offered_rate']:,.0f} fixes/s for {a.duration:.0f} s "
                         f"({lt['offered_fixes']:,} fixes; first {a.warmup:.0f} s not measured)"),
        ("event-to-alert latency", f"p50 {lt['p50_ms']:.0f} ms, p99 {lt['p99_ms']:.0f} ms, "
                                   f"max {lt['max_ms']:.0f} ms over {lt['records']:,} records"),
        ("worker side (histogram bounds)", f"event-to-alert p50 <= {lt['worker_e2a_p50_le_s']} s,"
                                           f" p99 <= {lt['worker_e2a_p99_le_s']} s; eval p50 <="
                                           f" {lt['eval_p50_le_s']} s, p99 <= {lt['eval_p99_le_s']}"
                                           f" s; mean batch {lt['mean_batch']:.0f}"),
        ("machine", f"{os.cpu_count()} cores (load average {lt['load_avg_1m']:.1f} at the end),"
                    f" {platform.machine()}, "
                    f"Python {platform.python_version()}"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
