"""``wardstream bench``: run the benchmark suite in one process tree and report.

Runs, as child processes of this one, each benchmark script under ``bench/``
that exists (``bench_zones``, ``bench_engine``, ``bench_stream``,
``bench_gateway``, ``bench_store``; a missing one is skipped with a line
saying so), sampling each child's resident memory (its whole process tree,
from /proc) twice a second, and keeps the last JSON object each prints.

Measured in the same run, so the other figures read as ratios:

* the machine: CPU cores available to this process;
* the raw-consumer ceiling: a plain aiokafka consumer decoding batched
  telemetry envelopes from the embedded broker (no engine, no Faust);
* Kafka path latency at a fixed offered load (produce -> consume, the
  floor under any end-to-end latency figure);
* the simulator itself: a generated day replayed through the engine and
  scored against its ground truth (fixes/s and precision/recall).

Writes ``report.md`` and PNG plots (throughput over time, latency CDF,
memory over time) to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream.cli import Parser

SUITE: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    # name, script, arguments of a quick run, arguments of a full run (--full)
    ("zones", "bench/bench_zones.py", ("--quick",), ()),
    ("engine", "bench/bench_engine.py", ("--quick",), ()),
    ("stream", "bench/bench_stream.py", ("--quick",), ()),
    ("gateway", "bench/bench_gateway.py", ("--connections", "1000", "--seconds", "10", "--json"),
     ("--connections", "5000", "--seconds", "30", "--json")),
    ("store", "bench/bench_store.py", ("--fixes", "60000", "--alerts", "5000", "--baseline", "5000"), ()),
)

# The headline figures of each benchmark, for the summary table: (key in its
# result, label, unit). Keys of a script that prints a Markdown table instead
# of JSON are that table's first column. A key a script does not print is
# left out of the table (the full result is in results.json).
HEADLINES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "zones": (("pairs_per_s", "zone tests (fix x zone pairs)", "/s"),
              ("speedup", "speed-up over a naive shapely loop", "x")),
    "engine": (("engine_fixes_per_s", "engine batches", "fixes/s"),
               ("replay_fixes_per_s", "replay", "fixes/s"),
               ("ratio_vs_naive", "engine over a naive per-fix loop", "x"),
               ("category_throughput_ratio", "engine, category rules over plain rules", "x")),
    "stream": (("throughput_worker_fixes_per_s", "worker end to end", "fixes/s"),
               ("throughput_raw_fixes_per_s", "its own raw ceiling (aiokafka + decode)", "fixes/s"),
               ("latency_offered_rate", "offered load for latency", "fixes/s offered"),
               ("latency_p50_ms", "event-to-alert p50", "ms"),
               ("latency_p99_ms", "event-to-alert p99", "ms")),
    "gateway": (("connections", "concurrent JT/T 808 connections", ""),
                ("published_fixes_per_s", "gateway decoded + published", "fixes/s"),
                ("gateway_frame_to_kafka_p99_ms", "frame-to-Kafka p99", "ms"),
                ("raw_producer_fixes_per_s", "its own raw producer ceiling", "fixes/s")),
    "store": (("track sink (decode + COPY + latest positions), fixes", "track store", "fixes/s"),
              ("alert sink, batches of 500, records", "alert sink", "records/s"),
              ("baseline: INSERT per fix, fixes", "baseline: INSERT per fix", "fixes/s")),
}


@dataclass
class Run:
    """One benchmark child process: what it printed and how much memory it held."""

    name: str
    status: str = "skipped"
    note: str = ""
    seconds: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)
    rss_mib: list[tuple[float, float]] = field(default_factory=list)

    @property
    def peak_rss_mib(self) -> float:
        return max((r for _, r in self.rss_mib), default=0.0)


def _tree_rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants (Linux /proc)."""
    total = 0
    todo = [pid]
    seen: set[int] = set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return total


def _number(cell: str) -> float | None:
    text = cell.strip().replace(",", "").rstrip("x").strip()
    try:
        return float(text)
    except ValueError:
        return None


