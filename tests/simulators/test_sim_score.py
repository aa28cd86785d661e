"""Scoring on hand-made inputs, and the CLI's exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from simulators.score import load_alerts, score

TRUTH = {
    "expected": [
        {"person_id": "P-1", "rule_id": "excl-1", "kind": "exclusion_entered",
         "opened_at": ["2026-11-22T02:00:00Z", "2026-11-22T02:00:30Z"], "late": False},
        {"person_id": "P-2", "rule_id": "incl", "kind": "inclusion_left",
         "opened_at": ["2026-11-22T03:00:00Z", "2026-11-22T03:00:30Z"], "late": False},
        {"person_id": "P-3", "rule_id": "tamper", "kind": "tamper",
         "opened_at": ["2026-11-22T04:00:00Z", "2026-11-22T04:00:00Z"], "late": False},
        {"person_id": "P-4", "rule_id": "excl-1", "kind": "exclusion_entered",
         "opened_at": ["2026-11-22T05:00:00Z", "2026-11-22T05:00:30Z"], "late": True},
    ],
    "silent_persons": {"jitter": ["P-9"]},
}


def _alert(pid: str, rule: str, kind: str, at: str, late: bool = False) -> dict:
    return {"alert_id": f"{pid}/{rule}/{at}", "person_id": pid, "rule_id": rule, "kind": kind,
            "severity": "red", "opened_at": at, "late": late}


ALERTS = [
    _alert("P-1", "excl-1", "exclusion_entered", "2026-11-22T02:00:15Z"),           # hit, 15 s
    _alert("P-2", "incl", "inclusion_left", "2026-11-22T03:05:00Z"),                 # outside window
    _alert("P-3", "tamper", "tamper", "2026-11-22T04:00:00Z"),                       # hit, 0 s
    _alert("P-4", "excl-1", "exclusion_approach", "2026-11-22T05:00:10Z", True),     # wrong kind
    _alert("P-9", "excl-1", "exclusion_entered", "2026-11-22T06:00:00Z"),            # jitter person
]


def test_counts_confusion_and_delays() -> None:
    r = score(TRUTH, ALERTS)
    assert (r.expected, r.produced, r.true_positives) == (4, 5, 2)
    assert r.precision == 2 / 5 and r.recall == 2 / 4
    assert r.per_kind["exclusion_entered"] == {"expected": 2, "tp": 1, "fn": 1, "fp": 1}
    assert r.per_kind["inclusion_left"] == {"expected": 1, "tp": 0, "fn": 1, "fp": 1}
    assert r.confusion[("inclusion_left", "inclusion_left")] == 1
    assert r.confusion[("exclusion_entered", "exclusion_approach")] == 1
    assert r.confusion[("-", "exclusion_entered")] == 1
    assert r.delays_s == [15.0, 0.0]
    assert r.delay_percentiles()["max"] == 15.0
    assert r.silent_violations == {"jitter": ["P-9"]}


def test_perfect_score_and_late_flag_check() -> None:
    good = [_alert("P-1", "excl-1", "exclusion_entered", "2026-11-22T02:00:30Z"),
            _alert("P-2", "incl", "inclusion_left", "2026-11-22T03:00:00Z"),
            _alert("P-3", "tamper", "tamper", "2026-11-22T04:00:00Z"),
            _alert("P-4", "excl-1", "exclusion_entered", "2026-11-22T05:00:30Z", late=False)]
    r = score(TRUTH, good)
    assert r.precision == 1.0 and r.recall == 1.0
    assert len(r.late_mismatches) == 1  # P-4's backfilled breach should carry late: true


def test_lifecycle_records_are_folded_by_alert_id() -> None:
    a = _alert("P-3", "tamper", "tamper", "2026-11-22T04:00:00Z")
    lines = [json.dumps({"event": "opened", "alert": a}),
             json.dumps({"event": "escalated", "alert": {**a, "opened_at": "2026-11-22T04:09:00Z"}})]
    alerts = load_alerts("\n".join(lines))
    assert len(alerts) == 1 and alerts[0]["opened_at"] == "2026-11-22T04:00:00Z"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stream.cli", "simulate", *args],
                          capture_output=True, text=True, env=os.environ.copy(), timeout=120)


def test_cli_exit_codes_follow_thresholds(tmp_path: Path) -> None:
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps(TRUTH))
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text("\n".join(json.dumps(a) for a in ALERTS) + "\n")
    ok = _cli("score", "--truth", str(truth), "--alerts", str(alerts),
              "--min-precision", "0.4", "--min-recall", "0.5", "--json", str(tmp_path / "r.json"))
    assert ok.returncode == 0, ok.stderr
    assert "precision 0.4000  recall 0.5000" in ok.stdout
    assert json.loads((tmp_path / "r.json").read_text())["true_positives"] == 2
    low = _cli("score", "--truth", str(truth), "--alerts", str(alerts), "--min-recall", "0.6")
    assert low.returncode == 1
    assert "below threshold" in low.stderr
    missing = _cli("score", "--truth", str(tmp_path / "nope.json"), "--alerts", str(alerts))
    assert missing.returncode == 2
