"""`simulate generate` and `replay` count the same day the same way, up to one stated difference.

replay counts every line that decodes as telemetry as a message, including a
well-formed fix from a device no order names, which it then rejects as
``unknown_device``; generate counts only the valid messages.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stream.cli", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=300)


def test_generate_and_replay_counts_agree(tmp_path: Path) -> None:
    gen = _cli("simulate", "generate", "--persons", "20", "--seed", "3", "--out", str(tmp_path))
    assert gen.returncode == 0, gen.stderr
    said = re.search(r"(\d+) messages in (\d+) lines \((\d+) of them to be rejected", gen.stderr)
    assert said, gen.stderr
    messages, lines, bad = map(int, said.groups())
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert bad == sum(truth["rejected"].values())
    rep = _cli("replay", "--zones", str(tmp_path / "zones.geojson"), "--orders",
               str(tmp_path / "orders.json"), "--telemetry", str(tmp_path / "telemetry.jsonl"),
               "--out", str(tmp_path / "alerts.jsonl"))
    assert rep.returncode == 0, rep.stderr
    summary = rep.stderr
    read = int(re.search(r"lines read: (\d+)", summary).group(1))  # type: ignore[union-attr]
    replayed = int(re.search(r"messages: (\d+)", summary).group(1))  # type: ignore[union-attr]
    unknown = int(re.search(r"unknown_device=(\d+)", summary).group(1))  # type: ignore[union-attr]
    assert read == lines
    assert unknown == truth["rejected"]["unknown_device"] > 0
    assert replayed == messages + unknown