def _markdown_rows(text: str) -> dict[str, Any]:
    """``{first cell: first numeric cell}`` of the Markdown table rows a script printed."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        line = line.strip()
        if not (line.startswith("|") and line.endswith("|")) or set(line) <= set("|-: "):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        for cell in cells[1:]:
            value = _number(cell)
            if value is not None:
                out[cells[0]] = value
                break
    return out


def _last_json(text: str) -> dict[str, Any]:
    """The last JSON object a script printed on a line of its own; else its Markdown table rows."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
    return _markdown_rows(text)


def run_script(name: str, path: Path, args: Sequence[str], timeout: float, env: dict[str, str]) -> Run:
    """Run one benchmark script as a child, sampling its memory."""
    run = Run(name)
    if not path.exists():
        run.note = f"{path} does not exist yet"
        return run
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, str(path), *args], stdout=out, stderr=err, env=env,
                                cwd=str(path.parent.parent))
        try:
            while proc.poll() is None:
                run.rss_mib.append((time.perf_counter() - t0, _tree_rss_kib(proc.pid) / 1024))
                if time.perf_counter() - t0 > timeout:
                    proc.kill()
                    run.status, run.note = "timeout", f"killed after {timeout:.0f} s"
                    break
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        run.seconds = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    run.result = _last_json(stdout)
    if run.status != "timeout":
        run.status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
        if proc.returncode != 0:
            run.note = (stderr.strip().splitlines() or ["(no stderr)"])[-1][:200]
    return run


# --------------------------------------------------------------------------- in-run baselines


async def _raw_ceiling(bootstrap: str, lines: list[bytes], orders: Any, seconds: float = 8.0
                       ) -> dict[str, Any]:
    """Produce the day as envelopes, then consume with a plain aiokafka consumer."""
    import msgspec
    from aiokafka import AIOKafkaConsumer

    from simulators.feed import KafkaSink, parse_line

    topic = f"bench-raw-{os.getpid()}"
    sink = KafkaSink(bootstrap, orders, topic=topic, envelope_max=500)
    await sink.start()
    try:
        for line in lines:
            await sink.put(parse_line(line))
        await sink.flush()
    finally:
        await sink.stop()
    dec = msgspec.json.Decoder()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=None, enable_auto_commit=False, max_partition_fetch_bytes=8 << 20)
    await consumer.start()
    timeline: list[tuple[float, int]] = []
    n = 0
    try:
        t0 = time.perf_counter()
        while n < sink.messages and time.perf_counter() - t0 < seconds * 4:
            for recs in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                for r in recs:
                    try:
                        body = dec.decode(r.value)
                    except msgspec.DecodeError:
                        body = None  # the day's malformed lines: a real consumer dead-letters them
                    n += len(body) if isinstance(body, list) else 1
            timeline.append((time.perf_counter() - t0, n))
        dt = time.perf_counter() - t0
    finally:
        await consumer.stop()
    return {"messages": n, "seconds": dt, "msgs_per_s": n / dt if dt else 0.0, "timeline": timeline}


