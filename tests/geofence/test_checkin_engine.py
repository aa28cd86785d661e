"""Check-ins in the engine: owed windows and requests, missed deadlines, failed
and outside check-ins, in event time, as plain sequences of timestamped inputs.

The world is engine_world's (the ``district`` inclusion zone is a square of
half-side 3,000 m around the centre). Local times are Asia/Shanghai; the
day is Monday 2026-11-23.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from engine_world import MIN, SEC, fix, pt, summary, zones

from geofence.checkin import Owed, checkin_verified, owed_between
from geofence.engine import SNAPSHOT_VERSION, Engine, EngineConfig, fold_records, replay_lines
from geofence.errors import OrderError
from geofence.model import (
    AlertRecord,
    CheckIn,
    DeviceEvent,
    Order,
    TelemetryDecoder,
    encode,
    format_ts,
    parse_orders,
    parse_ts,
)
from geofence.rules import DEFAULT_SEVERITY

DAY = parse_ts("2026-11-23T00:00:00+08:00")
HOUR = 3_600_000
WINDOW = [{"start": "08:00", "end": "10:00"}]
RANDOM = {"per_day": 2, "start": "09:00", "end": "20:00", "answer_within_s": 900}


def local(hhmm: str, day: int = 0) -> int:
    """Epoch ms of local ``HH:MM[:SS]`` on the test day (+ ``day`` days)."""
    return parse_ts(f"2026-11-{23 + day}T{hhmm}{':00' if hhmm.count(':') == 1 else ''}+08:00")


def order_json(pid: str = "P-C", *, windows: Any = WINDOW, random: Any = None,
               extra: Any = (), checkin: bool = True, **kw: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"id": "c1", "type": "checkin"}
    if windows:
        rule["windows"] = windows
    if random:
        rule["random"] = random
    rule.update(kw.pop("rule", {}))
    rules: list[Any] = [{"id": "r1", "type": "inclusion", "zone": "district"}, *extra]
    if checkin:
        rules.append(rule)
    return {"person_id": pid, "devices": [f"PH-{pid[2:]}"], "jurisdiction": "320102",
            "rules": rules, **kw}


def orders(*specs: dict[str, Any]) -> list[Order]:
    return parse_orders(json.dumps(list(specs) or [order_json()]))


def engine(*specs: dict[str, Any], paths: str = "fast") -> Engine:
    return Engine(zones(), orders(*specs), EngineConfig(paths=paths))  # type: ignore[arg-type]


def ci(t: int, x: float = 0.0, dev: str = "PH-C", acc: float = 10.0, **kw: Any) -> CheckIn:
    """A check-in ``x`` m east of the centre; verified by default (face 0.95)."""
    lon, lat = pt(x)
    if "face_score" not in kw and "action_ok" not in kw:
        kw["face_score"] = 0.95
    return CheckIn(device_id=dev, ts=t, lat=lat, lon=lon, accuracy_m=acc, **kw)


def beat(t: int, dev: str = "PH-C") -> DeviceEvent:
    return DeviceEvent(device_id=dev, ts=t, event="heartbeat")


def run(eng: Engine, steps: list[Any]) -> list[AlertRecord]:
    """Feed ``steps`` one at a time: a message, or an int (a watermark)."""
    out: list[AlertRecord] = []
    for s in steps:
        if isinstance(s, int):
            out.extend(eng.advance(s))
        else:
            out.extend(eng.process([s]).records)
    return out


def kinds(records: list[AlertRecord]) -> list[tuple[str, str, str, str]]:
    """summary() of the check-in records only."""
    return [r for r in summary(records) if r[1].startswith("checkin_")]


def requests(pid: str = "P-C", day: int = 0) -> list[Owed]:
    """The random requests of the test day, from the one home of the schedule."""
    (o,) = orders(order_json(pid, windows=None, random=RANDOM))
    rule = next(r for r in o.rules if r.type == "checkin")
    start = DAY + day * 24 * HOUR
    return [w for w in owed_between(pid, rule, o.timezone, start, start + 24 * HOUR)
            if w.requested and w.opens_ms >= start]


# ---------------------------------------------------------------- windows


@pytest.mark.parametrize("at", ["08:00", "09:00", "10:00"])
def test_a_check_in_from_the_window_opening_to_its_deadline_is_in_time(at: str) -> None:
    eng = engine()
    recs = run(eng, [beat(local("07:00")), ci(local(at)), local("12:00"),
                     beat(local("12:01"))])
    assert kinds(recs) == []
    # the next day's window is still owed: missed at its deadline
    more = run(eng, [local("10:00", 1) + 1])
    assert kinds(more) == [("opened", "checkin_missed", "c1", format_ts(local("10:00", 1)))]


def test_a_check_in_one_millisecond_after_the_deadline_is_late() -> None:
    eng = engine()
    due = local("10:00")
    recs = run(eng, [beat(local("07:00")), ci(due + 1)])
    # the deadline's timer fires before the check-in; the check-in then clears it
    assert kinds(recs) == [("opened", "checkin_missed", "c1", format_ts(due)),
                           ("cleared", "checkin_missed", "c1", format_ts(due + 1))]
    (opened, cleared) = [r for r in recs if r.alert.kind == "checkin_missed"]
    assert opened.alert.severity == DEFAULT_SEVERITY["checkin_missed"] == "orange"
    assert opened.alert.jurisdiction == "320102" and opened.alert.person_id == "P-C"
    assert json.loads(opened.alert.evidence or "")["missed"] == [f"P-C/c1/w{local('08:00')}"]
    assert cleared.alert.reason is None


def test_a_watermark_at_the_deadline_does_not_fire_it_one_after_does() -> None:
    eng = engine()
    due = local("10:00")
    assert kinds(run(eng, [beat(local("07:00")), due])) == []
    assert kinds(run(eng, [due + 1])) == [("opened", "checkin_missed", "c1", format_ts(due))]


def test_later_missed_deadlines_do_not_open_a_second_episode() -> None:
    eng = engine()
    recs = run(eng, [beat(local("07:00")), local("11:00"), local("11:00", 1),
                     local("11:00", 2)])
    assert kinds(recs) == [("opened", "checkin_missed", "c1", format_ts(local("10:00")))]
    # a verified check-in clears it; the next missed deadline opens a new episode
    more = run(eng, [ci(local("12:00", 2)), local("11:00", 3)])
    assert kinds(more) == [("cleared", "checkin_missed", "c1", format_ts(local("12:00", 2))),
                           ("opened", "checkin_missed", "c1", format_ts(local("10:00", 3)))]
    assert more[0].alert.alert_id == recs[0].alert.alert_id
    assert more[1].alert.alert_id != recs[0].alert.alert_id


# ---------------------------------------------------------------- random requests


def test_a_random_request_answered_and_one_missed() -> None:
    first, second = requests()
    eng = engine(order_json(windows=None, random=RANDOM))
    recs = run(eng, [beat(local("07:00")),
                     ci(first.opens_ms + 3 * MIN, request_id=first.key),
                     local("23:00")])
    assert kinds(recs) == [("opened", "checkin_missed", "c1", format_ts(second.due_ms))]
    assert json.loads(recs[-1].alert.evidence or "")["missed"] == [second.key]


def test_a_check_in_without_request_id_answers_the_request_it_falls_in() -> None:
    first, second = requests()
    eng = engine(order_json(windows=None, random=RANDOM))
    recs = run(eng, [beat(local("07:00")), ci(first.due_ms), ci(second.opens_ms),
                     local("23:00")])
    assert kinds(recs) == []


def test_a_check_in_naming_another_request_does_not_answer_this_one() -> None:
    first, second = requests()
    eng = engine(order_json(windows=None, random=RANDOM))
    recs = run(eng, [beat(local("07:00")),
                     ci(first.opens_ms + MIN, request_id=second.key),
                     ci(second.opens_ms + MIN, request_id=second.key),
                     local("23:00")])
    # the first request is missed (the next verified check-in clears the alert)
    assert kinds(recs) == [("opened", "checkin_missed", "c1", format_ts(first.due_ms)),
                           ("cleared", "checkin_missed", "c1",
                            format_ts(second.opens_ms + MIN))]
    assert json.loads(recs[0].alert.evidence or "")["missed"] == [first.key]


def test_a_check_in_naming_a_request_still_answers_the_window_it_falls_in() -> None:
    first, _ = requests()
    eng = engine(order_json(windows=[{"start": "00:00", "end": "23:00"}]))
    recs = run(eng, [beat(local("00:10")), ci(first.opens_ms, request_id=first.key),
                     local("23:30")])
    assert kinds(recs) == []


# ---------------------------------------------------------------- event time, late data


def test_a_late_check_in_inside_the_horizon_retracts_the_missed_alert() -> None:
    eng = engine()
    due = local("10:00")
    recs = run(eng, [beat(local("07:00")), due + 30 * SEC])
    assert kinds(recs) == [("opened", "checkin_missed", "c1", format_ts(due))]
    # the check-in made 10 s before the deadline arrives 40 s later (horizon 120 s)
    back = eng.process([ci(due - 10 * SEC)]).records
    assert [(r.event, r.alert.kind, r.alert.reason) for r in back] == [
        ("cleared", "checkin_missed", "retracted")]
    assert back[0].alert.alert_id == recs[0].alert.alert_id
    assert fold_records(recs + back)[0] == []
    # and what the engine holds agrees with the complete data in order
    ref = run(engine(), [beat(local("07:00")), ci(due - 10 * SEC), due + 30 * SEC])
    assert kinds(ref) == [] and eng.open_alerts() == []


def test_a_check_in_after_the_missed_alert_opened_clears_it() -> None:
    eng = engine()
    due = local("10:00")
    recs = run(eng, [beat(local("07:00")), due + 5 * MIN, ci(due + 10 * MIN)])
    assert kinds(recs) == [("opened", "checkin_missed", "c1", format_ts(due)),
                           ("cleared", "checkin_missed", "c1", format_ts(due + 10 * MIN))]
    assert recs[-1].alert.reason is None and not recs[-1].alert.late


def test_a_check_in_beyond_the_horizon_is_late_and_clears_no_live_alert() -> None:
    eng = engine()
    due = local("10:00")
    run(eng, [beat(local("07:00")), due + 30 * MIN])
    assert [a.kind for a in eng.open_alerts()] == ["checkin_missed"]
    res = eng.process([ci(due - 20 * MIN, face_score=0.3)])  # 50 min old: late
    assert res.late == 1
    assert [(r.event, r.alert.kind, r.alert.late) for r in res.records] == [
        ("opened", "checkin_failed", True)]
    res = eng.process([ci(due - 19 * MIN)])  # a late verified one: clears the late episode only
    assert [(r.event, r.alert.kind, r.alert.late) for r in res.records] == [
        ("cleared", "checkin_failed", True)]
    assert [a.kind for a in eng.open_alerts()] == ["checkin_missed"]


def test_duplicate_check_ins_are_dropped() -> None:
    eng = engine()
    bad = ci(local("08:30"), face_score=0.2)
    res = eng.process([beat(local("07:00")), bad, bad])
    assert res.duplicates == 1
    assert kinds(res.records) == [("opened", "checkin_failed", "c1", format_ts(local("08:30")))]
    again = eng.process([bad])  # redelivered later: a duplicate too
    assert again.duplicates == 1 and again.records == []
    good = ci(local("08:40"))
    res = eng.process([good, good])
    assert res.duplicates == 1
    assert kinds(res.records) == [("cleared", "checkin_failed", "c1", format_ts(local("08:40")))]


# ---------------------------------------------------------------- verification and zones


@pytest.mark.parametrize(("face", "action", "ok"), [
    (0.95, None, True), (0.8, None, True), (0.79, None, False), (None, True, True),
    (None, False, False), (0.95, True, True), (0.95, False, False), (0.5, True, False),
])
def test_verified_means_one_result_and_none_failed(face: float | None, action: bool | None,
                                                    ok: bool) -> None:
    m = CheckIn(device_id="PH-C", ts=0, lat=32.05, lon=118.79, face_score=face,
                action_ok=action)
    assert checkin_verified(m, 0.8) is ok


@pytest.mark.parametrize("result", [{"face_score": 0.6}, {"face_score": 0.99, "action_ok": False}])
def test_a_failed_check_in_opens_red_and_answers_nothing(result: dict[str, Any]) -> None:
    eng = engine()
    t = local("08:30")
    recs = run(eng, [beat(local("07:00")), ci(t, method="face_action", **result),
                     local("10:00") + 1, ci(local("10:30"))])
    assert kinds(recs) == [
        ("opened", "checkin_failed", "c1", format_ts(t)),
        ("opened", "checkin_missed", "c1", format_ts(local("10:00"))),
        ("cleared", "checkin_missed", "c1", format_ts(local("10:30"))),
        ("cleared", "checkin_failed", "c1", format_ts(local("10:30"))),
    ]
    failed = recs[0].alert
    assert failed.severity == "red" and failed.device_id == "PH-C"
    assert json.loads(failed.evidence or "")["method"] == "face_action"


def test_min_score_and_severity_of_the_rule_apply() -> None:
    eng = engine(order_json(rule={"min_score": 0.5, "severity": "yellow"}))
    recs = run(eng, [beat(local("07:00")), ci(local("08:30"), face_score=0.6),
                     ci(local("08:40"), face_score=0.4), ci(local("08:50"), x=5000),
                     local("10:00", 1) + 1])
    assert [(r.event, r.alert.kind, r.alert.severity) for r in recs] == [
        ("opened", "checkin_failed", "yellow"), ("cleared", "checkin_failed", "yellow"),
        ("opened", "checkin_outside", "yellow"), ("opened", "checkin_missed", "yellow")]


def test_a_verified_check_in_outside_the_zone_answers_and_opens_outside() -> None:
    eng = engine()
    recs = run(eng, [beat(local("07:00")), ci(local("08:30"), x=5000), local("11:00")])
    assert kinds(recs) == [("opened", "checkin_outside", "c1", format_ts(local("08:30")))]
    a = recs[0].alert
    assert (a.severity, a.zone, a.device_id) == ("orange", "district", "PH-C")
    # on the edge (accuracy circle across the boundary): nothing changes
    more = run(eng, [ci(local("12:00"), x=3000, acc=50)])
    assert kinds(more) == []
    # certainly inside every inclusion zone: cleared
    more = run(eng, [ci(local("12:10"), x=2900, acc=50)])
    assert kinds(more) == [("cleared", "checkin_outside", "c1", format_ts(local("12:10")))]


def test_a_failed_check_in_outside_the_zone_is_only_failed() -> None:
    eng = engine()
    recs = run(eng, [beat(local("07:00")), ci(local("08:30"), x=5000, face_score=0.1)])
    assert [r.alert.kind for r in recs] == ["checkin_failed"]


def test_only_inclusion_zones_judge_a_check_in() -> None:
    extra = [{"id": "x1", "type": "exclusion", "zone": "school"}]
    eng = engine(order_json(extra=extra))
    recs = run(eng, [beat(local("07:00")), ci(local("08:30")), ci(local("08:40")),
                     ci(local("08:50"))])
    assert recs == []  # in the school three times: a check-in raises no geofence alert


# ---------------------------------------------------------------- validity, liveness, others


def test_nothing_is_owed_outside_the_orders_validity() -> None:
    limited = order_json(valid_from="2026-11-23T09:00:00+08:00",
                         valid_until="2026-11-24T09:00:00+08:00")
    eng = engine(limited)
    recs = run(eng, [beat(local("09:00:01")), local("12:00", 2)])
    assert kinds(recs) == []  # both windows straddle an end of the order
    late = eng.process([ci(local("09:30", 1), face_score=0.1)])
    assert late.unknown and late.records == []  # after the order: an unknown device
    # the same without limits: the first window is owed
    recs = run(engine(), [beat(local("09:00:01")), local("11:00")])
    assert kinds(recs) == [("opened", "checkin_missed", "c1", format_ts(local("10:00")))]


def test_order_expiry_clears_check_in_alerts() -> None:
    eng = engine(order_json(valid_until="2026-11-23T12:00:00+08:00"))
    recs = run(eng, [beat(local("07:00")), ci(local("08:00"), face_score=0.1),
                     local("13:00")])
    assert [(r.event, r.alert.kind, r.alert.reason) for r in recs] == [
        ("opened", "checkin_failed", None), ("opened", "checkin_missed", None),
        ("cleared", "checkin_failed", "order_expired"),
        ("cleared", "checkin_missed", "order_expired")]


def test_check_ins_count_for_signal_loss() -> None:
    eng = engine(order_json(extra=[{"id": "s1", "type": "signal_loss", "after_s": 900}],
                            windows=[{"start": "06:00", "end": "23:00"}]))
    steps: list[Any] = [ci(local("07:00") + k * 10 * MIN) for k in range(6)]
    recs = run(eng, [*steps, local("08:00")])
    assert recs == []  # a check-in every 10 minutes: never silent for 15
    recs = run(eng, [local("08:20"), ci(local("08:25"))])
    assert [(r.event, r.alert.kind, r.alert.opened_at) for r in recs] == [
        ("opened", "signal_lost", format_ts(local("08:05"))),
        ("cleared", "signal_lost", format_ts(local("08:05")))]
    assert recs[1].alert.cleared_at == format_ts(local("08:25"))


def test_a_check_in_without_a_checkin_rule_is_a_sign_of_life_only() -> None:
    plain = order_json(extra=[{"id": "s1", "type": "signal_loss", "after_s": 900}],
                       checkin=False)
    eng = engine(plain)
    res = eng.process([ci(local("07:00"), x=9000, face_score=0.1), ci(local("07:10"), x=9000)])
    assert res.unknown == [] and res.records == []
    assert run(eng, [local("07:24")]) == []  # the second check-in moved the silence on
    assert [r.alert.kind for r in run(eng, [local("07:26")])] == ["signal_lost"]


def test_removing_the_checkin_rule_clears_its_alerts() -> None:
    eng = engine()
    run(eng, [beat(local("07:00")), ci(local("08:00"), face_score=0.1)])
    (o,) = orders(order_json(checkin=False))
    out = eng.upsert_order(o)
    assert [(r.event, r.alert.kind, r.alert.reason) for r in out] == [
        ("cleared", "checkin_failed", "rule_removed")]
    assert kinds(run(eng, [local("12:00", 1)])) == []


def test_adding_a_checkin_rule_starts_its_schedule_at_the_next_message() -> None:
    eng = engine(order_json(checkin=False))
    run(eng, [beat(local("07:00"))])
    eng.upsert_order(orders(order_json())[0])
    recs = run(eng, [beat(local("07:30")), local("11:00")])
    assert kinds(recs) == [("opened", "checkin_missed", "c1", format_ts(local("10:00")))]


def test_at_most_one_checkin_rule_and_a_check_in_needs_a_result() -> None:
    two = order_json(extra=[{"id": "c0", "type": "checkin", "random": RANDOM}])
    with pytest.raises(OrderError) as info:
        orders(two)
    assert info.value.reason == "invalid_value" and "'c0', 'c1'" in info.value.detail
    raw = {"kind": "checkin", "device_id": "PH-C", "ts": local("08:00"), "lat": 32.05,
           "lon": 118.79, "method": "face"}
    batch = TelemetryDecoder().decode(json.dumps([raw, {**raw, "action_ok": True}]))
    assert [type(m) for m in batch.messages] == [CheckIn]
    assert [(r.index, r.reason) for r in batch.rejected] == [(0, "missing_field")]
    assert "face_score" in batch.rejected[0].detail


# ---------------------------------------------------------------- silent phones

FROM = "2026-11-23T00:00:00+08:00"  # valid_from: the test day's midnight


def test_a_silent_phone_with_valid_from_misses_its_first_deadline() -> None:
    """A phone that never sends anything: the deadline timer alone opens
    checkin_missed (one episode), the first verified check-in clears it."""
    eng = engine(order_json(valid_from=FROM))
    assert kinds(run(eng, [local("10:00")])) == []  # at the deadline: still in time
    recs = run(eng, [local("10:00") + 1, local("11:00", 1), local("11:00", 2)])
    assert kinds(recs) == [("opened", "checkin_missed", "c1", format_ts(local("10:00")))]
    assert recs[0].alert.lat is None and recs[0].alert.lon is None  # never seen anywhere
    assert json.loads(recs[0].alert.evidence or "")["missed"] == [f"P-C/c1/w{local('08:00')}"]
    more = run(eng, [ci(local("12:00", 2), face_score=0.2), ci(local("12:05", 2))])
    assert kinds(more) == [("opened", "checkin_failed", "c1", format_ts(local("12:00", 2))),
                           ("cleared", "checkin_missed", "c1", format_ts(local("12:05", 2))),
                           ("cleared", "checkin_failed", "c1", format_ts(local("12:05", 2)))]
    assert more[1].alert.alert_id == recs[0].alert.alert_id
    assert eng.open_alerts() == []


def test_a_silent_phone_with_valid_from_takes_the_watermark_of_other_persons() -> None:
    """In a shared engine the silent person's timer fires on the event time the
    others' messages make (as a stream partition does), both paths alike."""
    wrist = {"person_id": "P-W", "devices": ["WB-W"], "jurisdiction": "320102",
             "rules": [{"id": "r1", "type": "inclusion", "zone": "district"}]}
    msgs = [fix(local("07:00") + k * 5 * MIN, 100.0, dev="WB-W") for k in range(48)]
    got = {}
    for paths in ("fast", "reference"):
        eng = engine(order_json(valid_from=FROM), wrist, paths=paths)
        got[paths] = [encode(r) for m in msgs for r in eng.process([m]).records]
        got[paths] += [encode(r) for r in eng.flush()]
        assert not eng._q.mode[eng._q.row_of["P-C"]]  # never in the quiet arrays
        assert eng._q.mode[eng._q.row_of["P-W"]] == (paths == "fast")
    assert got["fast"] == got["reference"]
    recs = [msgspec.json.decode(r, type=AlertRecord) for r in got["fast"]]
    assert kinds(recs) == [("opened", "checkin_missed", "c1", format_ts(local("10:00")))]


