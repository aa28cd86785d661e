"""The gateway's per-frame Python cost without sockets or a broker.

Run by hand (not a timed test)::

    PYTHONPATH=. python bench/bench_gateway_path.py [--connections 5000] [--rounds 20]
        [--per-tick 250] [--repeat 5] [--profile OUT.prof]

Drives :class:`devices.servers.DeviceConnection` objects with null
transports and a real :class:`devices.publisher.Publisher` whose producer
is a stand-in: batches are built with aiokafka's own ``BatchBuilder`` (so
the record encoding cost is included) and "acknowledged" on the next loop
iteration. Each round, every connection receives one 0x0200 location frame
(one report per read, as a terminal waiting for each acknowledgement sends
them) in ticks of ``--per-tick`` connections, and the round ends when every
connection has written its 0x8001. The figure is CPU microseconds per frame
of everything the gateway does in Python for a frame: framing, decoding,
the reply, the submission, the envelope, the batch, the completion and the
acknowledgement write call. What the kernel's socket reads and writes cost
on top is what ``bench_gateway.py --socket-floor`` measures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaProducer  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from devices import jt808  # noqa: E402
from devices.cli import tune_gc  # noqa: E402
from devices.metrics import GatewayMetrics  # noqa: E402
from devices.publisher import Publisher  # noqa: E402
from devices.registry import Registry  # noqa: E402
from devices.servers import DeviceConnection, Hub, ServerConfig  # noqa: E402
from geofence.model import parse_orders  # noqa: E402


def phone(i: int) -> str:
    return f"{13900000000 + i:012d}"


class NullTransport:
    """Counts writes; nothing else."""

    def __init__(self) -> None:
        self.writes = 0

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else None

    def write(self, data: bytes) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        self.close()

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class StandInProducer:
    """``create_batch`` / ``send_batch`` / ``send`` of aiokafka, acknowledged on the next tick."""

    def __init__(self) -> None:
        self._real = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", acks="all",
                                      enable_idempotence=False, max_batch_size=1 << 20)
        self.batches = 0

    def create_batch(self) -> Any:
        return self._real.create_batch()

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[None]:
        batch._build()  # the record batch bytes the sender would put on the wire
        self.batches += 1
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(fut.set_result, None)
        return fut

    async def flush(self) -> None:
        pass

    async def stop(self) -> None:
        self._real._closed = True  # never started: nothing to close

    async def send(self, topic: str, value: bytes, *, key: bytes | None = None,
                   partition: int | None = None) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(fut.set_result, None)
        return fut


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.connections
    orders = parse_orders(json.dumps([
        {"person_id": f"P-{i:06d}", "devices": [phone(i)], "jurisdiction": "320102",
         "rules": []} for i in range(n)]))
    registry = Registry(orders, b"bench")
    metrics = GatewayMetrics(CollectorRegistry())
    pub = Publisher("127.0.0.1:1", linger_ms=args.linger_ms, max_queue=10 * n + 1000,
                    metrics=metrics)
    pub._producer = StandInProducer()  # type: ignore[assignment]
    pub._partitions = list(range(12))
    pub._task = asyncio.get_running_loop().create_task(pub._run())
    hub = Hub(registry, pub, metrics, ServerConfig())
    conns: list[tuple[DeviceConnection, NullTransport, list[bytes]]] = []
    now = int(time.time() * 1000)
    for i in range(n):
        conn = DeviceConnection(hub, "jt808")
        tr = NullTransport()
        conn.connection_made(tr)  # type: ignore[arg-type]
        p = phone(i)
        conn.data_received(jt808.encode_auth(p, 1, registry.auth_code(p)))
        assert tr.writes == 1, "not authenticated"
        frames = [jt808.encode_location(p, 3 + k, now - (10 - k) * 1000, 32.0 + (i % 1000) / 1e4,
                                        118.7 + k / 1e4, speed_kmh=4.5, battery_pct=80)
                  for k in range(10)]
        conns.append((conn, tr, frames))
    per_tick = args.per_tick
    results = []
    for rep in range(args.repeat + 1):  # the first repeat warms up
        gc.collect()
        cpu0 = time.process_time()
        for r in range(args.rounds):
            target = r + 1
            for start in range(0, n, per_tick):
                for conn, _tr, frames in conns[start:start + per_tick]:
                    conn.data_received(frames[r % 10])
                await asyncio.sleep(0)
            while any(tr.writes <= target for _c, tr, _f in conns[-1:]) or pub.depth:
                await asyncio.sleep(0)
        cpu = time.process_time() - cpu0
        if rep:
            results.append(cpu / (n * args.rounds) * 1e6)
    await pub.stop()
    assert all(tr.writes == 1 + args.rounds * (args.repeat + 1) for _c, tr, _f in conns)
    return {"connections": n, "rounds": args.rounds, "per_tick": per_tick,
            "us_per_frame": [round(x, 2) for x in results],
            "us_per_frame_min": round(min(results), 2),
            "frames_per_cpu_second_max": round(1e6 / min(results)),
            "published": pub.published}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--per-tick", type=int, default=250)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--linger-ms", type=float, default=0.0)
    p.add_argument("--profile", default="", help="write a cProfile of the whole run here")
    args = p.parse_args(argv)
    tune_gc()  # as the gateway process does at start
    if args.profile:
        import cProfile

        prof = cProfile.Profile()
        result = prof.runcall(asyncio.run, run(args))
        prof.dump_stats(args.profile)
    else:
        try:
            import uvloop

            result = uvloop.run(run(args))
        except ImportError:
            result = asyncio.run(run(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