async def _kafka_latency(bootstrap: str, rate: float, seconds: float) -> list[float]:
    """Produce stamped envelopes at ``rate`` fixes/s; latency of each at the consumer (ms)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = f"bench-lat-{os.getpid()}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False,
                                linger_ms=2)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=None, enable_auto_commit=False)
    await producer.start()
    await producer.send_and_wait(topic, b"[]")
    await consumer.start()
    lat: list[float] = []
    done = asyncio.Event()

    async def consume() -> None:
        while not done.is_set():
            for recs in (await consumer.getmany(timeout_ms=100)).values():
                now = time.time()
                for r in recs:
                    body = json.loads(r.value)
                    lat.extend((now - m["sent"]) * 1000 for m in body)

    task = asyncio.create_task(consume())
    per_tick = max(1, int(rate / 100))
    t0 = time.perf_counter()
    k = 0
    while time.perf_counter() - t0 < seconds:
        env = [{"kind": "fix", "device_id": f"d{i}", "sent": time.time()} for i in range(per_tick)]
        await producer.send(topic, json.dumps(env).encode(), key=b"k")
        k += 1
        delay = t0 + k * per_tick / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    await producer.flush()
    await asyncio.sleep(1.0)
    done.set()
    await task
    await consumer.stop()
    await producer.stop()
    return lat


def _simulated_day(persons: int) -> tuple[dict[str, Any], list[bytes], Any]:
    """Generate and replay a day; fixes/s of each stage and the score."""
    from geofence.engine import replay_lines
    from geofence.model import encode
    from geofence.zones import ZoneCatalogue
    from simulators.caseload import SimConfig, generate
    from simulators.score import score

    t0 = time.perf_counter()
    cl = generate(SimConfig(persons=persons, seed=11))
    lines = list(cl.lines())
    t1 = time.perf_counter()
    from geofence.model import parse_orders

    orders = parse_orders(json.dumps(cl.orders))
    zones = ZoneCatalogue.from_geojson(cl.zones)
    progress: list[tuple[float, int]] = []
    t2 = time.perf_counter()

    def tracked() -> Any:
        for i, line in enumerate(lines):
            if i % 20_000 == 0:
                progress.append((time.perf_counter() - t2, i))
            yield line

    alerts, summary = replay_lines(tracked(), zones, orders)
    t3 = time.perf_counter()
    progress.append((t3 - t2, len(lines)))
    rep = score(cl.truth, [json.loads(encode(a)) for a in alerts])
    msgs = cl.truth["meta"]["messages"]
    return ({"persons": persons, "messages": msgs, "generate_s": t1 - t0,
             "generate_msgs_per_s": msgs / (t1 - t0), "replay_s": t3 - t2,
             "replay_msgs_per_s": summary.messages / (t3 - t2), "precision": rep.precision,
             "recall": rep.recall, "expected_alerts": rep.expected, "progress": progress},
            lines, orders)


# --------------------------------------------------------------------------- report


def _plots(out: Path, runs: list[Run], raw: dict[str, Any], sim: dict[str, Any], lat: list[float]) -> list[str]:
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - a dev dependency
        print("wardstream bench: matplotlib is not installed (pip install '.[dev]'); no plots",
              file=sys.stderr)
        return []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    made = []
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, series in (("raw consumer (messages/s)", raw.get("timeline", [])),
                          ("engine replay of the simulated day (lines/s)", sim.get("progress", []))):
        if len(series) >= 2:
            # rates over windows of at least 0.5 s: per-poll rates of a fast consumer are noise
            pts = [series[0]]
            for s in series[1:]:
                if s[0] - pts[-1][0] >= 0.5 or s is series[-1]:
                    pts.append(s)
            t = np.array([s[0] for s in pts])
            n = np.array([s[1] for s in pts], dtype=float)
            rate = np.diff(n) / np.maximum(np.diff(t), 1e-9)
            ax.step(t[1:], rate, where="pre", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("seconds since the stage started")
    ax.set_ylabel("per second (log scale)")
    ax.set_title("Throughput over time")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)
    plt.close(fig)
    made.append("throughput.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    if lat:
        v = np.sort(np.asarray(lat))
        ax.plot(v, np.arange(1, len(v) + 1) / len(v), label="Kafka produce -> consume")
    for r in runs:
        for key in ("p50_ms", "p99_ms", "latency_p50_ms", "latency_p99_ms"):
            if isinstance(r.result.get(key), (int, float)):
                q = 0.5 if "50" in key else 0.99
                ax.scatter([r.result[key]], [q], label=f"{r.name} {key}")
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("fraction")
    ax.set_title("Latency CDF")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "latency_cdf.png", dpi=110)
    plt.close(fig)
    made.append("latency_cdf.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in runs:
        if r.rss_mib:
            ax.plot([s[0] for s in r.rss_mib], [s[1] for s in r.rss_mib], label=r.name)
    ax.set_xlabel("seconds since the benchmark started")
    ax.set_ylabel("RSS of the process tree (MiB)")
    ax.set_title("Memory")
    if any(r.rss_mib for r in runs):
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "memory.png", dpi=110)
    plt.close(fig)
    made.append("memory.png")
    return made


def _flat(d: dict[str, Any], prefix: str = "") -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for k, v in d.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            out.append((prefix + k, float(v)))
        elif isinstance(v, dict):
            out.extend(_flat(v, prefix + k + "."))
    return out


def _fmt(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:,.1f}x"
    if unit == "ms":
        return f"{value:,.1f} ms"
    return f"{value:,.0f} {unit}".rstrip()


def summary_table(runs: list[Run], cores: int, raw: dict[str, Any], sim: dict[str, Any],
                  lat: list[float]) -> list[str]:
    """The headline Markdown table (the one README shows)."""
    import numpy as np

    ceiling = float(raw.get("msgs_per_s", 0.0))

    def ratio(value: float, unit: str) -> str:
        return f"{value / ceiling:.2f}" if ceiling and unit.endswith("/s") and unit != "/s" else ""  # rates only

    rows = ["| part | measure | value | / raw ceiling |", "|---|---|---|---|",
            f"| machine | CPU cores available (shared) | {cores} | |"]
    if ceiling:
        rows.append(f"| Kafka | raw-consumer ceiling (aiokafka + msgspec, envelopes, embedded broker) "
                    f"| {ceiling:,.0f} msgs/s | 1.00 |")
    if lat:
        p50, p99 = np.percentile(np.asarray(lat), [50, 99])
        rows.append(f"| Kafka | produce -> consume at a fixed load, p50 / p99 | {p50:.1f} / {p99:.1f} ms | |")
    if sim:
        rows.append(f"| simulator | a day of {sim['persons']:,} persons ({sim['messages']:,} messages) "
                    f"through replay | {sim['replay_msgs_per_s']:,.0f} msgs/s "
                    f"| {ratio(sim['replay_msgs_per_s'], 'msgs/s')} |")
        rows.append(f"| simulator | precision / recall on {sim['expected_alerts']} expected alerts "
                    f"| {sim['precision']:.3f} / {sim['recall']:.3f} | |")
    for r in runs:
        if r.status != "ok":
            rows.append(f"| {r.name} | {r.status} | {r.note or '-'} | |")
            continue
        flat = dict(_flat(r.result))
        shown = 0
        for key, label, unit in HEADLINES.get(r.name, ()):
            if key in flat:
                rows.append(f"| {r.name} | {label} | {_fmt(flat[key], unit)} | {ratio(flat[key], unit)} |")
                shown += 1
        if not shown:
            rows.append(f"| {r.name} | ran, printed no figure this report knows | see results.json | |")
    return rows


def write_report(out: Path, runs: list[Run], cores: int, raw: dict[str, Any], sim: dict[str, Any],
                 lat: list[float], command: str) -> Path:
    import numpy as np

    plots = _plots(out, runs, raw, sim, lat)
    ceiling = raw.get("msgs_per_s", 0.0)
    lines = [
        "# wardstream benchmark report", "",
        f"- command: `{command}`",
        f"- date (UTC): {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}",
        f"- CPU cores available: **{cores}** (shared with anything else running)",
        f"- raw-consumer ceiling (plain aiokafka + msgspec, batched envelopes, embedded broker): "
        f"**{ceiling:,.0f} msgs/s** ({raw.get('messages', 0):,} messages)", "",
    ]
    if lat:
        p = np.percentile(np.asarray(lat), [50, 99])
        lines.append(f"- Kafka produce -> consume latency at a fixed load: p50 {p[0]:.1f} ms, p99 {p[1]:.1f} ms")
    if sim:
        lines.append(
            f"- simulated day ({sim['persons']} persons, {sim['messages']:,} messages): generate "
            f"{sim['generate_msgs_per_s']:,.0f} msgs/s, engine replay {sim['replay_msgs_per_s']:,.0f} msgs/s"
            + (f" ({sim['replay_msgs_per_s'] / ceiling:.2f}x the raw ceiling)" if ceiling else "")
            + f", precision {sim['precision']:.3f}, recall {sim['recall']:.3f} on "
            f"{sim['expected_alerts']} expected alerts")
    lines += ["", "## Summary", "", *summary_table(runs, cores, raw, sim, lat), "",
              "## Runs", "", "| benchmark | status | wall s | peak RSS MiB | rates (ratio to raw ceiling) |",
              "|---|---|---|---|---|"]
    for r in runs:
        rates = [f"{k} {v:,.0f}" + (f" ({v / ceiling:.2f}x)" if ceiling else "")
                 for k, v in _flat(r.result) if k.endswith("per_s") or k.endswith("_fps") or k.endswith("fixes_s")]
        text = "; ".join(rates[:6]) or r.note
        lines.append(f"| {r.name} | {r.status} | {r.seconds:.0f} | {r.peak_rss_mib:,.0f} | {text} |")
    skipped = [r for r in runs if r.status == "skipped"]
    if skipped:
        lines.append("")
        lines += [f"- skipped {r.name}: {r.note}" for r in skipped]
    lines += ["", "Every figure each benchmark printed is in `results.json`."]
    lines += ["", *[f"![{p}]({p})" for p in plots], ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    (out / "results.json").write_text(json.dumps({
        "cores": cores, "raw_ceiling": {k: v for k, v in raw.items() if k != "timeline"},
        "simulated_day": {k: v for k, v in sim.items() if k != "progress"},
        "runs": [{"name": r.name, "status": r.status, "note": r.note, "seconds": r.seconds,
                  "peak_rss_mib": r.peak_rss_mib, "result": r.result} for r in runs]}, indent=1))
    return path


def main(argv: Sequence[str]) -> int:
    """Entry point of ``wardstream bench``."""
    p = Parser(prog="wardstream bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="benchmarks to run (default: all of "
                   + ", ".join(n for n, *_ in SUITE) + ")")
    p.add_argument("--out", default="bench-report", help="folder for report.md and the plots")
    p.add_argument("--root", default=".", help="repository root holding bench/")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per benchmark")
    p.add_argument("--full", action="store_true",
                   help="each benchmark at its own default (target) sizes instead of quick sizes")
    p.add_argument("--persons", type=int, default=1000, help="size of the simulated day")
    p.add_argument("--latency-rate", type=float, default=10_000.0, help="fixes/s for the latency probe")
    p.add_argument("--kafka", default=None, help="use this broker instead of an embedded one")
    args = p.parse_args(list(argv))
    unknown = set(args.names) - {n for n, *_ in SUITE}
    if unknown:
        print(f"wardstream bench: unknown benchmark(s) {sorted(unknown)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(args.root).resolve()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH", "")]))
    env.setdefault("MPLBACKEND", "Agg")
    print(f"wardstream bench: {cores} cores; report in {out}/", file=sys.stderr)

    print("  simulated day through the engine ...", file=sys.stderr)
    sim, lines, orders = _simulated_day(args.persons)
    broker = None
    bootstrap = args.kafka
    if bootstrap is None:
        from stream.broker import EmbeddedBroker

        broker = EmbeddedBroker().start_sync()
        bootstrap = broker.bootstrap
    try:
        print("  raw-consumer ceiling ...", file=sys.stderr)
        raw = asyncio.run(_raw_ceiling(bootstrap, lines, orders))
        print("  Kafka latency probe ...", file=sys.stderr)
        lat = asyncio.run(_kafka_latency(bootstrap, args.latency_rate, 8.0))
    finally:
        if broker is not None:
            broker.stop_sync()
    del lines
    runs = []
    for name, rel, quick, full in SUITE:
        if args.names and name not in args.names:
            continue
        print(f"  {name} ...", file=sys.stderr, flush=True)
        run = run_script(name, root / rel, full if args.full else quick, args.timeout, env)
        if run.status == "skipped":
            print(f"  skipped {name}: {run.note}", file=sys.stderr)
        runs.append(run)
    path = write_report(out, runs, cores, raw, sim, lat, "wardstream bench " + " ".join(argv))
    print(path.read_text())
    return 0 if all(r.status in ("ok", "skipped") for r in runs) else 1