def test_a_phone_silent_since_long_ago_costs_one_deadline() -> None:
    """An order valid for a year, loaded into a new engine: the first
    deadline after valid_from opens the one episode, the deadlines of the
    year after it settle nothing while it is open, and the first verified
    check-in clears it and resumes the schedule."""
    eng = engine(order_json(valid_from="2025-11-23T00:00:00+08:00"))
    recs = run(eng, [local("11:00")])
    assert kinds(recs) == [("opened", "checkin_missed", "c1",
                            format_ts(local("10:00") - 365 * 24 * HOUR))]
    assert eng._lanes["P-C"].heap_at >= 2**62  # no timer while the episode is open
    more = run(eng, [ci(local("12:00")), local("10:00", 1), local("10:00", 1) + 1])
    assert kinds(more) == [("cleared", "checkin_missed", "c1", format_ts(local("12:00"))),
                           ("opened", "checkin_missed", "c1", format_ts(local("10:00", 1)))]


def test_a_silent_phones_miss_clears_when_the_order_ends() -> None:
    eng = engine(order_json(valid_from=FROM, valid_until="2026-11-23T12:00:00+08:00"))
    recs = run(eng, [local("13:00"), local("11:00", 2)])
    assert [(r.event, r.alert.kind, r.alert.reason) for r in recs] == [
        ("opened", "checkin_missed", None), ("cleared", "checkin_missed", "order_expired")]


