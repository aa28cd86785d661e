"""Acceptance run: one simulated day, three entry points, one ground truth.

    python -m simulators.acceptance --persons 5000 --out /tmp/acc/day --paths replay,kafka
    python -m simulators.acceptance --persons 1000 --profile jt808 --out /tmp/acc/jt --paths jt808

generates the day (or reuses ``--out`` when it already holds a day of the
same persons, phone persons, seed, profile and date: ``--reuse``), then, for
each path. The day includes phone-supervised persons who check in instead
of wearing a wristband (``--phone-share``, default 5 % of ``--persons``
added to them; ``--phone-share 0`` for none; the jt808 profile has none:
phones check in over HTTPS, not JT/T 808):

``replay``
    ``wardstream replay`` as a subprocess (``sys.executable -m stream.cli
    replay``), its stdout scored against ``truth.json``.
``kafka``
    an embedded broker (:class:`stream.broker.EmbeddedBroker`), one worker
    subprocess (``python -m stream.cli worker``, wall-clock guard off:
    ``WARDSTREAM_IDLE_WATERMARK_S=0`` as docs/stream.md says for historical
    data), the day sent by the simulator's Kafka sink as fast as the broker
    takes it (event time = the simulated day); once the worker's consumer
    lag is zero and the alerts topic is quiet, every record of
    ``wardstream.alerts`` is read, folded with
    :func:`geofence.engine.fold_records` (retracted episodes dropped) and scored.
``jt808``
    the same broker and worker plus a gateway subprocess (``python -m
    stream.cli gateway --jt808-port P``); every device is a JT/T 808 terminal
    on its own TCP connection (register, authenticate, 0x0200, 0x0704
    backfill, alarm bits). Every ``--sync-s`` seconds of event time the sender
    waits until the gateway acknowledged every frame sent so far (it
    acknowledges after Kafka took them): flow control of an accelerated
    replay, so one connection's socket buffer cannot run hours of event
    time ahead of the others (5,000 independent connections are read in
    whatever order the gateway's event loop gets to them). Use
    ``--profile jt808``: JT/T 808 carries no accuracy and whole seconds only.

A path passes when precision and recall are both 1.0 and every silent
person (jitter, teleport, expired order) raised nothing. Exit 0 when every
path passed, 1 otherwise. ``--json FILE`` writes sizes, durations and scores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simulators.score import ScoreReport
from stream.cli import Parser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def _judge(name: str, report: ScoreReport, result: dict[str, Any]) -> bool:
    silent_bad = {k: v for k, v in report.silent_violations.items() if v}
    ok = (report.precision == 1.0 and report.recall == 1.0 and not silent_bad
          and not report.evidence_mismatches)
    result.update(precision=report.precision, recall=report.recall, expected=report.expected,
                  silent_violations=sum(len(v) for v in silent_bad.values()),
                  late_mismatches=len(report.late_mismatches),
                  evidence_mismatches=len(report.evidence_mismatches), passed=ok)
    print(f"--- {name}\n{report.text()}\n{name}: {'PASSED' if ok else 'FAILED'}", flush=True)
    return ok


# --------------------------------------------------------------------------- generate


def _generate(args: argparse.Namespace) -> dict[str, str]:
    from simulators.caseload import SimConfig, generate, write

    out = Path(args.out)
    names = ("zones.geojson", "orders.json", "telemetry.jsonl", "truth.json")
    paths = {n: str(out / n) for n in names}
    if args.reuse and all((out / n).exists() for n in names):
        meta = json.loads((out / "truth.json").read_text())["meta"]
        phones = SimConfig(persons=args.persons, phone_share=args.phone_share).phone_count()
        if args.profile == "jt808":
            phones = 0
        if ((meta.get("persons"), meta.get("seed"), meta.get("day"), meta.get("phone_persons", 0))
                == (args.persons, args.seed, args.day, phones)):
            print(f"reusing the day in {out} ({meta['messages']:,} messages)", flush=True)
            return paths
    t0 = time.perf_counter()
    cfg = SimConfig.for_profile(args.profile, persons=args.persons, seed=args.seed, day=args.day,
                                interval_s=args.interval_s, phone_share=args.phone_share)
    cl = generate(cfg)
    t1 = time.perf_counter()
    written = write(cl, str(out))
    t2 = time.perf_counter()
    print(f"generate {args.persons} persons ({args.profile}, {args.day}): model {t1 - t0:.1f} s, "
          f"files {t2 - t1:.1f} s, {cl.truth['meta']['messages']:,} messages, "
          f"{len(cl.truth['expected'])} expected alerts", flush=True)
    if args.verify:
        from simulators.verify import verify

        with open(written["telemetry.jsonl"], "rb") as f:
            problems = verify(Path(written["zones.geojson"]).read_bytes(),
                              Path(written["orders.json"]).read_bytes(),
                              (line.rstrip(b"\n") for line in f), cl.truth, cfg.lat, cfg.lon)
        print(f"verify: {len(problems)} problems", flush=True)
        for prob in problems[:20]:
            print("  " + prob)
    return {n: written[n] for n in names}


# --------------------------------------------------------------------------- (a) replay


def path_replay(paths: dict[str, str], truth: dict[str, Any], out: Path, result: dict[str, Any]) -> bool:
    from simulators.score import load_alerts, score

    alerts_path = out / "alerts-replay.jsonl"
    cmd = [sys.executable, "-m", "stream.cli", "replay", "--zones", paths["zones.geojson"],
           "--orders", paths["orders.json"], "--telemetry", paths["telemetry.jsonl"],
           "--out", str(alerts_path)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    dt = time.perf_counter() - t0
    print(f"replay: exit {proc.returncode} in {dt:.1f} s\n{proc.stderr.strip()}", flush=True)
    result.update(command=" ".join(["wardstream", *cmd[3:]]), seconds=dt,
                  msgs_per_s=truth["meta"]["messages"] / dt)
    if proc.returncode != 0:
        result["passed"] = False
        return False
    return _judge("replay", score(truth, load_alerts(alerts_path.read_text())), result)


# --------------------------------------------------------------------------- stream helpers


class Proc:
    """A child process of this run whose output goes to a log file."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self._fh = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._fh, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.text())
            if m:
                return m
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {self.text()[-2000:]}")
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} did not print {pattern!r} in {timeout:.0f} s")

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()
        return int(self.proc.returncode)


