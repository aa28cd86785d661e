"""The load generators of the gateway benchmark: simulated JT/T 808 terminals.

``bench/bench_gateway.py`` starts :class:`GeneratorPool`; each generator is
a child process (this file run with a JSON spec) holding its share of the
TCP connections, each a terminal that registers, authenticates and reports
locations stop-and-wait or at an offered rate, and answers one JSON line per
measurement window on stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devices import jt808  # noqa: E402


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
        self.bursts: list[bytes] = []
        self.k = 0
        self.running = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        # kept lean: the generators share the cores with the gateway they measure
        if self.login is not None:
            self.buf += data
            if self.buf.count(b"\x7e") >= 2:
                end = self.buf.index(b"\x7e", 1)
                frame, self.buf = self.buf[: end + 1], self.buf[end + 1:]
                self.login.set_result(frame)
                self.login = None
            return
        self.waiting -= data.count(b"\x7e") >> 1  # each 0x8001 is one 7E...7E frame
        if self.waiting <= 0 and self.running:
            bench = self.bench
            now = time.perf_counter()
            bench.count += bench.per_write
            if bench.record:
                b = int((now - self.sent_at) * 10_000)
                bench.hist[b] = bench.hist.get(b, 0) + 1
            if not bench.rate:  # closed loop: the next burst once this one is acknowledged
                k = self.k
                self.k = k + 1 if k < 9 else 0
                self.waiting = bench.per_write
                self.sent_at = now
                self.transport.write(self.bursts[k])  # type: ignore[union-attr]

    async def exchange(self, frame: bytes) -> jt808.Message:
        loop = asyncio.get_running_loop()
        self.login = loop.create_future()
        assert self.transport is not None
        self.transport.write(frame)
        reply = await asyncio.wait_for(self.login, 120)
        return jt808.parse_frame(reply)

    def set_frames(self, frames: list[bytes]) -> None:
        """The ten reports to cycle through, and the bursts of ``per_write`` of them."""
        per = self.bench.per_write
        self.frames = frames
        self.bursts = [b"".join(frames[(k * per + j) % len(frames)] for j in range(per))
                       for k in range(10)]

    def send_burst(self) -> None:
        k = self.k
        self.k = k + 1 if k < 9 else 0
        self.waiting = self.bench.per_write
        self.sent_at = time.perf_counter()
        assert self.transport is not None
        self.transport.write(self.bursts[k])

    def connection_lost(self, exc: Exception | None) -> None:
        self.running = False
        self.bench.lost += 1


class Bench:
    """The terminals of one load-generator process (indices ``first .. first + n - 1``)."""

    def __init__(self, port: int, first: int, connections: int, per_write: int,
                 rate: float = 0.0) -> None:
        self.port, self.first, self.n = port, first, connections
        self.per_write, self.rate = per_write, rate
        self.skipped = 0
        self.terminals: list[Terminal] = []
        self.count = 0
        # round trips in 0.1 ms bins: exact enough for p50/p99, small enough to ship to the parent
        self.hist: dict[int, int] = {}
        self.record = False
        self.lost = 0

    async def connect_all(self) -> None:
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(200)
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
                t.set_frames([jt808.encode_location(p, 3 + k, now - (10 - k) * 1000,
                                                    32.0 + (i % 1000) / 1e4, 118.7 + k / 1e4,
                                                    speed_kmh=4.5, battery_pct=80)
                              for k in range(10)])
                self.terminals.append(t)

        await asyncio.gather(*(one(i) for i in range(self.first, self.first + self.n)))

    def start(self) -> None:
        for t in self.terminals:
            t.running = True
            if not self.rate:
                t.send_burst()
        if self.rate:
            asyncio.get_running_loop().create_task(self.paced())

    def stop(self) -> None:
        for t in self.terminals:
            t.running = False
            if t.transport is not None:
                t.transport.close()

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


# --------------------------------------------------------------------------- load generators


def run_generator_child(spec_json: str) -> int:
    """A load-generator process: its share of the terminals, driven over stdin/stdout.

    Commands, one a line on stdin: ``start`` (begin reporting), ``begin``
    (open a measurement window), ``end`` (close it; answers one JSON line:
    acknowledged fixes, this process's CPU seconds, the round-trip histogram),
    ``stop`` (close every connection and exit). The first line written is
    ``{"ready": n}`` once all its terminals have registered and authenticated.
    """
    spec = json.loads(spec_json)
    raise_fd_limit(spec["count"] * 2 + 1024)

    async def main() -> None:
        bench = Bench(spec["port"], spec["first"], spec["count"], spec["per_write"],
                      spec["rate"])
        await bench.connect_all()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

        def say(obj: dict[str, Any]) -> None:
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()

        say({"ready": len(bench.terminals)})
        c0 = cpu0 = 0.0
        while True:
            line = (await reader.readline()).decode().strip()
            if line == "start":
                bench.start()
                say({"started": True})
            elif line == "begin":
                bench.hist = {}
                bench.record = True
                c0, cpu0 = bench.count, time.process_time()
                say({"begun": True})
            elif line == "end":
                bench.record = False
                say({"acked": bench.count - c0, "cpu": time.process_time() - cpu0,
                     "hist": bench.hist, "lost": bench.lost, "skipped": bench.skipped})
            else:  # "stop" or EOF
                bench.stop()
                say({"stopped": True, "lost": bench.lost})
                return

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
    return 0


class GeneratorPool:
    """``generators`` load-generator processes sharing ``connections`` terminals."""

    def __init__(self, port: int, connections: int, generators: int, per_write: int,
                 rate: float) -> None:
        self.port, self.connections, self.n = port, connections, max(1, generators)
        self.per_write, self.rate = per_write, rate
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(self) -> int:
        """Spawn the processes and wait until every terminal is logged in; returns how many."""
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        bounds = [self.connections * k // self.n for k in range(self.n + 1)]
        for k in range(self.n):
            spec = {"port": self.port, "first": bounds[k], "count": bounds[k + 1] - bounds[k],
                    "per_write": self.per_write, "rate": self.rate / self.n}
            self.procs.append(await asyncio.create_subprocess_exec(
                sys.executable, __file__, json.dumps(spec),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
                limit=64 << 20))
        ready = await asyncio.gather(*(self._read(p) for p in self.procs))
        return sum(r["ready"] for r in ready)

    @staticmethod
    async def _read(p: asyncio.subprocess.Process) -> dict[str, Any]:
        assert p.stdout is not None
        line = await p.stdout.readline()
        if not line:
            raise RuntimeError(f"load generator {p.pid} exited (code {await p.wait()})")
        return json.loads(line)  # type: ignore[no-any-return]

    async def command(self, cmd: str) -> list[dict[str, Any]]:
        """Send ``cmd`` to every generator; their answers."""
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write(cmd.encode() + b"\n")
        return await asyncio.gather(*(self._read(p) for p in self.procs))

    async def close(self) -> None:
        """Stop the generators (politely, then by force)."""
        for p in self.procs:
            if p.returncode is None:
                with contextlib.suppress(Exception):
                    assert p.stdin is not None
                    p.stdin.write(b"stop\n")
                    p.stdin.close()
        for p in self.procs:
            try:
                await asyncio.wait_for(p.wait(), 10)
            except TimeoutError:
                p.kill()
                await p.wait()


def merge_windows(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the ``end`` answers of the generators."""
    hist: dict[int, int] = {}
    for a in answers:
        for b, c in a["hist"].items():
            hist[int(b)] = hist.get(int(b), 0) + c
    return {"acked": sum(a["acked"] for a in answers), "cpu": [a["cpu"] for a in answers],
            "hist": hist, "lost": sum(a["lost"] for a in answers),
            "skipped": sum(a["skipped"] for a in answers)}


def hist_percentile(hist: dict[int, int], q: float) -> float:
    """Quantile of a 0.1 ms-bin histogram, seconds (upper edge of the bin)."""
    total = sum(hist.values())
    if not total:
        return float("nan")
    rank, seen = q * total, 0
    for b in sorted(hist):
        seen += hist[b]
        if seen >= rank:
            return (b + 1) / 10_000
    return (max(hist) + 1) / 10_000


if __name__ == "__main__":
    sys.exit(run_generator_child(sys.argv[1]))