def test_a_silent_phone_without_valid_from_owes_nothing_until_its_first_message() -> None:
    """Without valid_from the schedule has no known start: it begins at the
    person's first message, so a phone never heard from raises nothing."""
    eng = engine()
    assert run(eng, [local("11:00"), local("11:00", 3)]) == []
    assert eng.open_alerts() == []
    recs = run(eng, [beat(local("07:00", 4)), local("10:00", 4) + 1])
    assert kinds(recs) == [("opened", "checkin_missed", "c1", format_ts(local("10:00", 4)))]


def test_the_first_check_in_of_a_silent_phone_inside_the_horizon_retracts_the_miss() -> None:
    eng = engine(order_json(valid_from=FROM))
    due = local("10:00")
    recs = run(eng, [due + 30 * SEC])
    assert kinds(recs) == [("opened", "checkin_missed", "c1", format_ts(due))]
    back = eng.process([ci(due - 10 * SEC)]).records
    assert [(r.event, r.alert.kind, r.alert.reason) for r in back] == [
        ("cleared", "checkin_missed", "retracted")]
    assert eng.open_alerts() == []


def test_an_order_starting_later_owes_from_its_valid_from() -> None:
    eng = engine(order_json(valid_from="2026-11-23T09:00:00+08:00"))
    # the 08:00-10:00 window opens before the order: not owed; the next day's is
    recs = run(eng, [local("12:00"), local("10:00", 1) + 1])
    assert kinds(recs) == [("opened", "checkin_missed", "c1", format_ts(local("10:00", 1)))]


