"""`wardstream replay` end to end, as a subprocess of the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from engine_world import MIN, SEC, T0, event, fix, hit, orders_json, zones_geojson

from geofence.model import encode

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "stream.cli", "replay", *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def write_inputs(tmp: Path, lines: list[bytes], zones: Any = None, orders: Any = None) -> list[str]:
    (tmp / "zones.geojson").write_text(json.dumps(zones if zones is not None else zones_geojson()))
    (tmp / "orders.json").write_text(json.dumps(orders if orders is not None else orders_json()))
    (tmp / "day.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    return ["--zones", str(tmp / "zones.geojson"), "--orders", str(tmp / "orders.json"),
            "--telemetry", str(tmp / "day.jsonl")]


def good_lines() -> list[bytes]:
    inside = [fix(T0 + 2 * MIN + k * 30 * SEC, 0) for k in range(4)]
    batch = b"[" + b",".join(encode(m) for m in inside) + b"]"
    return [
        encode(fix(T0, 800)),
        batch,
        encode(fix(T0 + 5 * MIN, 800)),
        encode(event(T0 + 6 * MIN, "tamper")),
        encode(hit(T0 + 7 * MIN, "fight", 0, jurisdiction="320105")),
    ]


def test_replay_prints_final_alerts_ordered_by_opened_at(tmp_path: Path) -> None:
    args = write_inputs(tmp_path, good_lines())
    p = cli(*args)
    assert p.returncode == 0, p.stderr
    alerts = [json.loads(line) for line in p.stdout.splitlines()]
    assert [(a["kind"], a["status"]) for a in alerts] == [
        ("exclusion_entered", "cleared"), ("tamper", "open"), ("video_fight", "open")]
    assert [a["opened_at"] for a in alerts] == sorted(a["opened_at"] for a in alerts)
    assert "lines read: 5" in p.stderr and "rejected: 0" in p.stderr
    # --out writes the same bytes; and a second run is byte-identical
    q = cli(*args, "--out", str(tmp_path / "alerts.jsonl"))
    assert q.returncode == 0
    assert (tmp_path / "alerts.jsonl").read_text() == p.stdout


def test_replay_counts_malformed_lines_by_reason_and_goes_on(tmp_path: Path) -> None:
    bad = [
        b'{"kind": "fix", "device_id": "WB-A", "ts": 1, "lat": 32.0',       # malformed
        b'{"kind": "fix", "device_id": "WB-A", "lat": 32.0, "lon": 118.0}',  # no ts
        b'{"kind": "teleport", "device_id": "WB-A", "ts": 1}',              # unknown kind
        b'{"kind": "fix", "device_id": "WB-A", "ts": 1, "lat": 95, "lon": 118.0}',
        encode(fix(T0, 0, dev="WB-UNKNOWN")),
        b"",
        b"\xff\xfe garbage",
    ]
    lines = good_lines()
    mixed = [lines[0], *bad[:3], lines[1], *bad[3:], *lines[2:]]
    p = cli(*write_inputs(tmp_path, mixed))
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.splitlines()) == 3  # the same alerts as without the bad lines
    err = p.stderr
    assert "lines read: 12" in err
    for reason in ("malformed_json=2", "missing_field=1", "unknown_kind=1", "out_of_range=1",
                   "unknown_device=1", "empty_line=1"):
        assert reason in err, err


def test_replay_invalid_zones_exit_2(tmp_path: Path) -> None:
    zones = zones_geojson()
    zones["features"][0]["properties"] = {}  # a Point without radius_m
    p = cli(*write_inputs(tmp_path, good_lines(), zones=zones))
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "invalid zones" in p.stderr and "school" in p.stderr
    assert p.stdout == ""


def test_replay_invalid_orders_exit_2(tmp_path: Path) -> None:
    orders = orders_json()
    orders[0]["jurisdiction"] = "32"
    p = cli(*write_inputs(tmp_path, good_lines(), orders=orders))
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "invalid orders" in p.stderr and "P-A" in p.stderr
    (tmp_path / "orders.json").write_text("[{")
    p = cli("--zones", str(tmp_path / "zones.geojson"), "--orders", str(tmp_path / "orders.json"),
            "--telemetry", str(tmp_path / "day.jsonl"))
    assert p.returncode == 2 and "invalid orders" in p.stderr


def test_replay_refuses_a_bad_exclusion_window_naming_the_rule(tmp_path: Path) -> None:
    """A window on an exclusion rule is checked like a curfew's: a bad one is refused."""
    orders = orders_json()
    orders[0]["rules"][0]["windows"] = [{"days": "funday", "start": "09:00", "end": "10:00"}]
    p = cli(*write_inputs(tmp_path, good_lines(), orders=orders))
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and "invalid orders" in p.stderr
    assert "rule 'r1'" in p.stderr and "funday" in p.stderr and "Traceback" not in p.stderr


def test_replay_missing_file_exit_2(tmp_path: Path) -> None:
    args = write_inputs(tmp_path, good_lines())
    args[-1] = str(tmp_path / "nope.jsonl")
    p = cli(*args)
    assert p.returncode == 2 and "cannot read telemetry" in p.stderr
