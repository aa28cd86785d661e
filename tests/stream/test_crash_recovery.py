"""``kill -9`` of one of two worker processes in the
middle of the stream, then a restart. The union of the lifecycle records on
the alerts topic holds every expected alert (equal to replay) and no
``opened`` twice for any alert_id."""

from __future__ import annotations

import asyncio
import collections
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import scenario
from aiokafka import AIOKafkaConsumer, TopicPartition
from streamkit import ENDS, alert_records, produce, wait_for

from geofence.engine import fold_records, replay_lines
from stream.topics import TELEMETRY

REPO = Path(__file__).resolve().parents[2]
GROUP = "wardstream-crash-test"


def _spawn(bootstrap: str, zones: Path, orders: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
        "WARDSTREAM_TOPIC_PARTITIONS": "4", "WARDSTREAM_SNAPSHOT_INTERVAL_S": "0.5",
        "WARDSTREAM_SESSION_TIMEOUT_MS": "6000", "WARDSTREAM_IDLE_WATERMARK_S": "0",
        "WARDSTREAM_LOG_LEVEL": "INFO",
    })
    return subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "worker", "--zones", str(zones), "--orders",
         str(orders), "--kafka", bootstrap, "--web-port", "0", "--group", GROUP],
        stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env,
    )


async def _port(log: Path, timeout: float = 30) -> int:
    found: list[int] = []

    def ready() -> bool:
        m = re.findall(r"metrics on http://127.0.0.1:(\d+)/", log.read_text(errors="replace"))
        if m:
            found.append(int(m[-1]))
        return bool(m)
    await wait_for(ready, timeout)
    return found[-1]


async def _ready(port: int) -> bool:
    try:
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/readyz") as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False


async def _committed(bootstrap: str) -> dict[int, int]:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False)
    await c.start()
    try:
        return {p: (await c.committed(TopicPartition(TELEMETRY, p))) or 0 for p in range(4)}
    finally:
        await c.stop()


async def test_kill_9_one_of_two_workers_loses_nothing_and_duplicates_no_opened(
        broker: str, scenario_files: tuple[Path, Path], tmp_path: Path) -> None:
    zones, orders_file = scenario_files
    orders = scenario.orders()
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [_spawn(broker, zones, orders_file, log) for log in logs]
    try:
        ports = [await _port(log) for log in logs]
        for port in ports:
            await wait_for(lambda port=port: _ready(port), 40)
        msgs = scenario.messages()
        n = 12
        step = len(msgs) // n + 1
        for k in range(n):
            await produce(broker, orders, msgs[k * step:(k + 1) * step], per_envelope=20)
            await asyncio.sleep(0.4)
            if k == 5:
                procs[0].send_signal(signal.SIGKILL)  # mid-stream, no goodbye
                procs[0].wait()
                # the survivor takes the dead worker's partitions over (session timeout)
                await wait_for(lambda: "assigned telemetry partitions [0, 1, 2, 3]"
                               in logs[1].read_text(errors="replace"), 45, interval=0.3)
            if k == 7:
                logs[0].write_text("")
                procs[0] = _spawn(broker, zones, orders_file, logs[0])
        await produce(broker, orders, scenario.final_heartbeats())
        ends = dict(ENDS[broker])

        async def all_committed() -> bool:
            got = await _committed(broker)
            return all(got.get(p, 0) >= end for p, end in ends.items())
        await wait_for(all_committed, 90, interval=0.5)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
    # SIGTERM stops a worker cleanly (snapshot, commit, leave the group)
    assert [p.returncode for p in procs] == [0, 0]
    # the survivor restored the dead worker's partitions from their snapshots
    assert "restored from snapshot" in logs[1].read_text(errors="replace")

    records = await alert_records(broker)
    opened = collections.Counter(r.alert.alert_id for r in records if r.event == "opened")
    assert opened and max(opened.values()) == 1, [a for a, c in opened.items() if c > 1]
    expected, _ = replay_lines(scenario.as_lines(msgs + scenario.final_heartbeats()),
                               scenario.zones(), orders)
    got, _ = fold_records(records)
    assert [a.alert_id for a in got] == [a.alert_id for a in expected]
    assert got == expected