def _metric_values(text: str, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            label, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[label[len(name):]] = float(value)
    return out


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


async def _topic_ends(bootstrap: str, topic: str) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await c.start()
    try:
        parts = c.partitions_for_topic(topic)
        if not parts:
            await c.force_metadata_update()  # type: ignore[no-untyped-call]
            parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        ends = await c.end_offsets(tps) if tps else {}
        return {tp.partition: int(o) for tp, o in ends.items()}
    finally:
        await c.stop()


async def _wait_caught_up(bootstrap: str, web_port: int, telemetry_ends: dict[int, int] | None,
                          quiet_s: float = 6.0, timeout: float = 3600.0) -> dict[str, float]:
    """Until the worker's lag is zero on every partition and nothing new reaches the alerts topic."""
    from stream.topics import ALERTS, TELEMETRY

    deadline = time.monotonic() + timeout
    last: tuple[Any, ...] = ()
    since = time.monotonic()
    while time.monotonic() < deadline:
        try:
            text = _metrics(web_port)
        except OSError:  # a worker busy with a backlog may answer late: ask again
            await asyncio.sleep(1.0)
            continue
        lag = _metric_values(text, "wardstream_worker_consumer_lag")
        fixes = _metric_values(text, "wardstream_worker_fixes_in_total")
        ends = telemetry_ends if telemetry_ends is not None else await _topic_ends(bootstrap, TELEMETRY)
        alert_ends = await _topic_ends(bootstrap, ALERTS)
        state = (tuple(sorted(alert_ends.items())), tuple(sorted(fixes.items())), tuple(sorted(ends.items())))
        if state != last:
            last, since = state, time.monotonic()
        if lag and all(v == 0 for v in lag.values()) and time.monotonic() - since >= quiet_s:
            return fixes
        await asyncio.sleep(1.0)
    raise RuntimeError("the worker did not catch up")


async def _read_alert_records(bootstrap: str) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from stream.topics import ALERTS

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         max_partition_fetch_bytes=8 << 20)
    await c.start()
    out: list[bytes] = []
    try:
        tps = [TopicPartition(ALERTS, p) for p in c.partitions_for_topic(ALERTS) or {0}]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        ends = await c.end_offsets(tps)
        while True:
            behind = [tp for tp in tps if await c.position(tp) < ends[tp]]
            if not behind:
                break
            for recs in (await c.getmany(timeout_ms=500, max_records=10_000)).values():
                out.extend(r.value for r in recs if r.value is not None)
    finally:
        await c.stop()
    return out


