"""Alerts through ``wardstream notifier`` to local webhook receivers: lost, doubled, latency.

Starts an embedded broker, a fresh PostgreSQL schema with one webhook policy,
a local HTTP receiver and ``wardstream notifier`` as a child process, then
publishes red ``opened`` records at ``--rate`` per second for ``--seconds``.
Latency is from the moment a record is published to the moment its page
reaches the receiver (both clocks are this machine's). Prints one JSON line.

    PYTHONPATH=. python bench/bench_notifier.py [--rate 100] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import asyncpg
from aiohttp import web
from aiokafka import AIOKafkaProducer

from alerts.db import create_pool
from alerts.notify import store
from alerts.notify.policy import check_policy_body
from stream.broker import EmbeddedBroker, free_port
from stream.settings import Settings
from stream.topics import ALERTS, ensure_topics, topic_specs

ROOT = Path(__file__).resolve().parents[1]


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


async def bench(rate: int, seconds: int, concurrency: int) -> dict[str, object]:
    settings = Settings.from_env()
    schema = "bench_" + uuid.uuid4().hex[:10]
    broker = EmbeddedBroker()
    broker.start_sync()
    got: list[tuple[str, float]] = []

    async def receive(request: web.Request) -> web.Response:
        body = await request.json()
        got.append((request.headers["X-Wardstream-Delivery"],
                    time.time() - float(body["alert"]["published_at"])))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    pool = await create_pool(settings.database_url, schema)
    proc = None
    try:
        await ensure_topics(broker.bootstrap, topic_specs(settings, partitions=4))
        async with pool.acquire() as conn:
            await store.add_policy(conn, check_policy_body(
                {"channel": "webhook", "recipient": f"http://127.0.0.1:{port}/hook"}), "bench")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "WARDSTREAM_KAFKA": broker.bootstrap,
               "WARDSTREAM_DATABASE_URL": settings.database_url,
               "WARDSTREAM_DATABASE_SCHEMA": schema}
        proc = subprocess.Popen([sys.executable, "-m", "stream.cli", "notifier", "--group",
                                 "bench", "--concurrency", str(concurrency)], env=env, cwd=ROOT)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all",
                                    enable_idempotence=False, linger_ms=2)
        await producer.start()
        # one warm-up page: the notifier has joined its group when it arrives
        warm = {"event": "opened", "alert": {"alert_id": "warm-up", "severity": "red",
                                             "jurisdiction": "320102", "published_at": time.time()}}
        await producer.send_and_wait(ALERTS, json.dumps(warm).encode(), key=b"warm-up")
        deadline = time.monotonic() + 90
        while not got and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if not got:
            raise SystemExit("bench_notifier: the notifier did not deliver the warm-up page in 90 s")
        got.clear()
        n = rate * seconds
        t0 = time.monotonic()
        for i in range(n):
            due = t0 + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            aid = f"B-{i:06d}"
            rec = {"event": "opened", "alert": {"alert_id": aid, "severity": "red",
                                                "kind": "exclusion_entered",
                                                "jurisdiction": "320102",
                                                "published_at": time.time()}}
            await producer.send(ALERTS, json.dumps(rec).encode(), key=aid.encode())
        await producer.flush()
        sent_s = time.monotonic() - t0
        await producer.stop()
        deadline = time.monotonic() + 30
        while len({d for d, _ in got}) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)  # anything doubled arrives now
        counts = Counter(d for d, _ in got)
        lat = [x for _, x in got]
        expected = {f"B-{i:06d}/opened/http://127.0.0.1:{port}/hook/webhook" for i in range(n)}
        return {"bench": "notifier", "rate_per_s": rate, "seconds": seconds,
                "published": n, "publish_s": round(sent_s, 2),
                "delivered_distinct": len(set(counts) & expected),
                "lost": len(expected - set(counts)),
                "doubled": sum(1 for c in counts.values() if c > 1),
                "latency_median_s": round(statistics.median(lat), 4) if lat else None,
                "latency_p99_s": round(_pct(lat, 0.99), 4) if lat else None,
                "latency_max_s": round(max(lat), 4) if lat else None}
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        await runner.cleanup()
        await pool.close()
        conn = await asyncpg.connect(settings.database_url)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
        broker.stop_sync()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    print(json.dumps(asyncio.run(bench(args.rate, args.seconds, args.concurrency))))


if __name__ == "__main__":
    main()
