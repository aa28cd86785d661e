"""The bench runner: child processes, memory sampling, JSON results, report and plots."""

from __future__ import annotations

import os
from pathlib import Path

from simulators.bench import Run, run_script, write_report

SCRIPT = """
import json, time
block = bytearray(80 * 1024 * 1024)   # hold 80 MiB so the sampler sees it
time.sleep(1.5)
print("warming up")
print(json.dumps({"bench": "toy", "fixes_per_s": 123456.0, "p99_ms": 12.5}))
"""


def test_runs_children_samples_memory_and_writes_report(tmp_path: Path) -> None:
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "bench_toy.py").write_text(SCRIPT)
    env = dict(os.environ)
    run = run_script("toy", bench / "bench_toy.py", (), 60, env)
    assert run.status == "ok", run.note
    assert run.result == {"bench": "toy", "fixes_per_s": 123456.0, "p99_ms": 12.5}
    assert 80 <= run.peak_rss_mib < 400
    missing = run_script("store", bench / "bench_store.py", (), 60, env)
    assert missing.status == "skipped" and "does not exist" in missing.note
    failing = tmp_path / "bench" / "bench_bad.py"
    failing.write_text("import sys\nsys.exit('no database')\n")
    bad = run_script("bad", failing, (), 60, env)
    assert bad.status == "exit 1" and "no database" in bad.note

    raw = {"messages": 1000, "seconds": 0.01, "msgs_per_s": 100_000.0, "timeline": [(0.0, 0), (0.5, 500), (1.0, 1000)]}
    sim = {"persons": 10, "messages": 1000, "generate_s": 1.0, "generate_msgs_per_s": 1000.0,
           "replay_s": 0.1, "replay_msgs_per_s": 10_000.0, "precision": 1.0, "recall": 1.0,
           "expected_alerts": 3, "progress": [(0.0, 0), (0.05, 500), (0.1, 1000)]}
    out = tmp_path / "report"
    out.mkdir()
    path = write_report(out, [run, missing, bad, Run("empty")], 2, raw, sim, [1.0, 2.0, 3.0, 50.0],
                        "wardstream bench")
    text = path.read_text()
    assert "CPU cores available: **2**" in text
    assert "**100,000 msgs/s**" in text
    assert "fixes_per_s 123,456 (1.23x)" in text
    assert "skipped store:" in text and "| bad | exit 1 |" in text
    for png in ("throughput.png", "latency_cdf.png", "memory.png"):
        assert (out / png).stat().st_size > 5000
        assert f"![{png}]({png})" in text
    assert (out / "results.json").exists()
