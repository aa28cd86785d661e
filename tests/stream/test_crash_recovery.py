"""``kill -9`` of one of two worker processes in the
middle of the stream, then a restart. The union of the lifecycle records on
the alerts topic holds every expected alert (equal to replay) and no
``opened`` twice for any alert_id."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import scenario
from streamkit import ENDS, alert_records, produce, wait_for
from workerproc import opened_twice, spawn, wait_committed, wait_ready

from geofence.engine import fold_records, replay_lines


async def test_kill_9_one_of_two_workers_loses_nothing_and_duplicates_no_opened(
        broker: str, scenario_files: tuple[Path, Path], tmp_path: Path) -> None:
    zones, orders_file = scenario_files
    orders = scenario.orders()
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [spawn(broker, zones, orders_file, log) for log in logs]
    try:
        for log in logs:
            await wait_ready(log, 40)
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
                procs[0] = spawn(broker, zones, orders_file, logs[0])
        await produce(broker, orders, scenario.final_heartbeats())
        await wait_committed(broker, dict(ENDS[broker]))
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
    assert any(r.event == "opened" for r in records) and opened_twice(records) == []
    expected, _ = replay_lines(scenario.as_lines(msgs + scenario.final_heartbeats()),
                               scenario.zones(), orders)
    got, _ = fold_records(records)
    assert [a.alert_id for a in got] == [a.alert_id for a in expected]
    assert got == expected
