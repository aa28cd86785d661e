"""``kill -9`` of a worker process, again and again, while it evaluates and
snapshots: no ``opened`` twice for any alert, and nothing lost against replay.

The records carry another producer's key, so every message also goes
through the repartition step, whose copies a restarted worker re-keys again.
The kills land wherever they land, so this catches a recovery race only now
and then; test_snapshot_race.py holds the one known window open on purpose.
About 50 s, hence ``slow``.
"""

from __future__ import annotations

import asyncio
import collections
import signal
from pathlib import Path

import pytest
import scenario
from streamkit import ENDS, alert_records, produce, wait_for
from test_crash_recovery import _committed, _port, _ready, _spawn

from geofence.engine import fold_records, replay_lines

KILLS = 3


@pytest.mark.slow
async def test_repeated_kill_9_duplicates_no_opened(
        broker: str, scenario_files: tuple[Path, Path], tmp_path: Path) -> None:
    zones, orders_file = scenario_files
    orders = scenario.orders()
    msgs = scenario.messages()
    log = tmp_path / "w.log"
    proc = _spawn(broker, zones, orders_file, log)
    chunks = KILLS + 1
    step = len(msgs) // chunks + 1
    try:
        for k in range(chunks):
            port = await _port(log)
            await wait_for(lambda port=port: _ready(port), 60, interval=0.3)
            await produce(broker, orders, msgs[k * step:(k + 1) * step], per_envelope=20,
                          foreign_key=True)
            if k == chunks - 1:
                break
            await asyncio.sleep(0.4 + 0.3 * k)  # mid-evaluation, mid-snapshot
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            log.write_text("")
            proc = _spawn(broker, zones, orders_file, log)
        await produce(broker, orders, scenario.final_heartbeats(), foreign_key=True)
        ends = dict(ENDS[broker])

        async def all_committed() -> bool:
            got = await _committed(broker)
            return all(got.get(p, 0) >= end for p, end in ends.items())
        await wait_for(all_committed, 90, interval=0.5)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
    records = await alert_records(broker)
    opened = collections.Counter(r.alert.alert_id for r in records if r.event == "opened")
    assert opened and max(opened.values()) == 1, [a for a, c in opened.items() if c > 1]
    expected, _ = replay_lines(scenario.as_lines(msgs + scenario.final_heartbeats()),
                               scenario.zones(), orders)
    got, _ = fold_records(records)
    differ = [(g.alert_id, {f: (getattr(g, f), getattr(e, f)) for f in g.__struct_fields__
                            if getattr(g, f) != getattr(e, f)})
              for g, e in zip(got, expected, strict=False) if g != e]
    assert got == expected, (len(got), len(expected), differ[:5])