@pytest.mark.parametrize("reload_at", ["09:00", "10:00", "11:00"])
def test_an_order_loaded_mid_day_owes_nothing_from_before_the_reload(reload_at: str) -> None:
    """A reload starts owing at max(valid_from, the engine's event time): the
    deadlines already passed are not raised, the ones after it are."""
    wrist = {"person_id": "P-W", "devices": ["WB-W"], "jurisdiction": "320102",
             "rules": [{"id": "r1", "type": "inclusion", "zone": "district"}]}
    eng = engine(wrist)
    run(eng, [fix(local(reload_at) - 5 * MIN, 100.0, dev="WB-W"), local(reload_at)])
    assert eng.event_time == local(reload_at)
    (o,) = orders(order_json(valid_from=FROM))  # valid since midnight, loaded now
    assert eng.upsert_order(o) == []
    recs = run(eng, [local("10:00") + 1, local("10:00", 1) + 1])
    # (a deadline at the very moment of the reload is still ahead of it: owed)
    first = local("10:00") if reload_at <= "10:00" else local("10:00", 1)
    assert kinds(recs) == [("opened", "checkin_missed", "c1", format_ts(first))]
    # installed from the start instead, the same order owes the morning's window
    fresh = engine(order_json(valid_from=FROM), wrist)
    assert kinds(run(fresh, [local("10:00") + 1]))[0][3] == format_ts(local("10:00"))


