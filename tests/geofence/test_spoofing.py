"""Spoofing: two position streams for one person that cannot both be true.

Plain timestamped sequences for P-A of ``engine_world`` (exclusion ``school``,
a 150 m circle at the centre; inclusion ``district``; signal loss), run on
the reference path and on the fast paths with several batchings: the
records must be the same on every path.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from engine_world import MIN, SEC, T0, event, fix, orders, summary, zones

from geofence.engine import Engine, EngineConfig
from geofence.model import encode

RULES = [
    {"id": "r1", "type": "exclusion", "zone": "school"},
    {"id": "r2", "type": "inclusion", "zone": "district"},
    {"id": "r5", "type": "signal_loss", "after_s": 900},
]
ZONES = zones()
ORDERS = orders(rules=RULES)


def run(msgs: list[Any], **cfg: Any) -> list[Any]:
    """Records of ``msgs`` (then a flush), the same on every path and batching."""
    results = []
    for paths in ("reference", "fast"):
        for size in (1, 7, len(msgs)):
            eng = Engine(ZONES, ORDERS, EngineConfig(paths=paths, **cfg))  # type: ignore[arg-type]
            out = []
            for i in range(0, len(msgs), size):
                out += eng.process(msgs[i:i + size]).records
            out += eng.flush()
            results.append(out)
    first = [encode(r) for r in results[0]]
    for other in results[1:]:
        assert [encode(r) for r in other] == first
    return results[0]


def kinds(records: list[Any]) -> list[tuple[str, str]]:
    return [(r.event, r.alert.kind) for r in records]


def test_forged_fixes_interleaved_with_a_real_breach_do_not_hide_it() -> None:
    """Real fixes in the school every minute, a forged one 1 km away one second
    after each (from the person's second device): the breach opens as if the
    forged fixes were not there, and spoofing_suspected opens at the third
    forged fix (``spoof_confirm``: the two streams keep alternating)."""
    msgs = []
    for k in range(6):
        t = T0 + k * MIN
        msgs += [fix(t, 0.0, dev="WB-A"), fix(t + SEC, 1000.0, dev="WB-A2")]
    out = run(msgs)
    honest = run([m for m in msgs if m.device_id == "WB-A"])
    breach = [r for r in out if r.alert.kind != "spoofing_suspected"]
    assert [encode(r) for r in breach] == [encode(r) for r in honest]
    assert ("opened", "exclusion_entered", "r1", "2026-11-22T12:01:00Z") in summary(out)
    spoof = [r for r in out if r.alert.kind == "spoofing_suspected"]
    assert kinds(spoof) == [("opened", "spoofing_suspected")]  # never cleared by the engine
    a = spoof[0].alert
    assert (a.severity, a.rule_id, a.opened_at, a.device_id) == (
        "red", "spoofing", "2026-11-22T12:02:01Z", "WB-A2")
    ev = json.loads(a.evidence or "")
    assert ev["accepted"]["ts"] == "2026-11-22T12:02:00Z"
    assert ev["implausible"]["ts"] == "2026-11-22T12:02:01Z"
    assert ev["implausible"]["device_id"] == "WB-A2"
    assert ev["implied_speed_mps"] == round(ev["implied_speed_mps"], 1) > 900  # ~1 km in 1 s, less 20 m


def test_forged_fixes_from_the_same_device_are_caught_too() -> None:
    msgs = []
    for k in range(4):
        t = T0 + k * MIN
        msgs += [fix(t, 0.0), fix(t + SEC, 1000.0)]
    out = run(msgs)
    assert sum(1 for r in out if r.alert.kind == "spoofing_suspected") == 1
    assert ("opened", "exclusion_entered") in kinds(out)
    assert ("cleared", "exclusion_entered") not in kinds(out)


def test_three_forged_fixes_do_not_clear_an_open_breach() -> None:
    msgs = [fix(T0 + k * MIN, 0.0) for k in range(3)]  # in the school: opens at 12:01
    msgs += [fix(T0 + 2 * MIN + k * SEC, 1000.0) for k in (1, 2, 3)]  # three forged, outside
    for k in (3, 4, 5):
        msgs += [fix(T0 + k * MIN, 0.0), fix(T0 + k * MIN + SEC, 1000.0)]
    out = run(msgs)
    assert ("cleared", "exclusion_entered") not in kinds(out)
    assert ("opened", "exclusion_entered") in kinds(out)
    assert [k for k in kinds(out) if k[1] == "spoofing_suspected"] == [("opened", "spoofing_suspected")]


def test_a_single_outlier_is_left_out_without_an_alert() -> None:
    """One wild fix (multipath) in the school is implausible: a one-sided
    observation that the next honest fix refutes, and a single one is no
    second stream: no alert at all."""
    msgs = [fix(T0 + k * MIN, 1000.0) for k in range(5)]
    msgs.insert(2, fix(T0 + MIN + 5 * SEC, 0.0))  # in the school, 1 km away 5 s later
    out = run(msgs)
    assert kinds(out) == []


def test_scattered_outliers_are_no_second_stream() -> None:
    """Wild fixes in different directions minutes apart (a receiver fault, not
    a forger) are each left out, and raise nothing: they do not agree with
    each other."""
    msgs = [fix(T0 + k * MIN, 1000.0) for k in range(12)]
    for k, (x, y) in enumerate([(30_000.0, 0.0), (0.0, 30_000.0), (-30_000.0, 0.0),
                                (0.0, -30_000.0)]):
        msgs.append(fix(T0 + (2 * k + 1) * MIN + SEC, x, y))
    msgs.sort(key=lambda m: m.ts)
    assert kinds(run(msgs)) == []


def test_a_person_who_really_travels_fast_is_followed_after_a_while() -> None:
    """A flight: 600 km in 40 minutes is implausible from the last fix before
    it. The far fixes are one-sided (a violation counts: inclusion_left opens
    at the second of them), and once they have agreed with each other for
    spoof_reanchor_ms they are the new reference; no spoofing alert."""
    msgs = [fix(T0 + k * MIN, 1000.0) for k in range(3)]
    far = 600_000.0
    msgs += [fix(T0 + 42 * MIN + k * MIN, far + 10 * k) for k in range(15)]
    out = run(msgs, spoof_reanchor_ms=10 * MIN)
    assert "spoofing_suspected" not in {r.alert.kind for r in out}
    incl = [x for x in summary(out) if x[1] == "inclusion_left"]
    assert incl == [("opened", "inclusion_left", "r2", "2026-11-22T12:43:00Z")]
    eng = Engine(ZONES, ORDERS, EngineConfig(spoof_reanchor_ms=10 * MIN))
    eng.process(msgs)
    assert eng._lanes["P-A"].state.sp is None  # re-anchored at 12:52


def test_two_honest_devices_of_one_person_are_no_conflict() -> None:
    msgs = []
    for k in range(10):
        t = T0 + k * MIN
        msgs += [fix(t, 1000.0, acc=10.0, dev="WB-A"), fix(t, 1030.0, acc=30.0, dev="WB-A2")]
    assert kinds(run(msgs)) == []


def test_the_alert_stays_open_until_an_operator_resolves_it() -> None:
    """Like tamper: not cleared by later honest fixes, nor by a device event."""
    msgs = []
    for k in range(3):
        t = T0 + k * MIN
        msgs += [fix(t, 1000.0), fix(t + SEC, 3000.0, dev="WB-A2")]
    msgs += [fix(T0 + 3 * MIN + k * MIN, 1000.0) for k in range(20)]
    msgs.append(event(T0 + 24 * MIN, "charging"))
    out = run(msgs)
    assert kinds(out) == [("opened", "spoofing_suspected")]
    eng = Engine(ZONES, ORDERS)
    eng.process(msgs)
    assert [a.kind for a in eng.open_alerts()] == ["spoofing_suspected"]
    # the alert id is deterministic: the same input gives the same id
    again = Engine(ZONES, ORDERS)
    again.process(msgs)
    assert [a.alert_id for a in again.open_alerts()] == [a.alert_id for a in eng.open_alerts()]


def test_a_snapshot_keeps_the_pending_judgement() -> None:
    """A forged fix before a snapshot and one after it still alternate."""
    msgs = [fix(T0, 1000.0), fix(T0 + SEC, 3000.0, dev="WB-A2"), fix(T0 + MIN, 1000.0),
            fix(T0 + MIN + SEC, 3000.0, dev="WB-A2"), fix(T0 + 2 * MIN, 1000.0)]
    eng = Engine(ZONES, ORDERS)
    assert eng.process(msgs).records == []
    data = eng.snapshot()
    eng = Engine(ZONES, ORDERS)
    eng.restore(data)
    out = eng.process([fix(T0 + 2 * MIN + SEC, 3000.0, dev="WB-A2")]).records
    assert kinds(out) == [("opened", "spoofing_suspected")]


def test_forged_fixes_in_a_quiet_place_are_judged_on_the_fast_path_too() -> None:
    """The forged positions break no rule by themselves (inside the district,
    outside the school): only their speed gives them away, and the bulk path
    must hand such a person to the per-message path."""
    msgs = [fix(T0 + k * MIN, 1000.0) for k in range(5)]
    for k in range(5, 10):
        t = T0 + k * MIN
        msgs += [fix(t, 1000.0), fix(t + SEC, -2500.0, dev="WB-A2")]
    out = run(msgs)
    assert kinds(out) == [("opened", "spoofing_suspected")]
    eng = Engine(ZONES, ORDERS)
    applied = sum(eng.process([m]).bulk for m in msgs)
    assert applied >= 4  # the honest start went in bulk
    assert [a.kind for a in eng.open_alerts()] == ["spoofing_suspected"]
