"""Ground truth is consistent with the generated tracks (checked from the files alone)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from geofence.model import format_ts, parse_ts
from simulators.verify import verify


def _check(d: Path, truth: dict) -> list[str]:
    with open(d / "telemetry.jsonl", "rb") as f:
        return verify((d / "zones.geojson").read_bytes(), (d / "orders.json").read_bytes(),
                      (line.rstrip(b"\n") for line in f), truth, 32.06, 118.79)


@pytest.fixture(scope="module")
def truth(small_dir: Path) -> dict:
    return json.loads((small_dir / "truth.json").read_text())


def test_tracks_give_exactly_the_expected_alerts(small_dir: Path, truth: dict) -> None:
    assert _check(small_dir, truth) == []


def test_oracle_notices_a_missing_a_moved_and_an_invented_alert(small_dir: Path, truth: dict) -> None:
    bad = copy.deepcopy(truth)
    dropped = next(e for e in bad["expected"] if e["kind"] == "exclusion_entered")
    bad["expected"].remove(dropped)
    moved = next(e for e in bad["expected"] if e["kind"] == "inclusion_left")
    lo = parse_ts(moved["opened_at"][0])
    moved["opened_at"] = [format_ts(lo + 600_000), format_ts(lo + 660_000)]
    jitter = truth["silent_persons"]["jitter"][0]
    bad["expected"].append({"person_id": jitter, "rule_id": "tamper", "kind": "tamper",
                            "opened_at": [truth["meta"]["day_start"]] * 2, "late": False})
    problems = "\n".join(_check(small_dir, bad))
    assert f"'{dropped['person_id']}', 'excl-1', 'exclusion_entered'" in problems
    assert f"'{moved['person_id']}', 'incl', 'inclusion_left'" in problems
    assert f"'{jitter}', 'tamper', 'tamper'" in problems
