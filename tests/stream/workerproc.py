"""Worker processes for the crash tests: spawn ``wardstream worker``, wait until it is
ready, read the group's committed offsets, and check the alerts topic afterwards.

The workers run as real processes so that ``kill -9`` leaves no goodbye: no
snapshot, no commit, no leaving the group.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition
from streamkit import wait_for

from geofence.model import AlertRecord
from stream.topics import TELEMETRY

REPO = Path(__file__).resolve().parents[2]
GROUP = "wardstream-crash-test"
PARTITIONS = 4


def spawn(bootstrap: str, zones: Path, orders: Path, log: Path) -> subprocess.Popen[bytes]:
    """A worker process (4 partitions, snapshots every 0.5 s) logging to ``log``."""
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
        "WARDSTREAM_TOPIC_PARTITIONS": str(PARTITIONS), "WARDSTREAM_SNAPSHOT_INTERVAL_S": "0.5",
        "WARDSTREAM_SESSION_TIMEOUT_MS": "6000", "WARDSTREAM_IDLE_WATERMARK_S": "0",
        "WARDSTREAM_LOG_LEVEL": "INFO",
    })
    return subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "worker", "--zones", str(zones), "--orders",
         str(orders), "--kafka", bootstrap, "--web-port", "0", "--group", GROUP],
        stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env,
    )


async def web_port(log: Path, timeout: float = 30) -> int:
    """The metrics port the worker logging to ``log`` announced."""
    found: list[int] = []

    def announced() -> bool:
        m = re.findall(r"metrics on http://127.0.0.1:(\d+)/", log.read_text(errors="replace"))
        if m:
            found.append(int(m[-1]))
        return bool(m)
    await wait_for(announced, timeout)
    return found[-1]


async def ready(port: int) -> bool:
    """Whether the worker on ``port`` answers /readyz with 200."""
    try:
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/readyz") as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False


async def wait_ready(log: Path, timeout: float = 60) -> None:
    """Until the worker logging to ``log`` has joined and restored its partitions."""
    port = await web_port(log)
    await wait_for(lambda: ready(port), timeout, interval=0.3)


async def committed(bootstrap: str) -> dict[int, int]:
    """The group's committed telemetry offset per partition (0 when none)."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False)
    await c.start()
    try:
        return {p: (await c.committed(TopicPartition(TELEMETRY, p))) or 0
                for p in range(PARTITIONS)}
    finally:
        await c.stop()


async def wait_committed(bootstrap: str, ends: dict[int, int], timeout: float = 90) -> None:
    """Until the group committed every partition up to ``ends``."""
    async def done() -> bool:
        got = await committed(bootstrap)
        return all(got.get(p, 0) >= end for p, end in ends.items())
    await wait_for(done, timeout, interval=0.5)


def opened_twice(records: Sequence[AlertRecord]) -> list[str]:
    """Alert ids with more than one ``opened`` record."""
    opened = collections.Counter(r.alert.alert_id for r in records if r.event == "opened")
    return sorted(a for a, n in opened.items() if n > 1)
