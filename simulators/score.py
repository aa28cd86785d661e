"""Score alerts against a simulator's ground truth.

An expected alert (person, rule, kind, ``opened_at`` window) is matched by
at most one produced alert with the same person, rule and kind whose
``opened_at`` lies inside the window (plus a tolerance). Produced alerts
that match nothing are false positives; expected alerts nobody matched are
false negatives. The confusion matrix pairs, per person and rule, an
unmatched expected kind with an unmatched produced kind (``-`` when there is
none), which shows a wrong kind or a window miss at a glance.

The alerts file is JSONL (or a JSON array) of alerts as ``wardstream
replay`` prints them, or of lifecycle records ``{"event", "alert"}`` as they
appear on ``wardstream.alerts`` (deduplicated by ``alert_id``, first
``opened`` state wins for ``opened_at``).

Facility video alerts have no person: their expected ``person_id`` is
``null`` and matches a produced alert whose ``person_id`` is null. An
expected alert with an ``evidence`` field (``video``, ``gps+video``) is also
checked for it: a difference is listed in ``evidence_mismatches``, like the
``late`` flag in ``late_mismatches``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from geofence.model import parse_ts


@dataclass
class ScoreReport:
    """What :func:`score` found."""

    expected: int
    produced: int
    true_positives: int
    false_positives: list[dict[str, Any]] = field(default_factory=list)
    false_negatives: list[dict[str, Any]] = field(default_factory=list)
    per_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    confusion: dict[tuple[str, str], int] = field(default_factory=dict)
    delays_s: list[float] = field(default_factory=list)
    silent_violations: dict[str, list[str]] = field(default_factory=dict)
    late_mismatches: list[dict[str, Any]] = field(default_factory=list)
    evidence_mismatches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return 1.0 if self.produced == 0 else self.true_positives / self.produced

    @property
    def recall(self) -> float:
        return 1.0 if self.expected == 0 else self.true_positives / self.expected

    def delay_percentiles(self) -> dict[str, float]:
        """opened_at minus the earliest possible opening, in seconds."""
        if not self.delays_s:
            return {}
        arr = np.asarray(self.delays_s)
        return {"p50": float(np.percentile(arr, 50)), "p90": float(np.percentile(arr, 90)),
                "p99": float(np.percentile(arr, 99)), "max": float(arr.max())}

    def as_dict(self) -> dict[str, Any]:
        return {
            "precision": self.precision, "recall": self.recall, "expected": self.expected,
            "produced": self.produced, "true_positives": self.true_positives,
            "per_kind": self.per_kind,
            "confusion": [{"expected": a, "produced": b, "count": n}
                          for (a, b), n in sorted(self.confusion.items())],
            "opened_at_delay_s": self.delay_percentiles(),
            "silent_violations": self.silent_violations,
            "late_mismatches": self.late_mismatches,
            "evidence_mismatches": self.evidence_mismatches,
            "false_positives": self.false_positives, "false_negatives": self.false_negatives,
        }

    def text(self, limit: int = 20) -> str:
        """A human-readable report."""
        out = [f"precision {self.precision:.4f}  recall {self.recall:.4f}  "
               f"(expected {self.expected}, produced {self.produced}, matched {self.true_positives})"]
        out.append("")
        out.append(f"{'kind':<22}{'expected':>9}{'matched':>9}{'missed':>8}{'unexpected':>11}")
        for kind, row in sorted(self.per_kind.items()):
            out.append(f"{kind:<22}{row['expected']:>9}{row['tp']:>9}{row['fn']:>8}{row['fp']:>11}")
        if self.confusion:
            out.append("")
            out.append("confusion (expected -> produced, unmatched only):")
            for (a, b), n in sorted(self.confusion.items()):
                out.append(f"  {a:<22} -> {b:<22} {n}")
        d = self.delay_percentiles()
        if d:
            out.append("")
            out.append("opened_at delay after first violating fix (s): " +
                       "  ".join(f"{k} {v:.1f}" for k, v in d.items()))
        for group, persons in sorted(self.silent_violations.items()):
            if persons:
                out.append(f"{group} persons with alerts (must have none): {', '.join(persons[:limit])}")
        if self.late_mismatches:
            out.append(f"late flag differs from truth on {len(self.late_mismatches)} matched alerts")
        if self.evidence_mismatches:
            out.append(f"evidence differs from truth on {len(self.evidence_mismatches)} matched alerts: "
                       + ", ".join(f"{m['expected']['person_id']} {m['expected']['rule_id']} "
                                   f"{m['expected']['evidence']} != {m['alert'].get('evidence')}"
                                   for m in self.evidence_mismatches[:limit]))
        for title, rows in (("false negatives", self.false_negatives),
                            ("false positives", self.false_positives)):
            if rows:
                out.append("")
                out.append(f"{title} (first {min(limit, len(rows))} of {len(rows)}):")
                out.extend("  " + json.dumps(r, ensure_ascii=False) for r in rows[:limit])
        return "\n".join(out)


def load_alerts(text: str) -> list[dict[str, Any]]:
    """Alerts from replay output or lifecycle records (JSONL or a JSON array)."""
    stripped = text.strip()
    items: list[Any]
    if stripped.startswith("["):
        items = json.loads(stripped)
    else:
        items = [json.loads(line) for line in stripped.splitlines() if line.strip()]
    by_id: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for item in items:
        alert = item["alert"] if isinstance(item, dict) and "alert" in item and "event" in item else item
        aid = str(alert.get("alert_id") or f"#{len(order)}")
        if aid not in by_id:
            by_id[aid] = dict(alert)
            order.append(aid)
        else:  # later states may set late/cleared_at; opened_at stays the first
            keep = by_id[aid]["opened_at"]
            by_id[aid].update(alert)
            by_id[aid]["opened_at"] = keep
    return [by_id[a] for a in order]


def score(truth: dict[str, Any], alerts: list[dict[str, Any]], tolerance_s: float = 1.0) -> ScoreReport:
    """Match produced ``alerts`` against ``truth`` (see module docstring)."""
    tol = int(tolerance_s * 1000)
    expected = truth["expected"]
    per_kind: dict[str, dict[str, int]] = defaultdict(lambda: {"expected": 0, "tp": 0, "fn": 0, "fp": 0})
    cands: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    opened = [parse_ts(a["opened_at"], "opened_at") for a in alerts]
    for i, a in enumerate(alerts):
        cands[(str(a.get("person_id")), str(a.get("rule_id")), str(a.get("kind")))].append(i)
    for lst in cands.values():
        lst.sort(key=lambda i: opened[i])
    used = [False] * len(alerts)
    report = ScoreReport(expected=len(expected), produced=len(alerts), true_positives=0)
    missed: list[dict[str, Any]] = []
    for e in sorted(expected, key=lambda e: e["opened_at"][0]):
        lo = parse_ts(e["opened_at"][0], "opened_at") - tol
        hi = parse_ts(e["opened_at"][1], "opened_at") + tol
        per_kind[e["kind"]]["expected"] += 1
        hit = None
        for i in cands.get((str(e["person_id"]), str(e["rule_id"]), str(e["kind"])), []):
            if not used[i] and lo <= opened[i] <= hi:
                hit = i
                break
        if hit is None:
            missed.append(e)
            per_kind[e["kind"]]["fn"] += 1
            continue
        used[hit] = True
        report.true_positives += 1
        per_kind[e["kind"]]["tp"] += 1
        report.delays_s.append((opened[hit] - lo - tol) / 1000.0)
        if "late" in e and bool(alerts[hit].get("late", False)) != bool(e["late"]):
            report.late_mismatches.append({"expected": e, "alert": alerts[hit]})
        if "evidence" in e and alerts[hit].get("evidence") != e["evidence"]:
            report.evidence_mismatches.append({"expected": e, "alert": alerts[hit]})
    extra = [i for i in range(len(alerts)) if not used[i]]
    for i in extra:
        per_kind[str(alerts[i].get("kind"))]["fp"] += 1
    report.false_positives = [alerts[i] for i in extra]
    report.false_negatives = missed
    # confusion among the unmatched, paired by person and rule
    unmatched_alerts: dict[tuple[str, str], list[str]] = defaultdict(list)
    for i in extra:
        unmatched_alerts[(str(alerts[i].get("person_id")), str(alerts[i].get("rule_id")))].append(
            str(alerts[i].get("kind")))
    conf: Counter[tuple[str, str]] = Counter()
    for e in missed:
        got = unmatched_alerts.get((str(e["person_id"]), str(e["rule_id"])))
        conf[(e["kind"], got.pop(0) if got else "-")] += 1
    for kinds in unmatched_alerts.values():
        for k in kinds:
            conf[("-", k)] += 1
    report.confusion = dict(conf)
    report.per_kind = {k: dict(v) for k, v in per_kind.items()}
    silent = truth.get("silent_persons", {})
    alerted = {str(a.get("person_id")) for a in alerts}
    report.silent_violations = {group: sorted(set(ps) & alerted) for group, ps in silent.items()}
    return report