class _Killer:
    """A sink that kills the worker with SIGKILL after ``at`` items and starts a new one."""

    def __init__(self, sink: Any, procs: list[Proc], spawn: Any, at: int) -> None:
        self.sink, self.procs, self.spawn, self.at, self.n = sink, procs, spawn, at, 0

    async def put(self, item: Any) -> None:
        self.n += 1
        if self.n == self.at:
            await self.sink.flush()
            victim = self.procs[-1]
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait()
            print(f"kafka: worker killed (SIGKILL) after {self.n:,} items", flush=True)
            await self.spawn(len(self.procs))
        await self.sink.put(item)

    async def flush(self) -> None:
        await self.sink.flush()


def _fold_and_score(name: str, values: list[bytes], truth: dict[str, Any], out: Path,
                    result: dict[str, Any]) -> bool:
    import msgspec

    from geofence.engine import fold_records
    from geofence.model import AlertRecord, encode
    from simulators.score import score

    dec = msgspec.json.Decoder(AlertRecord)
    records = [dec.decode(v) for v in values]
    alerts, retracted = fold_records(records)
    opened: dict[str, int] = {}
    for r in records:
        if r.event == "opened":
            opened[r.alert.alert_id] = opened.get(r.alert.alert_id, 0) + 1
    doubled = sorted(a for a, n in opened.items() if n > 1)
    result["duplicate_opened"] = len(doubled)
    if doubled:
        print(f"{name}: {len(doubled)} alerts opened more than once, e.g. {doubled[:5]}", flush=True)
    (out / f"alerts-{name}.jsonl").write_bytes(b"".join(encode(a) + b"\n" for a in alerts))
    by_event: dict[str, int] = {}
    for r in records:
        by_event[r.event] = by_event.get(r.event, 0) + 1
    result.update(records=len(records), records_by_event=by_event, retracted=retracted,
                  alerts=len(alerts))
    print(f"{name}: {len(records)} lifecycle records {by_event}, {len(alerts)} alerts after folding, "
          f"{retracted} retracted episodes dropped", flush=True)
    ok = _judge(name, score(truth, [json.loads(encode(a)) for a in alerts]), result)
    fallbacks = int(result.get("batch_fallbacks", 0))
    if fallbacks:
        print(f"{name}: the worker fell back to one message at a time {fallbacks} times"
              f" (see its log)", flush=True)
    if doubled or fallbacks:
        result["passed"] = False
    return ok and not doubled and not fallbacks


# --------------------------------------------------------------------------- (b) kafka, (c) jt808

