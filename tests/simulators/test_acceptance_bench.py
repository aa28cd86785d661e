"""`wardstream bench` picks up bench_store.py (a Markdown-printing script) and reports missing ones."""

from __future__ import annotations

import os
from pathlib import Path

from simulators.bench import SUITE, Run, run_script, summary_table, write_report

# the shape bench_store.py prints on the alerts branch: a Markdown table, no JSON
STORE_LIKE = '''
import sys
print("cores: 2  fixes: 60,000  alerts: 5,000")
print("| measure | per second | ratio to baseline |")
print("|---|---:|---:|")
print("| track sink (decode + COPY + latest positions), fixes | 31,250 | 4.2x |")
print("| baseline: INSERT per fix, fixes | 7,400 | 1.0x |")
print("| alert sink, batches of 500, records | 12,000 | 6.0x |")
print("track store target >= 20,000 fixes/s: met")
print("args", sys.argv[1:])
'''


def test_store_markdown_is_read_and_a_missing_script_is_a_skipped_line(tmp_path: Path) -> None:
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "bench_store.py").write_text(STORE_LIKE)
    _, rel, quick, _ = next(s for s in SUITE if s[0] == "store")
    assert rel == "bench/bench_store.py"
    env = dict(os.environ)
    store = run_script("store", tmp_path / rel, quick, 60, env)
    assert store.status == "ok", store.note
    assert store.result["track sink (decode + COPY + latest positions), fixes"] == 31_250.0
    assert store.result["alert sink, batches of 500, records"] == 12_000.0
    missing = run_script("gateway", tmp_path / "bench" / "bench_gateway.py", (), 60, env)
    assert missing.status == "skipped"

    raw = {"messages": 10, "seconds": 1.0, "msgs_per_s": 125_000.0, "timeline": []}
    table = summary_table([store, missing], 2, raw, {}, [])
    text = "\n".join(table)
    assert "| machine | CPU cores available (shared) | 2 | |" in text
    assert "| track store | 31,250 fixes/s | 0.25 |" in text
    assert "| alert sink | 12,000 records/s | 0.10 |" in text
    assert "| gateway | skipped | " in text and "does not exist" in text

    out = tmp_path / "report"
    out.mkdir()
    report = write_report(out, [store, missing, Run("engine", status="exit 1", note="boom")], 2, raw, {},
                          [1.0, 2.0], "wardstream bench").read_text()
    assert "## Summary" in report and "- skipped gateway:" in report
    assert "| engine | exit 1 | boom | |" in report