def test_a_changed_checkin_rule_of_a_silent_phone_starts_at_the_reload() -> None:
    eng = engine(order_json(valid_from=FROM))
    run(eng, [local("07:00")])
    (o,) = orders(order_json(valid_from=FROM, windows=[{"start": "06:00", "end": "07:30"}]))
    eng.upsert_order(o)
    recs = run(eng, [local("07:30") + 1])
    assert kinds(recs) == [("opened", "checkin_missed", "c1", format_ts(local("07:30")))]
    # an unchanged rule goes on as it was (the miss stays, no new start)
    assert eng.upsert_order(o) == [] and len(eng.open_alerts()) == 1


def test_a_check_in_at_the_start_of_a_schedule_answers_what_is_due_then() -> None:
    """Loaded at a deadline's very millisecond: the deadline is owed, and a
    check-in in that millisecond answers it (it comes before the timer)."""
    eng = engine()
    eng.remove_order("P-C", "order_removed")
    run(eng, [local("10:00")])
    (o,) = orders(order_json(valid_from=FROM))
    eng.upsert_order(o)
    assert kinds(run(eng, [ci(local("10:00")), local("11:00")])) == []
    again = engine()
    again.remove_order("P-C", "order_removed")
    run(again, [local("10:00")])
    again.upsert_order(o)
    assert kinds(run(again, [local("10:00") + 1])) == [
        ("opened", "checkin_missed", "c1", format_ts(local("10:00")))]


