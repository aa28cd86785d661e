"""``kill -9`` of a worker process, again and again, while it evaluates and
snapshots: no ``opened`` twice for any alert, and nothing lost against replay.

The records carry another producer's key, so every message also goes
through the repartition step, whose copies a restarted worker re-keys again.
The kills land wherever they land, so this catches a recovery race only now
and then; test_snapshot_race.py holds the one known window open on purpose.
``WARDSTREAM_KILL_RUNS`` is the number of kills: 3 in ``make test`` (about
50 s, hence ``slow``); the acceptance run is

    WARDSTREAM_KILL_RUNS=10 python -m pytest tests/stream/test_kill_loop.py -s

which prints its figures on one line.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
import scenario
from streamkit import ENDS, alert_records, produce
from workerproc import opened_twice, spawn, wait_committed, wait_ready

from geofence.engine import fold_records, replay_lines

KILLS = int(os.environ.get("WARDSTREAM_KILL_RUNS", "3"))


@pytest.mark.slow
async def test_repeated_kill_9_duplicates_no_opened(
        broker: str, scenario_files: tuple[Path, Path], tmp_path: Path) -> None:
    zones, orders_file = scenario_files
    orders = scenario.orders()
    msgs = scenario.messages()
    log = tmp_path / "w.log"
    proc = spawn(broker, zones, orders_file, log)
    chunks = KILLS + 1
    step = len(msgs) // chunks + 1
    try:
        for k in range(chunks):
            await wait_ready(log)
            await produce(broker, orders, msgs[k * step:(k + 1) * step], per_envelope=20,
                          foreign_key=True)
            if k == chunks - 1:
                break
            await asyncio.sleep(0.4 + 0.3 * (k % 4))  # mid-evaluation, mid-snapshot
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            log.write_text("")
            proc = spawn(broker, zones, orders_file, log)
        await produce(broker, orders, scenario.final_heartbeats(), foreign_key=True)
        await wait_committed(broker, dict(ENDS[broker]))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
    records = await alert_records(broker)
    expected, _ = replay_lines(scenario.as_lines(msgs + scenario.final_heartbeats()),
                               scenario.zones(), orders)
    got, _ = fold_records(records)
    want = {a.alert_id: a for a in expected}
    have = {a.alert_id: a for a in got}
    twice = opened_twice(records)
    print(f"kill loop: {KILLS} kills of a worker, {len(msgs)} messages, {len(records)} lifecycle"
          f" records; alerts {len(have)} (replay {len(want)}), missing {len(want.keys() - have)},"
          f" extra {len(have.keys() - want)}, differing"
          f" {sum(have[a] != want[a] for a in have.keys() & want)}; opened twice {len(twice)}")
    assert any(r.event == "opened" for r in records) and twice == []
    differ = [(g.alert_id, {f: (getattr(g, f), getattr(e, f)) for f in g.__struct_fields__
                            if getattr(g, f) != getattr(e, f)})
              for g, e in zip(got, expected, strict=False) if g != e]
    assert got == expected, (len(got), len(expected), differ[:5])
