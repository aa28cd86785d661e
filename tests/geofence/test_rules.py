"""Every rule driven by timestamped sequences through the engine (no I/O)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import pytest
from engine_world import MIN, SEC, T0, engine, event, fix, hit, summary, zones

from geofence.engine import Engine, EngineConfig
from geofence.episodes import alert_id
from geofence.model import AlertRecord, format_ts, parse_orders, parse_ts


def feed(eng: Engine, msgs: list[Any], one_by_one: bool = True) -> list[AlertRecord]:
    out: list[AlertRecord] = []
    if one_by_one:
        for m in msgs:
            out.extend(eng.process([m]).records)
    else:
        out.extend(eng.process(msgs).records)
    return out


def kinds(records: list[AlertRecord], kind: str) -> list[tuple[str, str, str, str]]:
    return [s for s in summary(records) if s[1] == kind]


def at(ms: int) -> str:
    return format_ts(ms)


# ------------------------------------------------------------------ exclusion


def test_exclusion_enter_and_leave() -> None:
    eng = engine()
    msgs = [fix(T0, 800), fix(T0 + 20 * SEC, 0), fix(T0 + 60 * SEC, 10),
            fix(T0 + 2 * MIN, 20), fix(T0 + 3 * MIN, 800)]
    recs = kinds(feed(eng, msgs), "exclusion_entered")
    assert recs == [
        ("opened", "exclusion_entered", "r1", at(T0 + 60 * SEC)),
        ("cleared", "exclusion_entered", "r1", at(T0 + 3 * MIN)),
    ]
    opened = next(r for r in feed(engine(), msgs) if r.event == "opened"
                  and r.alert.kind == "exclusion_entered")
    # the id names the episode start: the first certainly violating fix
    assert opened.alert.alert_id == alert_id("P-A", "r1", T0 + 20 * SEC)
    assert opened.alert.severity == "red" and opened.alert.zone == "school"
    assert opened.alert.jurisdiction == "320102" and not opened.alert.late


def test_one_violating_fix_never_opens() -> None:
    eng = engine()
    recs = feed(eng, [fix(T0, 800), fix(T0 + MIN, 0), fix(T0 + 2 * MIN, 800)])
    assert kinds(recs, "exclusion_entered") == []


def test_dwell_from_rule() -> None:
    rules = [{"id": "r1", "type": "exclusion", "zone": "school", "dwell_s": 120}]
    eng = engine(rules=rules)
    msgs = [fix(T0 + k * 30 * SEC, 0) for k in range(6)]
    recs = kinds(feed(eng, msgs), "exclusion_entered")
    assert recs == [("opened", "exclusion_entered", "r1", at(T0 + 120 * SEC))]


def test_default_opens_within_60s_of_first_certain_fix() -> None:
    # fixes every 15 s (pursuit): opens at the 30 s fix; every 60 s: at the second fix
    for step in (15, 30, 60):
        eng = engine()
        msgs = [fix(T0 + k * step * SEC, 0) for k in range(5)]
        recs = kinds(feed(eng, msgs), "exclusion_entered")
        opened = parse_ts(recs[0][3])
        assert opened - T0 <= 60 * SEC
        assert opened - T0 >= 30 * SEC


def test_hysteresis_jitter_at_boundary_neither_opens_nor_clears() -> None:
    eng = engine()
    # school radius 150 m; accuracy 10 m; +-8 m around the boundary is uncertain
    jitter = [fix(T0 + k * 20 * SEC, 150 + (8 if k % 2 else -8)) for k in range(20)]
    assert kinds(feed(eng, jitter), "exclusion_entered") == []
    # once open, uncertain fixes do not clear it
    eng = engine()
    recs = feed(eng, [fix(T0, 0), fix(T0 + MIN, 0)])
    recs += feed(eng, [fix(T0 + MIN + k * 20 * SEC, 150 + (8 if k % 2 else -8)) for k in range(1, 10)])
    assert [s[0] for s in kinds(recs, "exclusion_entered")] == ["opened"]


def test_accuracy_larger_than_distance_to_boundary() -> None:
    eng = engine()
    # 50 m inside the school circle, but accuracy 80 m: uncertain, never opens
    msgs = [fix(T0 + k * MIN, 100, acc=80) for k in range(5)]
    assert kinds(feed(eng, msgs), "exclusion_entered") == []
    # the same positions with 20 m accuracy open
    eng = engine()
    msgs = [fix(T0 + k * MIN, 100, acc=20) for k in range(2)]
    assert len(kinds(feed(eng, msgs), "exclusion_entered")) == 1


def test_approach_warning_in_buffer() -> None:
    eng = engine()
    # 200 m from the centre = 50 m outside the 150 m circle, inside the 100 m buffer
    msgs = [fix(T0, 800), fix(T0 + MIN, 200), fix(T0 + 2 * MIN, 210),
            fix(T0 + 3 * MIN, 0), fix(T0 + 4 * MIN, 0), fix(T0 + 5 * MIN, 800)]
    recs = feed(eng, msgs)
    appr = kinds(recs, "exclusion_approach")
    assert appr == [("opened", "exclusion_approach", "r1", at(T0 + 2 * MIN)),
                    ("cleared", "exclusion_approach", "r1", at(T0 + 3 * MIN))]
    opened = next(r for r in recs if r.alert.kind == "exclusion_approach")
    assert opened.alert.severity == "orange"
    assert [s[0] for s in kinds(recs, "exclusion_entered")] == ["opened", "cleared"]


def test_severity_override() -> None:
    rules = [{"id": "r1", "type": "exclusion", "zone": "school", "severity": "yellow",
              "buffer_m": 50}]
    eng = engine(rules=rules)
    recs = feed(eng, [fix(T0, 0), fix(T0 + MIN, 0)])
    assert recs[0].alert.severity == "yellow"


# ------------------------------------------------------------------ inclusion


def test_inclusion_left_and_back() -> None:
    eng = engine()
    msgs = [fix(T0, 800), fix(T0 + MIN, 3100), fix(T0 + 2 * MIN, 3200),
            fix(T0 + 3 * MIN, 3005), fix(T0 + 4 * MIN, 2900)]
    assert kinds(feed(eng, msgs), "inclusion_left") == [
        ("opened", "inclusion_left", "r2", at(T0 + 2 * MIN)),
        ("cleared", "inclusion_left", "r2", at(T0 + 4 * MIN)),  # 3005 m is uncertain
    ]


# ------------------------------------------------------------------ curfew

LOCAL_22 = parse_ts("2026-11-22T22:00:00+08:00")


def test_curfew_crossing_midnight_and_window_end() -> None:
    eng = engine()
    home, away = 1000, 1500
    msgs = [fix(LOCAL_22 - 10 * MIN, home)]
    # 23:30 local: outside twice -> violated; 00:30 back home -> cleared
    msgs += [fix(LOCAL_22 + 90 * MIN + k * MIN, away) for k in range(2)]
    msgs += [fix(LOCAL_22 + 150 * MIN, home)]
    # 05:58 local outside again, stays out past 06:00 -> cleared at the window end
    t558 = parse_ts("2026-11-23T05:58:00+08:00")
    msgs += [fix(LOCAL_22 + 150 * MIN + k * 10 * MIN, home) for k in range(1, 45)
             if LOCAL_22 + 150 * MIN + k * 10 * MIN < t558]
    msgs += [fix(t558 + k * 30 * SEC, away) for k in range(8)]
    recs = kinds(feed(eng, msgs, one_by_one=False), "curfew_violated")
    end = parse_ts("2026-11-23T06:00:00+08:00")
    assert recs == [
        ("opened", "curfew_violated", "r3", at(LOCAL_22 + 91 * MIN)),
        ("cleared", "curfew_violated", "r3", at(LOCAL_22 + 150 * MIN)),
        ("opened", "curfew_violated", "r3", at(t558 + 30 * SEC)),
        ("cleared", "curfew_violated", "r3", at(end)),
    ]


def test_curfew_outside_when_window_starts() -> None:
    eng = engine()
    msgs = [fix(LOCAL_22 - 2 * MIN, 1500), fix(LOCAL_22 - MIN, 1500),
            fix(LOCAL_22 + 30 * SEC, 1500)]
    recs = feed(eng, msgs)
    cur = [r for r in recs if r.alert.kind == "curfew_violated"]
    assert [r.event for r in cur] == ["opened"]
    # in breach from the window start: the episode (and its id) starts at 22:00
    assert cur[0].alert.alert_id == alert_id("P-A", "r3", LOCAL_22)
    assert cur[0].alert.opened_at == at(LOCAL_22 + 30 * SEC)


def test_curfew_window_start_fires_on_watermark() -> None:
    eng = engine()
    eng.process([fix(LOCAL_22 - 2 * MIN, 1500), fix(LOCAL_22 - MIN, 1500)])
    # with dwell 0 and one confirming observation the window start itself opens
    eng2 = engine(config=EngineConfig(confirm_fixes=1, default_dwell_s=0))
    eng2.process([fix(LOCAL_22 - 2 * MIN, 1500), fix(LOCAL_22 - MIN, 1500)])
    recs = eng2.advance(LOCAL_22 + SEC)
    assert kinds(recs, "curfew_violated") == [("opened", "curfew_violated", "r3", at(LOCAL_22))]
    assert kinds(eng.advance(LOCAL_22 + SEC), "curfew_violated") == []


def test_curfew_home_before_window_with_uncertain_fixes_is_quiet() -> None:
    eng = engine()
    # outside at 21:50, then only uncertain fixes (indoors, 200 m accuracy) at home
    msgs = [fix(LOCAL_22 - 10 * MIN, 1500), fix(LOCAL_22 - 5 * MIN, 1000, acc=200),
            fix(LOCAL_22 + MIN, 1000, acc=200), fix(LOCAL_22 + 2 * MIN, 1000, acc=200)]
    assert kinds(feed(eng, msgs), "curfew_violated") == []


def test_curfew_days_list() -> None:
    rules = [{"id": "r3", "type": "curfew", "zone": "home-A",
              "windows": [{"days": "mon,tue", "start": "22:00", "end": "06:00"}]}]
    # 2026-11-22 is a Sunday: no window tonight
    eng = engine(rules=rules)
    msgs = [fix(LOCAL_22 + k * MIN, 1500) for k in range(1, 4)]
    assert kinds(feed(eng, msgs), "curfew_violated") == []
    # Monday night: window
    eng = engine(rules=rules)
    mon = LOCAL_22 + 24 * 3600 * SEC
    msgs = [fix(mon + k * MIN, 1500) for k in range(1, 4)]
    assert len(kinds(feed(eng, msgs), "curfew_violated")) == 1


# ------------------------------------------------------------------ no_contact


def test_no_contact_approach_and_separation() -> None:
    eng = engine()
    msgs = []
    for k in range(8):
        t = T0 + k * MIN
        a_x = 1000 - k * 100       # A walks west
        b_x = 300                  # B waits
        msgs += [fix(t, a_x), fix(t + 5 * SEC, b_x, dev="WB-B")]
    recs = kinds(feed(eng, msgs), "contact")
    # distance at minute k: |1000 - 100k - 300|; certainly within 200 m when
    # d + 20 < 200, i.e. k=6 (d=100), 7 (d=0); the B fix at 6:05 confirms
    assert recs[0][0] == "opened"
    assert parse_ts(recs[0][3]) in (T0 + 6 * MIN + 5 * SEC, T0 + 7 * MIN)
    # separation
    more = [fix(T0 + 9 * MIN, 2000), fix(T0 + 9 * MIN + 5 * SEC, 300, dev="WB-B")]
    recs2 = kinds(feed(eng, more), "contact")
    assert recs2 == [("cleared", "contact", "r4", at(T0 + 9 * MIN))]


def test_no_contact_needs_fresh_fixes_of_both() -> None:
    eng = engine()
    # B's only fix is 3 minutes older than A's: no contact
    msgs = [fix(T0, 300, dev="WB-B"), fix(T0 + 3 * MIN, 300), fix(T0 + 4 * MIN, 300)]
    assert kinds(feed(eng, msgs), "contact") == []


def test_no_contact_accuracy_makes_it_uncertain() -> None:
    eng = engine()
    msgs = []
    for k in range(4):
        msgs += [fix(T0 + k * MIN, 300, acc=80), fix(T0 + k * MIN + SEC, 400, dev="WB-B", acc=80)]
    # 100 m apart but 160 m of combined uncertainty: 100 + 160 > 200, not certain
    assert kinds(feed(eng, msgs), "contact") == []


# ------------------------------------------------------------------ signal loss


def test_signal_loss_and_resumption() -> None:
    eng = engine()
    recs = feed(eng, [fix(T0, 800), fix(T0 + MIN, 800)])
    assert eng.advance(T0 + MIN + 900 * SEC) == []  # exactly after_s: not yet lost
    lost = eng.advance(T0 + MIN + 901 * SEC)
    assert kinds(lost, "signal_lost") == [("opened", "signal_lost", "r5", at(T0 + 16 * MIN))]
    assert lost[0].alert.severity == "orange"
    back = feed(eng, [event(T0 + 30 * MIN, "heartbeat")])
    assert kinds(back, "signal_lost") == [("cleared", "signal_lost", "r5", at(T0 + 30 * MIN))]
    # without a watermark the next message replays the timer: same episode, same id
    eng2 = engine()
    recs = feed(eng2, [fix(T0, 800), fix(T0 + MIN, 800), event(T0 + 30 * MIN, "heartbeat")])
    sig = [r for r in recs if r.alert.kind == "signal_lost"]
    assert [r.event for r in sig] == ["opened", "cleared"]
    assert sig[0].alert.alert_id == lost[0].alert.alert_id


def test_invalid_fixes_are_liveness_only() -> None:
    eng = engine()
    msgs = [fix(T0, 800)] + [fix(T0 + k * 5 * MIN, 0, valid=False) for k in range(1, 6)]
    recs = feed(eng, msgs)
    assert recs == []  # inside the school but no satellite fix; and no signal loss


# ------------------------------------------------------------------ device events


def test_tamper_stays_open() -> None:
    eng = engine()
    msgs = [fix(T0, 800), event(T0 + MIN, "tamper"), fix(T0 + 2 * MIN, 800),
            event(T0 + 3 * MIN, "tamper"), fix(T0 + 10 * MIN, 800)]
    recs = feed(eng, msgs)
    recs += eng.flush()
    assert kinds(recs, "tamper") == [("opened", "tamper", "tamper", at(T0 + MIN))]
    assert recs[0].alert.severity == "red"
    assert [a.kind for a in eng.open_alerts()] == ["tamper"]


def test_builtin_device_rules() -> None:
    eng = engine()
    msgs = [event(T0, "removed"), event(T0, "sos"), event(T0 + SEC, "battery_low"),
            event(T0 + 2 * SEC, "power_off"), event(T0 + 5 * MIN, "power_on"),
            event(T0 + 6 * MIN, "charging"), event(T0 + 7 * MIN, "vibration")]
    recs = feed(eng, msgs)
    got = [(r.event, r.alert.rule_id, r.alert.severity) for r in recs]
    assert got == [("opened", "removed", "red"), ("opened", "sos", "red"),
                   ("opened", "battery_low", "yellow"), ("opened", "power_off", "orange"),
                   ("cleared", "power_off", "orange"), ("cleared", "battery_low", "yellow")]


def test_device_conflict_is_a_red_alert_that_stays_open() -> None:
    eng = engine()
    msgs = [fix(T0, 800), event(T0 + MIN, "device_conflict"),
            event(T0 + 2 * MIN, "device_conflict"), event(T0 + 3 * MIN, "charging"),
            fix(T0 + 10 * MIN, 800)]
    recs = feed(eng, msgs)
    recs += eng.flush()
    got = [(r.event, r.alert.rule_id, r.alert.severity) for r in recs]
    assert got == [("opened", "device_conflict", "red")]
    assert [a.kind for a in eng.open_alerts()] == ["device_conflict"]


def test_unknown_device_and_duplicates() -> None:
    eng = engine()
    res = eng.process([fix(T0, 0, dev="WB-X"), fix(T0, 0), fix(T0, 0)])
    assert [m.device_id for m in res.unknown] == ["WB-X"]  # type: ignore[union-attr]
    assert res.duplicates == 1
    res = eng.process([fix(T0, 0)])
    assert res.duplicates == 1


# ------------------------------------------------------------------ order validity


def test_order_validity() -> None:
    vf = T0 + 10 * MIN
    vu = T0 + 30 * MIN
    eng = engine(valid_from=format_ts(vf), valid_until=format_ts(vu))
    before = [fix(T0 + k * MIN, 0) for k in range(5)]
    assert feed(eng, before) == []
    during = [fix(T0 + 20 * MIN + k * MIN, 0) for k in range(3)]
    recs = feed(eng, during)
    assert kinds(recs, "exclusion_entered") == [
        ("opened", "exclusion_entered", "r1", at(T0 + 21 * MIN))]
    after = [fix(vu + k * MIN, 0) for k in range(1, 5)] + [event(vu + 6 * MIN, "tamper")]
    recs = feed(eng, after)
    assert kinds(recs, "exclusion_entered") == [
        ("cleared", "exclusion_entered", "r1", at(vu))]
    assert recs[0].alert.reason == "order_expired"
    assert kinds(recs, "tamper") == []


@pytest.mark.parametrize("paths", ["fast", "reference"])
def test_a_silent_device_is_not_lost_again_after_its_order_ends(paths: str) -> None:
    # silent from 12:01:30: signal_lost opens at 12:06:30, clears when the order
    # ends at 12:20, and nothing opens again however far event time goes
    orders = parse_orders(json.dumps([{
        "person_id": "P-A", "devices": ["WB-A"], "jurisdiction": "320102",
        "valid_until": format_ts(T0 + 20 * MIN),
        "rules": [{"id": "sl", "type": "signal_loss", "after_s": 300}]}]))
    eng = Engine(zones(), orders, EngineConfig(paths=paths))  # type: ignore[arg-type]
    recs = eng.process([fix(T0 + k * 30 * SEC, 0) for k in range(4)]).records
    recs += eng.advance(T0 + 10 * 24 * 60 * MIN)
    recs += eng.flush()
    assert [(r.event, r.alert.kind, r.alert.reason) for r in recs] == [
        ("opened", "signal_lost", None), ("cleared", "signal_lost", "order_expired")]
    assert recs[1].alert.cleared_at == at(T0 + 20 * MIN)
    assert eng.open_alerts() == []


def test_device_of_an_inactive_order_is_unknown() -> None:
    # contract: telemetry from a device that no ACTIVE order names is rejected as
    # unknown_device (the caller dead-letters it), before and after the order's validity
    vf = T0 + 10 * MIN
    vu = T0 + 30 * MIN
    eng = engine(valid_from=format_ts(vf), valid_until=format_ts(vu))
    before = [fix(T0, 0), event(T0 + MIN, "tamper")]
    res = eng.process(before)
    assert res.unknown == before and res.records == []
    during = [fix(vf + k * MIN, 0) for k in range(3)]
    res = eng.process(during)
    assert res.unknown == [] and kinds(res.records, "exclusion_entered") == [
        ("opened", "exclusion_entered", "r1", at(vf + MIN))]
    after = [fix(vu, 0), fix(vu + MIN, 0), event(vu + 2 * MIN, "sos")]
    res = eng.process(after)
    assert res.unknown == after
    # the order's end is still an event-time instant: its episodes clear there
    assert kinds(res.records, "exclusion_entered") == [("cleared", "exclusion_entered", "r1", at(vu))]
    assert {r.alert.reason for r in res.records if r.event == "cleared"} == {"order_expired"}


# ------------------------------------------------------------------ video


def test_face_match_inside_exclusion_opens_with_video_evidence() -> None:
    eng = engine()
    feed(eng, [fix(T0, 100 + 800)])
    recs = feed(eng, [hit(T0 + 10 * SEC, "face_match", 20, person_id="P-A", confidence=0.93)])
    ex = [r for r in recs if r.alert.kind == "exclusion_entered"]
    assert [r.event for r in ex] == ["opened"]
    assert ex[0].alert.evidence == "video" and ex[0].alert.camera_id == "CAM-1"
    assert ex[0].alert.rule_id == "r1"


def test_face_match_low_confidence_raises_nothing() -> None:
    eng = engine()
    feed(eng, [fix(T0, 5000)])  # and far from the wristband too
    recs = feed(eng, [hit(T0 + 10 * SEC, "face_match", 0, person_id="P-A", confidence=0.5),
                      hit(T0 + 20 * SEC, "face_match", 0, person_id="P-A")])
    assert recs == [] or all(r.alert.kind == "inclusion_left" for r in recs)
    assert not [r for r in recs if r.alert.evidence == "video"]


def test_face_match_corroborates_open_gps_episode() -> None:
    eng = engine()
    recs = feed(eng, [fix(T0, 0), fix(T0 + MIN, 0)])
    recs += feed(eng, [hit(T0 + 70 * SEC, "face_match", 10, person_id="P-A", confidence=0.9),
                       hit(T0 + 80 * SEC, "face_match", 10, person_id="P-A", confidence=0.9)])
    ex = [r for r in recs if r.alert.kind == "exclusion_entered"]
    assert [r.event for r in ex] == ["opened", "updated"]
    assert ex[1].alert.evidence == "gps+video"
    assert ex[1].alert.alert_id == ex[0].alert.alert_id


def test_face_match_far_from_wristband_is_device_separation() -> None:
    eng = engine()
    feed(eng, [fix(T0, 1000)])
    recs = feed(eng, [hit(T0 + 60 * SEC, "face_match", -1000, person_id="P-A", confidence=0.9)])
    assert [(r.event, r.alert.kind, r.alert.severity) for r in recs] == [
        ("opened", "device_separation", "red")]
    # a fix older than 120 s proves nothing
    eng = engine()
    feed(eng, [fix(T0, 1000)])
    recs = feed(eng, [hit(T0 + 200 * SEC, "face_match", -1000, person_id="P-A", confidence=0.9)])
    assert recs == []
    # near the wristband: nothing
    eng = engine()
    feed(eng, [fix(T0, 1000)])
    assert feed(eng, [hit(T0 + 30 * SEC, "face_match", 1300, person_id="P-A", confidence=0.9)]) == []


def test_facility_video_events() -> None:
    eng = engine()
    msgs = [hit(T0, "fight", 0, jurisdiction="320105"),
            hit(T0 + 10 * SEC, "fight", 0, jurisdiction="320105"),
            hit(T0 + 20 * SEC, "loitering", 0, camera_id="CAM-2", jurisdiction="320106")]
    recs = feed(eng, msgs)
    got = [(r.event, r.alert.kind, r.alert.rule_id, r.alert.severity, r.alert.person_id,
            r.alert.jurisdiction) for r in recs]
    assert got == [("opened", "video_fight", "video:fight", "red", None, "320105"),
                   ("opened", "video_loitering", "video:loitering", "orange", None, "320106")]
    assert recs[0].alert.alert_id == alert_id("CAM-1", "video:fight", T0)
    quiet = eng.advance(T0 + 10 * MIN)
    assert [(r.event, r.alert.kind, r.alert.cleared_at) for r in quiet] == [
        ("cleared", "video_fight", at(T0 + 10 * SEC + 5 * MIN)),
        ("cleared", "video_loitering", at(T0 + 20 * SEC + 5 * MIN))]
    for name, sev in (("perimeter_breach", "red"), ("crowd", "orange"), ("fall", "orange")):
        r = engine().process([hit(T0, name, 0)]).records
        assert (r[0].alert.kind, r[0].alert.severity) == ("video_" + name, sev)