def test_a_silent_phone_survives_a_snapshot_and_restore() -> None:
    spec = order_json(valid_from=FROM)
    one = engine(spec)
    run(one, [local("07:00")])
    assert one._lanes["P-C"].state.ck_due == local("10:00")  # armed by the install
    tail: list[Any] = [local("10:00") + 1, local("11:00"), ci(local("12:00")),
                       local("10:00", 1) + 1]
    # a snapshot before each step (the first: never heard from; the second: its
    # miss open), in both formats, restored: the rest goes on as without a stop
    blobs, want = [], []
    for step in tail:
        blobs.append([one.snapshot(), one.snapshot(version=2)])
        want.append([encode(r) for r in run(one, [step])])
    assert kinds([msgspec.json.decode(r, type=AlertRecord) for w in want for r in w]) == [
        ("opened", "checkin_missed", "c1", format_ts(local("10:00"))),
        ("cleared", "checkin_missed", "c1", format_ts(local("12:00"))),
        ("opened", "checkin_missed", "c1", format_ts(local("10:00", 1)))]
    for k, pair in enumerate(blobs):
        for blob in pair:
            two = engine(spec)
            two.restore(blob)
            got = [encode(r) for r in run(two, tail[k:])]
            assert got == [r for w in want[k:] for r in w], k


def test_a_snapshot_without_the_silent_persons_lane_starts_owing_at_its_event_time() -> None:
    """A snapshot from before schedules began at valid_from holds no lane for a
    person never heard from: the restore starts owing at the snapshot's event
    time, as a reload would."""
    spec = order_json(valid_from=FROM)
    wrist = {"person_id": "P-W", "devices": ["WB-W"], "jurisdiction": "320102",
             "rules": [{"id": "r1", "type": "inclusion", "zone": "district"}]}
    one = engine(spec, wrist)
    run(one, [fix(local("11:00"), 100.0, dev="WB-W")])
    snap = msgspec.msgpack.decode(one.snapshot(), type=dict)
    snap["lanes"] = [lane for lane in snap["lanes"] if lane[0] != "P-C"]
    two = engine(spec, wrist)
    two.restore(msgspec.msgpack.encode(snap))
    assert two.event_time == local("11:00")
    recs = run(two, [local("10:00", 1) + 1])  # the morning's deadline is not raised
    assert kinds(recs) == [("opened", "checkin_missed", "c1", format_ts(local("10:00", 1)))]


# ---------------------------------------------------------------- paths, snapshots