GATEWAY_ARGS: tuple[str, ...] = ("--envelope-by", "partition", "--linger-ms", "20", "--max-envelope", "2000")
"""Gateway options of the jt808 path: one envelope per *partition* (not per device), so the
5,000 connections' frames of one linger window become a handful of Kafka records instead of
one record per fix; the embedded broker (Tansu, memory storage) cannot take 7 million
one-message records in reasonable time. Passed explicitly so a change of the gateway's
defaults does not change what this run measures."""


async def _stream_path(kind: str, paths: dict[str, str], truth: dict[str, Any], out: Path,
                       result: dict[str, Any], sync_s: float,
                       gateway_args: Sequence[str] = GATEWAY_ARGS, keying: str = "partition",
                       kill_at: float | None = None) -> bool:
    from geofence.model import parse_orders
    from simulators.feed import Jt808Sink, KafkaSink, item_ts, pump, read_items
    from stream.broker import EmbeddedBroker

    orders = parse_orders(Path(paths["orders.json"]).read_bytes())
    broker = EmbeddedBroker()
    await broker.start()
    procs: list[Proc] = []
    try:
        web_port = _free_port()
        env = _env(WARDSTREAM_KAFKA=broker.bootstrap, WARDSTREAM_IDLE_WATERMARK_S="0",
                   WARDSTREAM_GATEWAY_SECRET="acceptance", WARDSTREAM_LOG_LEVEL="WARNING")
        if kill_at is not None:  # snapshots before the kill, and a quick takeover
            env.update(WARDSTREAM_SNAPSHOT_INTERVAL_S="1", WARDSTREAM_SESSION_TIMEOUT_MS="6000")

        async def spawn_worker(n: int) -> Proc:
            worker = Proc("worker", [sys.executable, "-m", "stream.cli", "worker", "--zones",
                                     paths["zones.geojson"], "--orders", paths["orders.json"],
                                     "--kafka", broker.bootstrap, "--web-port", str(web_port)],
                          env, out / f"worker-{kind}{'' if n == 0 else f'-{n}'}.log")
            procs.append(worker)
            await worker.wait_for(r"metrics on", 120)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # ready: partitions assigned and restored
                with contextlib.suppress(OSError), \
                        urllib.request.urlopen(f"http://127.0.0.1:{web_port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
                await asyncio.sleep(0.3)
            return worker

        await spawn_worker(0)
        t0 = time.perf_counter()
        if kind == "kafka":
            ksink = KafkaSink(broker.bootstrap, orders, keying=keying)
            await ksink.start()
            sink: Any = ksink
            if kill_at is not None:
                sink = _Killer(ksink, procs, spawn_worker,
                               int(kill_at * sum(1 for _ in read_items(paths["telemetry.jsonl"]))))
            try:
                stats = await pump(read_items(paths["telemetry.jsonl"]), sink)
            finally:
                await ksink.stop()
            if kill_at is not None:
                result["worker_killed_at_item"] = sink.at
            sent, telemetry_ends = ksink.messages, dict(ksink.ends)
            result["command"] = ("EmbeddedBroker; python -m stream.cli worker --zones Z --orders O "
                                 "--kafka B (WARDSTREAM_IDLE_WATERMARK_S=0); simulators.feed.KafkaSink "
                                 f"(keying {keying}, envelopes of 200, no rate limit)"
                                 + ("" if kill_at is None else
                                    f"; kill -9 of the worker after {kill_at:.0%} of the items, restarted"))
        else:
            from devices.provisioning import for_devices, save

            jt_port = _free_port()
            # every simulated terminal provisioned for JT/T 808; a whole day is replayed in
            # minutes, far above any device's real rate, so the per-device limit is off
            provisioning = str(out / "devices.json")
            save(for_devices({d: "jt808" for o in orders for d in o.devices}), provisioning)
            gw = Proc("gateway", [sys.executable, "-m", "stream.cli", "gateway", "--orders",
                                  paths["orders.json"], "--kafka", broker.bootstrap, "--host", "127.0.0.1",
                                  "--jt808-port", str(jt_port), "--metrics-port", str(_free_port()),
                                  "--no-follow-orders", "--provisioning", provisioning,
                                  "--rate-per-device", "0", *gateway_args],
                      env, out / "gateway-jt808.log")
            procs.append(gw)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", jt_port), 1):
                    break
                await asyncio.sleep(0.3)
            jsink = Jt808Sink("127.0.0.1", jt_port)
            await jsink.start()
            waited = 0.0
            sync_ms = int(sync_s * 1000)

            class Synced:
                """Jt808Sink with an acknowledgement barrier every ``sync_s`` of event time.

                At each barrier the sender waits until the gateway acknowledged (after Kafka took
                them) every frame sent up to the *previous* barrier: one window is in flight
                while the next is written, so the gateway is never idle waiting for the sender,
                and no connection runs more than two windows of event time ahead of another.
                """

                def __init__(self) -> None:
                    self.barrier: int | None = None
                    self.marks: dict[str, int] = {}

                async def put(self, item: Any) -> None:
                    nonlocal waited
                    ts = item_ts(item)
                    if ts is not None and not item.backfill:
                        if self.barrier is None:
                            self.barrier = ts
                        elif ts - self.barrier >= sync_ms:
                            w0 = time.perf_counter()
                            await jsink.flush()
                            limit = time.monotonic() + 60
                            conns = jsink.conns
                            pending = [d for d, n in self.marks.items()
                                       if (c := conns.get(d)) is not None and c.acks < n]
                            while pending and time.monotonic() < limit:
                                await asyncio.sleep(0.002)
                                pending = [d for d in pending if (c := conns.get(d)) is not None
                                           and c.acks < self.marks[d] and not c.writer.is_closing()]
                            self.marks = {d: c.sent for d, c in conns.items()}
                            waited += time.perf_counter() - w0
                            self.barrier = ts
                    await jsink.put(item)

                async def flush(self) -> None:
                    await jsink.flush()

            try:
                stats = await pump(read_items(paths["telemetry.jsonl"]), Synced())
            finally:
                await jsink.stop()
            sent, telemetry_ends = jsink.messages, None
            result.update(frames=jsink.frames, refused_devices=sorted(jsink.refused_devices),
                          hangups=jsink.hangups, reconnects=jsink.reconnects, sync_s=sync_s,
                          sender_waited_s=waited,
                          command=("EmbeddedBroker; python -m stream.cli worker ... "
                                   "(WARDSTREAM_IDLE_WATERMARK_S=0); python -m stream.cli gateway --orders O "
                                   "--jt808-port P --no-follow-orders --provisioning D "
                                   f"--rate-per-device 0 {' '.join(gateway_args)}; "
                                   "simulators.feed.Jt808Sink, "
                                   f"acknowledgement barrier every {sync_s:g} s of event time"))
        t_sent = time.perf_counter()
        print(f"{kind}: sent {sent:,} messages in {t_sent - t0:.1f} s ({sent / (t_sent - t0):,.0f}/s)",
              flush=True)
        fixes = await _wait_caught_up(broker.bootstrap, web_port, telemetry_ends)
        t_done = time.perf_counter()
        print(f"{kind}: worker caught up {t_done - t_sent:.1f} s after the last send; "
              f"end to end {t_done - t0:.1f} s ({sent / (t_done - t0):,.0f} msgs/s); fixes_in {fixes}",
              flush=True)
        result.update(sent=sent, send_seconds=t_sent - t0, end_to_end_seconds=t_done - t0,
                      end_to_end_msgs_per_s=sent / (t_done - t0), worker_fixes_in=fixes,
                      items=stats.items)
        for p in reversed(procs):  # newest first: a killed worker's -9 is not the result
            code = p.stop()
            result.setdefault(f"{p.name}_exit", code)
        # every worker process of the run, killed ones too: the batch path never fell back
        from stream.app import FALLBACK_LOG
        result["batch_fallbacks"] = sum(p.text().count(FALLBACK_LOG) for p in procs
                                        if p.name == "worker")
        values = await _read_alert_records(broker.bootstrap)
    finally:
        for p in procs:
            p.stop()
        await broker.stop()
    return _fold_and_score(kind, values, truth, out, result)


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    p = Parser(prog="python -m simulators.acceptance", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--persons", type=int, default=5000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--day", default="2026-11-20",
                   help="simulated local date; keep it in the past: the worker caps its watermark at "
                        "wall clock + 60 s, so a day still running would hold its timers back")
    p.add_argument("--interval-s", type=float, default=60.0, help="normal report interval")
    p.add_argument("--phone-share", type=float, default=0.05,
                   help="phone-supervised persons (identity check-ins) added to --persons, as a "
                        "fraction of it (the jt808 profile has none)")
    p.add_argument("--out", default="/tmp/wardstream-acceptance")
    p.add_argument("--profile", choices=("full", "jt808"), default="full")
    p.add_argument("--paths", default="replay", help="comma list of replay, kafka, jt808")
    p.add_argument("--reuse", action="store_true", help="reuse the day in --out when it matches")
    p.add_argument("--verify", action="store_true", help="also run the truth oracle (slow)")
    p.add_argument("--sync-s", type=float, default=20.0,
                   help="jt808: every this many seconds of event time the sender waits until the "
                        "gateway acknowledged every frame sent")
    p.add_argument("--gateway-args", default=" ".join(GATEWAY_ARGS),
                   help="jt808: extra options of `wardstream gateway` (default: %(default)s)")
    p.add_argument("--keying", choices=("partition", "device"), default="partition",
                   help="kafka: key telemetry by the person's partition key (the direct path) or by"
                        " device id, as a vendor platform does (the worker re-keys it)")
    p.add_argument("--kill-worker-at", type=float, default=None, metavar="FRACTION",
                   help="kafka: kill -9 the worker once this fraction of the day is sent, then start"
                        " a new one (recovery must lose nothing and open nothing twice)")
    p.add_argument("--json", default=None, help="write sizes, durations and scores here")
    args = p.parse_args(argv)
    chosen = [x for x in args.paths.split(",") if x]
    if not set(chosen) <= {"replay", "kafka", "jt808"}:
        p.error("--paths: replay, kafka, jt808")
    if "jt808" in chosen and args.profile != "jt808":
        print("note: the jt808 path wants --profile jt808 (no accuracy, whole seconds)", file=sys.stderr)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = _generate(args)
    truth = json.loads(Path(paths["truth.json"]).read_text())
    summary: dict[str, Any] = {"persons": args.persons, "seed": args.seed, "day": args.day,
                               "phone_persons": truth["meta"].get("phone_persons", 0),
                               "profile": args.profile, "interval_s": args.interval_s,
                               "messages": truth["meta"]["messages"], "expected": len(truth["expected"]),
                               "cores": len(os.sched_getaffinity(0)), "paths": {}}
    ok = True
    for name in chosen:
        result: dict[str, Any] = {}
        summary["paths"][name] = result
        t0 = time.perf_counter()
        try:
            if name == "replay":
                passed = path_replay(paths, truth, out, result)
            else:
                passed = asyncio.run(_stream_path(name, paths, truth, out, result, args.sync_s,
                                                  args.gateway_args.split(), args.keying,
                                                  args.kill_worker_at))
        except Exception as exc:  # a path that cannot run is a failed path, said plainly
            print(f"{name}: could not run: {exc!r}", file=sys.stderr)
            result.update(passed=False, error=repr(exc))
            passed = False
        result["wall_seconds"] = time.perf_counter() - t0
        ok &= passed
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=1))
    print("ACCEPTED" if ok else "NOT ACCEPTED")
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
