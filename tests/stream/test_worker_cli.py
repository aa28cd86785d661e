"""`wardstream worker` command line: arguments and one-line failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(REPO), e.get("PYTHONPATH", "")])
    e.pop("WARDSTREAM_KAFKA", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "stream.cli", "worker", *args],
                          capture_output=True, text=True, env=e, timeout=60)


def test_help_lists_the_options() -> None:
    out = _run("--help")
    assert out.returncode == 0
    for opt in ("--zones", "--orders", "--kafka", "--web-port", "--group"):
        assert opt in out.stdout


def test_without_kafka_it_says_how_to_get_one(tmp_path: Path) -> None:
    out = _run("--zones", str(tmp_path / "z"), "--orders", str(tmp_path / "o"))
    assert out.returncode == 2
    assert "WARDSTREAM_KAFKA" in out.stderr and "wardstream broker" in out.stderr


def test_invalid_orders_exit_2_with_the_reason(tmp_path: Path, broker: str) -> None:
    import scenario

    z = tmp_path / "zones.json"
    z.write_text(json.dumps(scenario.zones_geojson()))
    o = tmp_path / "orders.json"
    o.write_text('[{"person_id": "P1", "devices": ["d"], "jurisdiction": "32", "rules": []}]')
    out = _run("--zones", str(z), "--orders", str(o), "--kafka", broker)
    assert out.returncode == 2
    assert "jurisdiction" in out.stderr and len(out.stderr.strip().splitlines()) == 1