def _mixed_day() -> tuple[list[dict[str, Any]], list[Any]]:
    """Two check-in persons, one without a checkin rule and two wristband persons
    (quiet fixes for the bulk path); every situation of the tests above."""
    specs = [order_json("P-C", random=RANDOM,
                        extra=[{"id": "s1", "type": "signal_loss", "after_s": 1800}]),
             order_json("P-D", windows=None, random=RANDOM),
             order_json("P-E", checkin=False),
             {"person_id": "P-W", "devices": ["WB-W"], "jurisdiction": "320102",
              "rules": [{"id": "r1", "type": "inclusion", "zone": "district"},
                        {"id": "s1", "type": "signal_loss", "after_s": 900}]},
             {"person_id": "P-V", "devices": ["WB-V"], "jurisdiction": "320102",
              "rules": [{"id": "r1", "type": "inclusion", "zone": "district"}]}]
    d1, d2 = requests("P-D")
    c1, _ = requests("P-C")
    steps: list[Any] = []
    for k in range(0, 16 * 60, 2):  # wristbands: a fix every 2 minutes from 06:00
        t = local("06:00") + k * MIN
        steps.append([fix(t, 100.0, dev="WB-W"), fix(t + SEC, -200.0, dev="WB-V")])
    steps += [
        [beat(local("06:30")), beat(local("06:30"), dev="PH-D"), ci(local("06:31"), dev="PH-E")],
        [ci(local("08:00")), ci(local("08:00"), dev="PH-E", face_score=0.1)],
        [ci(c1.opens_ms + MIN, request_id=c1.key, x=5000)],
        [ci(d1.due_ms + 5 * MIN, dev="PH-D")],
        [ci(d2.opens_ms + 2 * MIN, dev="PH-D", face_score=0.3),
         ci(d2.opens_ms + 3 * MIN, dev="PH-D", action_ok=True)],
        [ci(local("19:00"), x=100), ci(local("19:00"), x=100)],
    ]
    return specs, steps


def _play(eng: Engine, timeline: list[Any], bulk: list[int] | None = None) -> list[AlertRecord]:
    """Feed batches, each followed by a watermark a minute behind it."""
    out: list[AlertRecord] = []
    for batch in timeline:
        res = eng.process(batch)
        out += res.records + eng.advance(max(m.ts for m in batch) - 60 * SEC)
        if bulk is not None:
            bulk.append(res.bulk)
    return out


def _timeline(steps: list[Any]) -> list[Any]:
    return sorted(steps, key=lambda b: min(m.ts for m in b))


def test_the_fast_path_gives_the_same_records_as_the_reference() -> None:
    specs, steps = _mixed_day()
    fast = Engine(zones(), orders(*specs), EngineConfig())
    bulk: list[int] = []
    got = _play(fast, _timeline(steps), bulk) + fast.flush()
    ref = Engine(zones(), orders(*specs), EngineConfig(paths="reference"))
    want = _play(ref, _timeline(steps)) + ref.flush()
    assert [encode(r) for r in got] == [encode(r) for r in want]
    kinds_seen = {(r.event, r.alert.kind) for r in want}
    assert {("opened", "checkin_missed"), ("opened", "checkin_failed"),
            ("opened", "checkin_outside"), ("cleared", "checkin_missed"),
            ("cleared", "checkin_failed"), ("cleared", "checkin_outside")} <= kinds_seen
    assert sum(bulk) > 100  # the wristband persons went through the bulk path


@pytest.mark.parametrize("checkin", [True, False])
def test_persons_under_a_checkin_rule_never_take_the_bulk_path(checkin: bool) -> None:
    spec = order_json(checkin=checkin, windows=[{"start": "00:00", "end": "23:30"}])
    msgs = [fix(local("07:00") + k * MIN, 100.0, dev="PH-C") for k in range(30)]
    msgs.insert(10, ci(local("07:09:30")))
    fast = Engine(zones(), orders(spec), EngineConfig())
    ref = Engine(zones(), orders(spec), EngineConfig(paths="reference"))
    bulk = 0
    for m in msgs:
        res = fast.process([m])
        bulk += res.bulk
        assert [encode(r) for r in res.records] == [encode(r) for r in ref.process([m]).records]
    assert [encode(r) for r in fast.flush()] == [encode(r) for r in ref.flush()]
    assert (bulk == 0) if checkin else (bulk > 20)


def test_a_batch_with_a_check_in_of_a_quiet_person_takes_the_per_message_path() -> None:
    specs = [order_json("P-E", checkin=False,
                        extra=[{"id": "s1", "type": "signal_loss", "after_s": 900}])]
    msgs = [fix(local("07:00") + k * MIN, 100.0, dev="PH-E") for k in range(10)]
    fast = Engine(zones(), orders(*specs), EngineConfig())
    ref = Engine(zones(), orders(*specs), EngineConfig(paths="reference"))
    assert sum(fast.process([m]).bulk for m in msgs) > 0  # quiet: in the arrays
    for m in msgs:
        ref.process([m])
    batch = [fix(local("07:10"), 100.0, dev="PH-E"), ci(local("07:11"), dev="PH-E", x=9000)]
    res = fast.process(batch)
    assert res.bulk == 0  # not even the fix: the person's batch went message by message
    got = res.records + fast.advance(local("07:25")) + fast.advance(local("07:26") + 1)
    want = ref.process(batch).records + ref.advance(local("07:25")) + ref.advance(
        local("07:26") + 1)
    assert [encode(r) for r in got] == [encode(r) for r in want]
    # the check-in was the last sign of life: silent from 07:11, lost at 07:26
    assert [(r.alert.kind, r.alert.opened_at) for r in want] == [
        ("signal_lost", format_ts(local("07:26")))]


