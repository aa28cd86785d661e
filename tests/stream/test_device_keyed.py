"""Telemetry keyed by device id (as a vendor platform sends it) is evaluated
with its person's state: the acceptance day through Kafka scores 1.0/1.0,
nothing is dead-lettered as ``misrouted``, and a ``kill -9`` of the worker in
the middle of the run loses nothing and opens no alert twice."""

from __future__ import annotations

import json
from pathlib import Path

from simulators import acceptance


def test_device_keyed_day_with_a_kill_9_scores_one_and_opens_nothing_twice(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    code = acceptance.main(["--persons", "60", "--out", str(tmp_path / "day"), "--paths", "kafka",
                            "--keying", "device", "--kill-worker-at", "0.5",
                            "--json", str(summary)])
    result = json.loads(summary.read_text())["paths"]["kafka"]
    assert code == 0, result
    assert result["precision"] == 1.0 and result["recall"] == 1.0
    assert result["expected"] > 0
    assert result["duplicate_opened"] == 0
    assert result["worker_killed_at_item"] > 0
    fixes = result["worker_fixes_in"]
    assert fixes.get('{result="misrouted"}', 0) == 0
    # most device keys hash elsewhere than their person's key: the detour was taken
    assert fixes['{result="rerouted"}'] > result["sent"] / 2
