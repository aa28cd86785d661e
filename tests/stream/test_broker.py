"""The embedded broker: start, answer Kafka clients, stop cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream.broker import EmbeddedBroker, free_port, metadata_ok


async def test_produce_and_consume_through_aiokafka(kafka_bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("broker-roundtrip", num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        for i in range(30):
            await producer.send_and_wait("broker-roundtrip", f"m{i}".encode(), key=f"k{i % 7}".encode())
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        "broker-roundtrip", bootstrap_servers=kafka_bootstrap,
        group_id="broker-roundtrip-test", auto_offset_reset="earliest",
    )
    await consumer.start()
    got: list[tuple[bytes | None, bytes | None]] = []
    try:
        deadline = time.monotonic() + 20
        while len(got) < 30 and time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                got.extend((m.key, m.value) for m in msgs)
    finally:
        await consumer.stop()
    assert sorted(v for _, v in got if v) == sorted(f"m{i}".encode() for i in range(30))
    # one key always lands on one partition, so per-key order is kept
    per_key: dict[bytes | None, list[int]] = {}
    for k, v in got:
        assert v is not None
        per_key.setdefault(k, []).append(int(v[1:]))
    assert all(seq == sorted(seq) for seq in per_key.values())


def test_broker_stops_and_frees_its_port() -> None:
    broker = EmbeddedBroker().start_sync()
    pid = broker.pid
    assert pid is not None and metadata_ok("127.0.0.1", broker.port)
    broker.stop_sync()
    assert not broker.running()
    assert not metadata_ok("127.0.0.1", broker.port, timeout=0.3)
    # the process is gone, not a zombie
    stat = Path(f"/proc/{pid}/stat")
    assert not stat.exists() or stat.read_text().split()[2] == "Z"


def _gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_broker_dies_with_a_killed_parent() -> None:
    """A parent killed outright (no clean-up runs) takes its broker with it."""
    script = ("import asyncio, sys, time\n"
              "from stream.broker import EmbeddedBroker\n"
              "async def main():\n"
              "    b = EmbeddedBroker()\n"
              "    await b.start()\n"  # the async path waits in a pool thread
              # the pool's threads exit: a broker forked by one of them would die with it
              "    await asyncio.get_running_loop().shutdown_default_executor()\n"
              "    print(b.pid, b.port, flush=True)\n"
              "    await asyncio.sleep(600)\n"
              "asyncio.run(main())\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    try:
        assert parent.stdout is not None
        pid_text, port_text = parent.stdout.readline().split()
        pid, port = int(pid_text), int(port_text)
        assert not _gone(pid) and metadata_ok("127.0.0.1", port)
        time.sleep(0.5)
        assert not _gone(pid), "the broker must outlive the pool thread that waited for it"
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(pid), "the broker outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_cli_broker_prints_address_and_stops_on_sigterm() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "broker", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert f"127.0.0.1:{port}" in line
        assert metadata_ok("127.0.0.1", port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert not metadata_ok("127.0.0.1", port, timeout=0.3)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_missing_binary_is_one_clear_line() -> None:
    env = dict(os.environ, CALF_TANSU_BIN="/nonexistent/tansu")
    out = subprocess.run(
        [sys.executable, "-m", "stream.cli", "broker", "--port", str(free_port())],
        capture_output=True, text=True, env=env, timeout=30,
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "embedded broker unavailable" in lines[0]


def test_metadata_probe_rejects_a_non_kafka_port() -> None:
    async def serve() -> None:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(b"HTTP/1.0 400 Bad\r\n\r\n")
            await w.drain()
            w.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        ok = await asyncio.to_thread(metadata_ok, "127.0.0.1", port)
        server.close()
        assert ok is False

    asyncio.run(serve())