def test_a_snapshot_with_an_open_missed_alert_and_a_pending_deadline_restores() -> None:
    specs, steps = _mixed_day()
    timeline = _timeline(steps)
    d1, _ = requests("P-D")
    cut = next(i for i, b in enumerate(timeline) if min(m.ts for m in b) > d1.due_ms + 2 * MIN)
    one = Engine(zones(), orders(*specs))
    head = _play(one, timeline[:cut])
    open_kinds = {(a.person_id, a.kind) for a in one.open_alerts()}
    assert {("P-C", "checkin_outside"), ("P-D", "checkin_missed")} <= open_kinds
    # P-C has its next deadline pending; P-D, its miss open, waits for the
    # check-in that clears it before looking for one
    assert d1.due_ms < one._lanes["P-C"].state.ck_due < 2**62
    assert one._lanes["P-D"].state.ck_due >= 2**62
    blob = one.snapshot()
    assert msgspec.msgpack.decode(blob, type=dict)["version"] == SNAPSHOT_VERSION == 5
    for version in (SNAPSHOT_VERSION, 2):
        two = Engine(zones(), orders(*specs))
        two.restore(blob if version == SNAPSHOT_VERSION else one.snapshot(version=2))
        ref = Engine(zones(), orders(*specs))
        ref.restore(blob)
        tail_ref = _play(ref, timeline[cut:]) + ref.flush()
        tail_two = _play(two, timeline[cut:]) + two.flush()
        assert [encode(r) for r in tail_two] == [encode(r) for r in tail_ref]
        assert {("cleared", "checkin_missed"), ("opened", "checkin_missed"),
                ("cleared", "checkin_outside")} <= {(r.event, r.alert.kind) for r in tail_ref}
    # and the same as an engine that never stopped
    whole = Engine(zones(), orders(*specs))
    ref_all = _play(whole, timeline) + whole.flush()
    assert [encode(r) for r in head + tail_ref] == [encode(r) for r in ref_all]


def test_a_format_3_snapshot_restores_and_places_the_schedule_at_the_next_step() -> None:
    eng = engine(order_json(checkin=False))
    run(eng, [beat(local("07:00")), ci(local("07:10"), dev="PH-C")])
    snap = msgspec.msgpack.decode(eng.snapshot(), type=dict)
    # a format-3 snapshot: lane states without the check-in schedule's three fields
    snap["version"] = 3
    for lane in snap["lanes"] + snap["late_lanes"]:
        for i in (2, 3, 5):  # state, ckpt, pend
            if lane[i] is not None:
                lane[i] = lane[i][:-3]
    old = msgspec.msgpack.encode(snap)
    for specs in ([order_json(checkin=False)], [order_json()]):
        fresh = engine(*specs)
        fresh.restore(old)
        recs = run(fresh, [beat(local("07:30")), local("11:00")])
        want = [("opened", "checkin_missed", "c1", format_ts(local("10:00")))]
        assert kinds(recs) == (want if specs[0]["rules"][-1]["type"] == "checkin" else [])


def test_replay_evaluates_check_ins_and_counts_one_without_a_result() -> None:
    first, second = requests()
    spec = order_json(random=RANDOM)
    msgs = [beat(local("07:00")), ci(local("08:10"), face_score=0.2), ci(local("09:59")),
            ci(first.opens_ms + MIN, request_id=first.key, x=5000)]
    lines = [encode(m) for m in msgs]
    lines.insert(2, json.dumps({"kind": "checkin", "device_id": "PH-C", "ts": local("08:20"),
                                "lat": 32.05, "lon": 118.79}).encode())
    lines.append(encode(beat(local("23:00"))))
    alerts, summary_ = replay_lines(lines, zones(), orders(spec))
    assert summary_.rejected == {"missing_field": 1} and summary_.messages == len(msgs) + 1
    assert [(a.kind, a.opened_at, a.status) for a in alerts] == [
        ("checkin_failed", format_ts(local("08:10")), "cleared"),
        ("checkin_outside", format_ts(first.opens_ms + MIN), "open"),
        ("checkin_missed", format_ts(second.due_ms), "open")]


@pytest.mark.parametrize("rule", [
    {"windows": [{"start": "20:00", "end": "19:00"}], "random": {"per_day": 3, "start": "00:00",
                                                                  "end": "23:00"}},
    {"windows": [{"days": "sat", "start": "23:00", "end": "22:00"}]},
    # a request answered within a day, and a short window opening a day later that
    # is due first: looking one day ahead alone would miss it
    {"random": {"per_day": 1, "start": "07:10", "end": "07:30", "days": "mon",
                "answer_within_s": 86_400},
     "windows": [{"days": "tue", "start": "07:00", "end": "07:05"}]},
    {"windows": WINDOW, "random": RANDOM},
])
def test_the_next_deadline_is_the_first_of_everything_owed(rule: dict[str, Any]) -> None:
    from geofence.engine.checkins import checkin_next_due

    (o,) = orders(order_json(windows=None, rule=rule))
    spec = Engine(zones(), [o])._specs["P-C"]
    ck = next(r for r in o.rules if r.type == "checkin")
    for k in range(0, 9 * 24 * 60, 13):  # every 13 minutes over nine days
        after = DAY + k * MIN
        dues = [w.due_ms for w in owed_between("P-C", ck, o.timezone, after + 1,
                                               after + 1 + 9 * 24 * HOUR) if w.due_ms > after]
        assert checkin_next_due(spec, after) == min(dues), format_ts(after)
