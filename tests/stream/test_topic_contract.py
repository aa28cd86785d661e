"""One Kafka contract module: no topic is created anywhere else, every process
creates topics the same way, and a topic that breaks the contract stops the
process at start with a one-line reason naming the fix."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from geofence.zones import ZoneCatalogue
from stream.app import Worker
from stream.settings import Settings
from stream.topics import (
    CONTRACT_TOPICS,
    ORDERS,
    SNAPSHOTS,
    TELEMETRY,
    ZONES,
    TopicContractError,
    check_topics,
    ensure_topics,
    topic_specs,
)

REPO = Path(__file__).resolve().parents[2]
PRODUCT = ("stream", "devices", "alerts", "simulators", "bench", "geofence")


def test_no_topic_is_created_or_named_outside_the_contract_module() -> None:
    creating = re.compile(r"\bcreate_topics\(|\bNewTopic\(")
    naming = re.compile(r"""["']wardstream\.(telemetry|alerts|deadletter|orders|zones|commands|"""
                        r"""snapshots)["']""")
    offenders = []
    for pkg in PRODUCT:
        for path in (REPO / pkg).rglob("*.py"):
            if path == REPO / "stream" / "topics.py":
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if creating.search(code) or naming.search(code):
                    offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert offenders == []


async def _create(bootstrap: str, name: str, partitions: int, config: dict[str, str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=config)])
    finally:
        await admin.close()


async def test_every_process_creates_the_same_topics_and_the_check_says_ok(broker: str) -> None:
    specs = topic_specs(Settings.from_env({}, topic_partitions=3))
    created = await ensure_topics(broker, specs)
    assert sorted(created) == sorted(CONTRACT_TOPICS)
    states = {s.spec.name: s for s in await check_topics(broker, specs)}
    assert all(s.exists and s.problem is None for s in states.values())
    assert states[ORDERS].config["cleanup.policy"] == "compact"
    assert states[TELEMETRY].partitions == 3
    assert await ensure_topics(broker, specs) == []  # a second process finds them as they are


async def test_a_control_topic_without_compaction_stops_the_worker_with_one_line(
        broker: str) -> None:
    await _create(broker, ORDERS, 1, {})  # e.g. created by a client's auto-create
    settings = Settings.from_env({}, topic_partitions=2)
    worker = Worker(broker, ZoneCatalogue.from_geojson({"type": "FeatureCollection", "features": []}), [], settings)
    with pytest.raises(TopicContractError) as err:
        await worker.start()
    await worker.stop()
    reason = str(err.value)
    assert "\n" not in reason
    assert ORDERS in reason and "cleanup.policy=compact" in reason


async def test_a_telemetry_topic_with_too_few_partitions_is_reported(broker: str) -> None:
    await _create(broker, TELEMETRY, 2, {})
    specs = topic_specs(Settings.from_env({}, topic_partitions=4))
    with pytest.raises(TopicContractError, match=r"has 2 partitions, fewer than the 4"):
        await ensure_topics(broker, specs)
    # a process that does not depend on the partition count goes on
    await ensure_topics(broker, specs, partitions=False)


def test_topics_check_prints_every_topic_and_fails_on_a_wrong_one(broker: str) -> None:
    import asyncio

    asyncio.run(_create(broker, ZONES, 1, {"cleanup.policy": "delete"}))
    env = dict(os.environ, PYTHONPATH=str(REPO), WARDSTREAM_TOPIC_PARTITIONS="2")
    cmd = [sys.executable, "-m", "stream.cli", "topics", "check", "--kafka", broker]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == len(CONTRACT_TOPICS)
    assert any(line.startswith(f"{ZONES}: 1 partitions") and "WRONG" in line for line in lines)
    assert any(line.startswith(f"{SNAPSHOTS}: missing") for line in lines)
    fixed = subprocess.run([*cmd, "--create"], env=env, capture_output=True, text=True,
                           timeout=120)
    assert fixed.returncode == 1  # creating the missing ones does not repair the wrong one
    assert sum("WRONG" in line for line in fixed.stdout.splitlines()) == 1


def test_topics_check_without_a_reachable_kafka_says_so_in_one_line() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "stream.cli", "topics", "check", "--kafka",
                          "127.0.0.1:1"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "cannot reach Kafka at 127.0.0.1:1" in out.stderr
