"""Casework in the engine: windows on any zone rule, leave (exemptions) and
positioning terms, as plain sequences of timestamped fixes (docs/rules.md,
"Schedules on any rule", "Leave and suspensions", "Positioning terms")."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from engine_world import MIN, fix, orders_json, zones

from geofence.engine import Engine
from geofence.episodes import alert_id
from geofence.model import AlertRecord, parse_orders, parse_ts

MON7 = parse_ts("2026-11-23T07:00:00+08:00")  # a Monday, 07:00 in Asia/Shanghai
MON18 = parse_ts("2026-11-23T18:00:00+08:00")
WEEKDAYS = [{"days": "mon,tue,wed,thu,fri", "start": "07:00", "end": "18:00"}]
HOUR = 60 * MIN
DAY = 24 * HOUR

SCHOOL, FAR, OUT_OF_DISTRICT, HOME = 0.0, 2_000.0, 5_000.0, 1_000.0


def order(rules: list[dict[str, Any]], **extra: Any) -> list[Any]:
    return parse_orders(json.dumps(orders_json(rules=rules, **extra)))


def engine(rules: list[dict[str, Any]], **extra: Any) -> Engine:
    return Engine(zones(), order(rules, **extra))


def run(eng: Engine, *fixes: tuple[int, float]) -> list[AlertRecord]:
    out: list[AlertRecord] = []
    for t, x in fixes:
        out.extend(eng.process([fix(t, x)]).records)
    return out


def seen(records: list[AlertRecord]) -> list[tuple[str, str, str, int, str | None]]:
    """(event, kind, rule_id, time, reason) per record."""
    out = []
    for r in records:
        a = r.alert
        when = a.cleared_at if r.event == "cleared" else a.opened_at
        assert when is not None
        out.append((r.event, a.kind, a.rule_id, parse_ts(when), a.reason))
    return out


def every(start: int, end: int, step: int, x: float) -> list[tuple[int, float]]:
    return [(t, x) for t in range(start, end, step)]


# ---------------------------------------------------------------- schedules on any rule
def test_windowed_exclusion_breaches_from_the_window_start_and_clears_at_its_end() -> None:
    eng = engine([{"id": "r1", "type": "exclusion", "zone": "school", "windows": WEEKDAYS}])
    # inside the school before the window: nothing
    recs = run(eng, *every(MON7 - 30 * MIN, MON7, 5 * MIN, SCHOOL))
    assert recs == []
    recs = run(eng, (MON7 + MIN, SCHOOL), (MON7 + 2 * MIN, SCHOOL))
    assert seen(recs) == [("opened", "exclusion_entered", "r1", MON7 + MIN, None)]
    # the episode starts at the window's start (its id names that instant)
    assert recs[0].alert.alert_id == alert_id("P-A", "r1", MON7)
    recs = run(eng, (MON18 + MIN, SCHOOL), (MON18 + 2 * MIN, SCHOOL))
    assert seen(recs) == [("cleared", "exclusion_entered", "r1", MON18, "window_ended")]


def test_windowed_exclusion_ignores_fixes_outside_its_windows() -> None:
    eng = engine([{"id": "r1", "type": "exclusion", "zone": "school", "buffer_m": 100,
                   "windows": WEEKDAYS}])
    sat = MON7 - 2 * DAY + 3 * HOUR  # Saturday 10:00
    assert run(eng, *every(sat, sat + HOUR, 5 * MIN, SCHOOL)) == []
    # the approach warning follows the rule's windows as well
    recs = run(eng, (MON7 - MIN, 200.0), (MON7 + MIN, 200.0), (MON7 + 2 * MIN, 200.0))
    assert [(e, k, t) for e, k, _, t, _ in seen(recs)] == [
        ("opened", "exclusion_approach", MON7 + MIN)]


def test_windowed_inclusion_widens_at_weekends() -> None:
    # weekdays: the district; weekends: nothing confines the person (no weekend window)
    weekend_work = [{"id": "r2", "type": "inclusion", "zone": "district", "windows": WEEKDAYS}]
    eng = engine(weekend_work)
    sat = MON7 - 2 * DAY + 3 * HOUR
    assert run(eng, *every(sat, sat + HOUR, 5 * MIN, OUT_OF_DISTRICT)) == []
    # still away on Monday morning: in breach from 07:00, and back home clears it
    recs = run(eng, (MON7 - 10 * MIN, OUT_OF_DISTRICT), (MON7 + MIN, OUT_OF_DISTRICT),
               (MON7 + 5 * MIN, FAR))
    assert seen(recs) == [("opened", "inclusion_left", "r2", MON7 + MIN, None),
                          ("cleared", "inclusion_left", "r2", MON7 + 5 * MIN, None)]


def test_overlapping_windows_of_two_rules_are_each_evaluated() -> None:
    # the same school, two rules: weekdays by day, every evening; 17:00-18:00 both apply
    rules = [{"id": "r1", "type": "exclusion", "zone": "school", "windows": WEEKDAYS},
             {"id": "r9", "type": "exclusion", "zone": "school",
              "windows": [{"start": "17:00", "end": "23:00"}]}]
    eng = engine(rules)
    t17 = MON18 - HOUR
    recs = run(eng, *every(t17 + 10 * MIN, MON18 + 30 * MIN, 10 * MIN, SCHOOL))
    assert seen(recs) == [
        ("opened", "exclusion_entered", "r1", t17 + 20 * MIN, None),
        ("opened", "exclusion_entered", "r9", t17 + 20 * MIN, None),
        ("cleared", "exclusion_entered", "r1", MON18, "window_ended"),
    ]


# ---------------------------------------------------------------- leave
LEAVE_FROM = MON7 + 2 * HOUR
LEAVE_UNTIL = MON7 + 26 * HOUR


def leave(**over: Any) -> dict[str, Any]:
    return {"id": "L-1", "from": LEAVE_FROM, "until": LEAVE_UNTIL, "rules": ["r2"],
            "reason": "medical", "requested_by": "officer-li", "approved_by": "chief-wang",
            "level": "office", **over}


DISTRICT = [{"id": "r2", "type": "inclusion", "zone": "district"}]


def test_leave_starting_while_outside_clears_the_breach_as_exempted() -> None:
    eng = engine(DISTRICT, exemptions=[leave(**{"from": "2026-11-23T09:00:00+08:00",
                                                 "until": "2026-11-24T09:00:00+08:00"})])
    recs = run(eng, *every(LEAVE_FROM - 10 * MIN, LEAVE_FROM + 30 * MIN, 5 * MIN, OUT_OF_DISTRICT))
    assert seen(recs) == [
        ("opened", "inclusion_left", "r2", LEAVE_FROM - 5 * MIN, None),
        ("cleared", "inclusion_left", "r2", LEAVE_FROM, "exempted"),
    ]


def test_leave_ending_while_away_breaches_and_leave_overdue_clears_on_return() -> None:
    eng = engine(DISTRICT, exemptions=[leave()])
    recs = run(eng, *every(LEAVE_FROM + HOUR, LEAVE_UNTIL, 2 * HOUR, OUT_OF_DISTRICT))
    assert recs == []
    recs = run(eng, (LEAVE_UNTIL + MIN, OUT_OF_DISTRICT), (LEAVE_UNTIL + 30 * MIN, FAR))
    assert seen(recs) == [
        ("opened", "leave_overdue", "L-1", LEAVE_UNTIL, None),
        ("opened", "inclusion_left", "r2", LEAVE_UNTIL + MIN, None),
        ("cleared", "inclusion_left", "r2", LEAVE_UNTIL + 30 * MIN, None),
        ("cleared", "leave_overdue", "L-1", LEAVE_UNTIL + 30 * MIN, None),
    ]
    assert recs[0].alert.severity == "orange"
    assert recs[1].alert.alert_id == alert_id("P-A", "r2", LEAVE_UNTIL)


def test_back_in_time_no_leave_overdue() -> None:
    eng = engine(DISTRICT, exemptions=[leave()])
    recs = run(eng, (LEAVE_FROM + HOUR, OUT_OF_DISTRICT), (LEAVE_UNTIL - HOUR, FAR),
               (LEAVE_UNTIL + HOUR, FAR))
    assert recs == []


def test_a_temporary_rule_applies_only_during_the_leave() -> None:
    temp = {"id": "L-1/t1", "type": "exclusion", "zone": "park"}
    eng = engine(DISTRICT, exemptions=[leave(temporary_rules=[temp])])
    park = -1_500.0
    assert run(eng, (LEAVE_FROM - 20 * MIN, park), (LEAVE_FROM - 10 * MIN, park)) == []
    recs = run(eng, (LEAVE_FROM + MIN, park), (LEAVE_FROM + 2 * MIN, park))
    assert seen(recs) == [("opened", "exclusion_entered", "L-1/t1", LEAVE_FROM + MIN, None)]
    assert recs[0].alert.alert_id == alert_id("P-A", "L-1/t1", LEAVE_FROM)
    recs = run(eng, (LEAVE_UNTIL + MIN, park))
    assert seen(recs) == [("cleared", "exclusion_entered", "L-1/t1", LEAVE_UNTIL, "window_ended")]


def test_leave_added_by_reload_and_removed_early() -> None:
    eng = engine(DISTRICT)
    recs = run(eng, *every(MON7, MON7 + 10 * MIN, 5 * MIN, OUT_OF_DISTRICT))
    assert [r.event for r in recs] == ["opened"]
    at = MON7 + 10 * MIN
    eng.process([fix(at, OUT_OF_DISTRICT)])
    # approved while the person is away: the suspended rule's episode clears
    got = eng.upsert_order(order(DISTRICT, exemptions=[leave(**{"from": at})])[0])
    assert [(r.event, r.alert.reason) for r in got] == [("cleared", "exempted")]
    assert run(eng, *every(at + MIN, at + HOUR, 10 * MIN, OUT_OF_DISTRICT)) == []
    # the leave is withdrawn early: the rule applies again from the reload
    back = at + HOUR
    eng.upsert_order(order(DISTRICT)[0])
    recs = run(eng, (back + MIN, OUT_OF_DISTRICT), (back + 2 * MIN, OUT_OF_DISTRICT))
    assert seen(recs) == [("opened", "inclusion_left", "r2", back + 2 * MIN, None)]


def test_a_snapshot_mid_leave_restores_the_same_behaviour() -> None:
    def first() -> Engine:
        eng = engine(DISTRICT, exemptions=[leave()])
        run(eng, (LEAVE_FROM + HOUR, OUT_OF_DISTRICT))
        return eng

    ref = first()
    later = [(LEAVE_UNTIL + MIN, OUT_OF_DISTRICT), (LEAVE_UNTIL + 30 * MIN, FAR)]
    want = seen(run(ref, *later))
    again = engine(DISTRICT, exemptions=[leave()])
    again.restore(first().snapshot())
    assert seen(run(again, *later)) == want
    assert [k for _, k, *_ in want].count("leave_overdue") == 2


# ---------------------------------------------------------------- positioning terms
TERM_FROM = MON7 - 80 * DAY
TERM_UNTIL = MON7 + 10 * DAY


def term(**over: Any) -> dict[str, Any]:
    return {"grounds": "left_without_approval", "from": TERM_FROM, "until": TERM_UNTIL,
            "approved_by": "chief-wang", **over}


def test_the_term_reminder_opens_before_the_end_and_nothing_after_it() -> None:
    eng = engine(DISTRICT, positioning=term())
    remind = TERM_UNTIL - 7 * DAY
    recs = run(eng, (remind - HOUR, FAR), (remind + HOUR, FAR))
    assert seen(recs) == [("opened", "positioning_term_ending", "positioning", remind, None)]
    assert recs[0].alert.severity == "blue"
    recs = run(eng, (TERM_UNTIL - 10 * MIN, OUT_OF_DISTRICT), (TERM_UNTIL - 5 * MIN, OUT_OF_DISTRICT))
    assert seen(recs) == [("opened", "inclusion_left", "r2", TERM_UNTIL - 5 * MIN, None)]
    recs = run(eng, *every(TERM_UNTIL + MIN, TERM_UNTIL + HOUR, 10 * MIN, OUT_OF_DISTRICT))
    assert sorted(seen(recs)) == sorted([
        ("cleared", "inclusion_left", "r2", TERM_UNTIL, "positioning_ended"),
        ("cleared", "positioning_term_ending", "positioning", TERM_UNTIL, "positioning_ended"),
    ])
    # device events still raise their alerts after the term
    from engine_world import event
    recs = eng.process([event(TERM_UNTIL + 2 * HOUR, "tamper")]).records
    assert [r.alert.kind for r in recs] == ["tamper"]


def test_signal_loss_ends_with_the_term() -> None:
    rules = [*DISTRICT, {"id": "r5", "type": "signal_loss", "after_s": 900}]
    eng = engine(rules, positioning=term(remind_days=0))
    recs = run(eng, (TERM_UNTIL - HOUR, FAR))
    recs += eng.advance(TERM_UNTIL + DAY)
    assert seen(recs) == [
        ("opened", "signal_lost", "r5", TERM_UNTIL - HOUR + 15 * MIN, None),
        ("cleared", "signal_lost", "r5", TERM_UNTIL, "positioning_ended"),
    ]


def test_a_renewal_clears_the_reminder() -> None:
    eng = engine(DISTRICT, positioning=term())
    remind = TERM_UNTIL - 7 * DAY
    assert [r.alert.kind for r in run(eng, (remind + HOUR, FAR))] == ["positioning_term_ending"]
    renewed = term(**{"from": TERM_UNTIL - 60 * DAY, "until": TERM_UNTIL + 30 * DAY})
    got = eng.upsert_order(order(DISTRICT, positioning=renewed)[0])
    assert [(r.event, r.alert.kind, r.alert.reason) for r in got] == [
        ("cleared", "positioning_term_ending", "positioning_renewed")]
    # the old end passes without a trace; the rule still applies
    recs = run(eng, (TERM_UNTIL + HOUR, OUT_OF_DISTRICT), (TERM_UNTIL + HOUR + MIN, OUT_OF_DISTRICT))
    assert [(e, k) for e, k, *_ in seen(recs)] == [("opened", "inclusion_left")]


def test_whole_day_windows_make_one_interval_and_widen_an_inclusion_at_weekends() -> None:
    def days(d: str) -> list[dict[str, str]]:
        return [{"days": d, "start": "00:00", "end": "12:00"},
                {"days": d, "start": "12:00", "end": "00:00"}]

    rules = [{"id": "r2", "type": "inclusion", "zone": "district",
              "windows": days("mon,tue,wed,thu,fri")},
             {"id": "r7", "type": "inclusion", "zone": "park", "windows": days("sat,sun")}]
    eng = engine(rules)
    sat = MON7 - 2 * DAY + 3 * HOUR
    in_district = 2_000.0
    # Saturday in the district but outside the park: r7 alerts, r2 does not apply
    recs = run(eng, (sat, in_district), (sat + MIN, in_district))
    assert [(e, k, r) for e, k, r, *_ in seen(recs)] == [("opened", "inclusion_left", "r7")]
    # the weekdays' rule runs Monday to Friday without a break: out of the district on
    # Thursday 23:00 to Friday 01:00 is one episode
    thu = MON7 + 3 * DAY + 16 * HOUR
    recs = run(eng, *every(thu, thu + 2 * HOUR, 10 * MIN, OUT_OF_DISTRICT))
    assert [(e, k, r, t) for e, k, r, t, _ in seen(recs)] == [
        ("cleared", "inclusion_left", "r7", MON7 - 7 * HOUR),  # the weekend ended at Monday 00:00
        ("opened", "inclusion_left", "r2", thu + 10 * MIN)]


def test_a_reload_before_the_window_keeps_the_breach_from_its_start() -> None:
    rules = [{"id": "r1", "type": "exclusion", "zone": "school", "windows": WEEKDAYS}]
    eng = engine(rules, positioning=term())
    run(eng, (MON7 - 20 * MIN, SCHOOL), (MON7 - 10 * MIN, SCHOOL))
    eng.upsert_order(order(rules, positioning=term(remind_days=1))[0])  # another version
    recs = run(eng, (MON7 + MIN, SCHOOL), (MON7 + 2 * MIN, SCHOOL))
    assert seen(recs) == [("opened", "exclusion_entered", "r1", MON7 + MIN, None)]
    assert recs[0].alert.alert_id == alert_id("P-A", "r1", MON7)
