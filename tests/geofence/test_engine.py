"""Event time, rewind, late data, state snapshots and hot reload."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from engine_world import (
    MIN,
    SEC,
    T0,
    engine,
    event,
    fix,
    hit,
    orders,
    orders_json,
    summary,
    zones,
    zones_geojson,
)

from geofence.engine import (
    Engine,
    fold_records,
    message_key,
    partition_keys,
    person_partition_keys,
    replay_lines,
)
from geofence.model import AlertRecord, encode, format_ts, parse_order, parse_orders, parse_ts
from geofence.zones import ZoneCatalogue


def final(records: list[AlertRecord]) -> list[bytes]:
    alerts, _ = fold_records(records)
    return [encode(a) for a in alerts]


def breach() -> list[Any]:
    """Enters the school for 3 minutes, then 1 minute in the buffer, then away."""
    return ([fix(T0 + k * 30 * SEC, 800) for k in range(4)]
            + [fix(T0 + 2 * MIN + k * 30 * SEC, 0) for k in range(6)]
            + [fix(T0 + 5 * MIN + k * 30 * SEC, 200) for k in range(3)]
            + [fix(T0 + 7 * MIN + k * 30 * SEC, 900) for k in range(4)])


def run_each(eng: Engine, msgs: list[Any]) -> list[AlertRecord]:
    out: list[AlertRecord] = []
    for m in msgs:
        out.extend(eng.process([m]).records)
    out.extend(eng.flush())
    return out


def test_out_of_order_within_horizon_gives_same_final_alerts() -> None:
    msgs = breach()
    ref = run_each(engine(), msgs)
    swapped = list(msgs)
    # swap neighbours 30-90 s apart, all inside the 120 s horizon
    for i in range(0, len(swapped) - 3, 3):
        swapped[i], swapped[i + 2] = swapped[i + 2], swapped[i]
    got = run_each(engine(), swapped)
    assert final(got) == final(ref)
    assert final(ref)  # there is something to compare


def test_rewind_retracts_an_episode_the_full_data_denies() -> None:
    eng = engine()
    recs = run_each(eng, [fix(T0, 800), fix(T0 + 60 * SEC, 0), fix(T0 + 100 * SEC, 0)])
    opened = [r for r in recs if r.alert.kind == "exclusion_entered"]
    assert [r.event for r in opened] == ["opened"]
    # a fix at 80 s arrives late (within the horizon) showing the person far away:
    # the streak is broken, the two inside fixes no longer confirm each other
    more = eng.process([fix(T0 + 80 * SEC, 800)]).records
    assert [(r.event, r.alert.reason) for r in more] == [("cleared", "retracted")]
    assert more[0].alert.alert_id == opened[0].alert.alert_id
    assert fold_records(recs + more)[0] == []


def test_rewind_that_moves_an_episode_start_renames_it() -> None:
    eng = engine()
    msgs = [fix(T0, 0), fix(T0 + 40 * SEC, 0), fix(T0 + 80 * SEC, 800, acc=5)]
    recs = run_each(eng, msgs)
    ex = [r for r in recs if r.alert.kind == "exclusion_entered"]
    assert [r.event for r in ex] == ["opened", "cleared"]
    # an earlier inside fix arrives inside the horizon: the episode started 30 s
    # sooner, so it has another id; the old one is retracted, the new one
    # appears with its whole life (opened at the second fix, cleared as before)
    more = eng.process([fix(T0 - 20 * SEC, 0)]).records
    got = [(r.event, r.alert.alert_id == ex[0].alert.alert_id, r.alert.reason,
            r.alert.opened_at) for r in more]
    assert got == [
        ("opened", False, None, format_ts(T0 + 40 * SEC)),
        ("cleared", False, None, format_ts(T0 + 40 * SEC)),
        ("cleared", True, "retracted", ex[0].alert.opened_at),
    ]
    ref = run_each(engine(), sorted([*msgs, fix(T0 - 20 * SEC, 0)], key=lambda m: m.ts))
    assert final(recs + more) == final(ref)
    assert len(final(ref)) == 1


def test_signal_loss_fired_by_watermark_is_retracted_by_data_inside_horizon() -> None:
    eng = engine()
    eng.process([fix(T0, 800)])
    lost = eng.advance(T0 + 15 * MIN + SEC)
    assert [r.alert.kind for r in lost] == ["signal_lost"]
    # a heartbeat from 14:00 arrives (60 s behind the watermark): no loss after all
    back = eng.process([event(T0 + 14 * MIN, "heartbeat")]).records
    assert [(r.event, r.alert.reason) for r in back] == [("cleared", "retracted")]
    assert fold_records(lost + back)[0] == []


def test_late_backfill_is_marked_late() -> None:
    eng = engine()
    live = [fix(T0 + k * MIN, 800) for k in range(20)]
    eng.process(live)
    eng.advance(T0 + 19 * MIN)
    # an offline backfill from the other wristband, 15 minutes old, inside the school
    backfill = [fix(T0 + 2 * MIN + k * 30 * SEC, 0, dev="WB-A2") for k in range(4)]
    res = eng.process(backfill)
    assert res.late == 4
    ex = [r for r in res.records if r.alert.kind == "exclusion_entered"]
    assert [(r.event, r.alert.late) for r in ex] == [("opened", True)]


def test_late_data_never_doubles_a_reported_episode() -> None:
    eng = engine()
    live = [fix(T0 + k * 30 * SEC, 0) for k in range(10)] + [
        fix(T0 + 5 * MIN + k * MIN, 800) for k in range(10)]
    recs = eng.process(live).records
    assert [r.event for r in recs if r.alert.kind == "exclusion_entered"] == ["opened", "cleared"]
    # the second wristband's stored fixes of the same visit arrive 10 minutes later
    backfill = [fix(T0 + 15 * SEC + k * 30 * SEC, 10, dev="WB-A2") for k in range(8)]
    res = eng.process(backfill)
    assert res.late == 8
    assert [r for r in res.records if r.alert.kind == "exclusion_entered"] == []


def test_duplicates_dropped_across_batches_and_inside_rewinds() -> None:
    eng = engine()
    msgs = breach()
    a = eng.process(msgs).records
    res = eng.process(msgs[-3:])
    assert res.duplicates == 3 and res.records == []
    assert final(a) == final(engine().process(msgs).records)


def test_snapshot_restore_continues_identically() -> None:
    msgs = [*breach(), event(T0 + 3 * MIN, "tamper"), fix(T0 + 3 * MIN, 300, dev="WB-B")]
    msgs.sort(key=lambda m: m.ts)
    one = engine()
    ref = one.process(msgs[:9]).records + one.process(msgs[9:]).records + one.flush()
    first = engine()
    head = first.process(msgs[:9]).records
    blob = first.snapshot()
    assert isinstance(blob, bytes)
    second = engine()
    second.restore(blob)
    tail = second.process(msgs[9:]).records + second.flush()
    assert [encode(r) for r in head + tail] == [encode(r) for r in ref]
    assert second.open_alerts() == one.open_alerts()


def test_remove_order_clears_open_episodes() -> None:
    eng = engine()
    eng.process([fix(T0, 0), fix(T0 + MIN, 0), event(T0 + MIN, "tamper")])
    out = eng.remove_order("P-A", "order_revoked")
    assert sorted((r.event, r.alert.kind, r.alert.reason) for r in out) == [
        ("cleared", "exclusion_entered", "order_revoked"), ("cleared", "tamper", "order_revoked")]
    assert eng.person_of_device("WB-A") is None
    assert eng.process([fix(T0 + 2 * MIN, 0)]).unknown


def test_upsert_order_keeps_unchanged_rules_and_clears_dropped_ones() -> None:
    eng = engine()
    eng.process([fix(T0, 0), fix(T0 + MIN, 0)])
    data = orders_json()[0]
    data["rules"] = [r for r in data["rules"] if r["id"] != "r1"] + [
        {"id": "r9", "type": "exclusion", "zone": "park"}]
    out = eng.upsert_order(parse_order(data))
    assert [(r.event, r.alert.rule_id, r.alert.reason) for r in out] == [
        ("cleared", "r1", "rule_removed")]
    recs = eng.process([fix(T0 + 2 * MIN, -1500), fix(T0 + 3 * MIN, -1500)]).records
    assert [(r.event, r.alert.rule_id) for r in recs] == [("opened", "r9")]


def test_set_zones_hot_reload() -> None:
    eng = engine()
    eng.process([fix(T0, 0), fix(T0 + MIN, 0)])
    gj = zones_geojson()
    gj["features"] = [f for f in gj["features"] if f["id"] != "school"]
    out = eng.set_zones(ZoneCatalogue.from_geojson(gj))
    assert [(r.event, r.alert.rule_id, r.alert.reason) for r in out] == [
        ("cleared", "r1", "zone_removed")]
    assert eng.process([fix(T0 + 2 * MIN, 0), fix(T0 + 3 * MIN, 0)]).records == []


def test_set_zones_renumbering_keeps_open_episodes() -> None:
    eng = engine()
    eng.process([fix(T0, 0), fix(T0 + MIN, 0)])
    gj = zones_geojson()
    gj["features"] = list(reversed(gj["features"]))  # every zone gets a new index
    assert eng.set_zones(ZoneCatalogue.from_geojson(gj)) == []
    recs = eng.process([fix(T0 + 2 * MIN, 0), fix(T0 + 3 * MIN, 800)]).records
    assert [(r.event, r.alert.rule_id) for r in recs] == [("cleared", "r1")]


def test_partition_keys_group_no_contact_pairs() -> None:
    keys = partition_keys(orders())
    assert keys == {"WB-A": "P-A", "WB-A2": "P-A", "WB-B": "P-A"}
    data = orders_json()
    data[0]["rules"] = []
    assert partition_keys(parse_orders(json.dumps(data)))["WB-B"] == "P-B"


def test_message_keys_follow_persons_and_cameras() -> None:
    o = orders()
    dk, pk = partition_keys(o), person_partition_keys(o)
    assert message_key(fix(T0, 0, dev="WB-B"), dk, pk) == "P-A"
    assert message_key(hit(T0, "face_match", 0, person_id="P-B", confidence=0.9), dk, pk) == "P-A"
    assert message_key(hit(T0, "fight", 0), dk, pk) == "camera:CAM-1"
    assert message_key(fix(T0, 0, dev="WB-X"), dk, pk) == "WB-X"


def test_records_carry_event_time_only() -> None:
    recs = run_each(engine(), breach())
    for r in recs:
        assert r.at in (r.alert.opened_at, r.alert.cleared_at, r.alert.updated_at)
    assert summary(recs) == summary(run_each(engine(), breach()))


def test_missing_zone_in_an_order_does_not_stop_the_others() -> None:
    data = orders_json()
    data[0]["rules"].append({"id": "r8", "type": "exclusion", "zone": "nowhere"})
    eng = Engine(zones(), parse_orders(json.dumps(data)))
    recs = eng.process([fix(T0, 0), fix(T0 + MIN, 0)]).records
    assert [r.alert.rule_id for r in recs] == ["r1"]
    assert format_ts(T0)  # world sanity


def test_curfew_still_applies_after_an_order_update() -> None:
    # quiet lane, then the order is re-published: the curfew must still start
    rules = [{"id": "r3", "type": "curfew", "zone": "home-A",
              "windows": [{"days": "daily", "start": "22:00", "end": "06:00"}]}]
    eng = engine(rules=rules)
    t22 = parse_ts("2026-11-22T22:00:00+08:00")
    eng.process([fix(t22 - 20 * MIN, 800), fix(t22 - 19 * MIN, 800)])
    eng.upsert_order(orders(rules=rules)[0])
    recs = []
    for k in range(18, 0, -1):
        recs += eng.process([fix(t22 - k * MIN, 800)]).records
    recs += eng.process([fix(t22 + 30 * SEC, 800)]).records
    recs += eng.process([fix(t22 + 90 * SEC, 800)]).records
    assert [(r.event, r.alert.kind) for r in recs] == [("opened", "curfew_violated")]


def test_redelivery_after_restore_is_dropped() -> None:
    msgs = breach()
    first = engine()
    first.process(msgs)
    second = engine()
    second.restore(first.snapshot())
    res = second.process(msgs[-3:])
    assert res.duplicates == 3 and res.records == []


# ------------------------------------------------------------------ backfill across the horizon


def backfill_day() -> list[bytes]:
    """P-B reports every 30 s; P-A goes offline from 10 to 20 min while inside
    the school, and its stored fixes arrive as one array just after P-B's fix at
    20 min: those older than 18 min are beyond the 120 s horizon, the rest within."""
    lines: list[tuple[int, bytes]] = []
    for k in range(0, 50):
        t = T0 + k * 30 * SEC
        lines.append((t, encode(fix(t, 2000, dev="WB-B"))))
    for k in range(0, 11):
        t = T0 + k * MIN
        lines.append((t, encode(fix(t, 800))))
    stored = [fix(T0 + 10 * MIN + k * 30 * SEC, 0) for k in range(1, 20)]  # 10:30 .. 19:30
    lines.append((T0 + 20 * MIN + 1, b"[" + b",".join(encode(m) for m in stored) + b"]"))
    for k in range(21, 25):
        t = T0 + k * MIN
        lines.append((t, encode(fix(t, 800))))
    lines.sort(key=lambda x: x[0])
    return [b for _, b in lines]


def test_late_flag_does_not_depend_on_chunking() -> None:
    # lateness is judged against the clock at arrival (newest ts seen before the
    # message, in arrival order), not against a watermark moved once per chunk
    got = []
    for chunk in (1, 7, 64, 8192):
        alerts, summary = replay_lines(backfill_day(), zones(), orders(), chunk=chunk)
        assert summary.late == 15, chunk  # 10:30 .. 17:30 arrived after 20:00
        got.append(b"".join(encode(a) for a in alerts))
        excl = [a for a in alerts if a.kind == "exclusion_entered"]
        assert excl and excl[0].late and excl[0].opened_at == format_ts(T0 + 11 * MIN)
    assert len(set(got)) == 1


def test_backfill_straddling_the_horizon_is_one_episode() -> None:
    # the stored fixes 10:30 .. 19:30 are one breach: its older part is beyond the
    # horizon (late lane), its newer part within it (live lane); the late lane's open
    # episode is handed to the live lane, which clears it at the next fix outside
    for chunk in (1, 8192):
        alerts, _ = replay_lines(backfill_day(), zones(), orders(), chunk=chunk)
        excl = [(a.opened_at, a.cleared_at, a.late) for a in alerts if a.rule_id == "r1"]
        assert excl == [(format_ts(T0 + 11 * MIN), format_ts(T0 + 21 * MIN), True)], chunk


def test_backfill_left_open_is_cleared_by_live_data() -> None:
    # the whole backfill is late and ends inside; the first live fix outside clears it
    eng = engine()
    recs: list[AlertRecord] = []
    for k in range(0, 30):
        recs += eng.process([fix(T0 + k * 30 * SEC, 2000, dev="WB-B")]).records
    t = T0 + 15 * MIN
    stored = [fix(T0 + k * 30 * SEC, 0) for k in range(1, 6)]  # 00:30 .. 02:30, all late
    res = eng.process(stored)
    assert res.late == 5
    recs += res.records
    recs += eng.process([fix(t, 800)]).records
    excl = [(r.event, r.alert.late, r.alert.cleared_at) for r in recs if r.alert.rule_id == "r1"]
    assert excl == [("opened", True, None), ("cleared", True, format_ts(t))]
    assert all(a.rule_id != "r1" for a in eng.open_alerts())  # not held open in the late lane


def test_late_message_is_a_sign_of_life_for_signal_loss() -> None:
    """A fix delayed past the lateness horizon still proves the person was not silent.

    P-A reports every 10 min (signal_loss after 15 min); its 10-min fix reaches
    the engine only after P-B's data has moved the clock past the 15-min mark.
    In event time P-A was never silent for 15 min, so no signal_lost remains.
    """
    a = [fix(T0, 500, 500), fix(T0 + 10 * MIN, 500, 500), fix(T0 + 20 * MIN, 500, 500)]
    b = [fix(T0 + k * MIN, -500, -2000, dev="WB-B") for k in range(1, 21)]
    delivered = [a[0], *b[:17], a[1], *b[17:], a[2]]  # a[1] arrives 7 min after its ts
    alerts, summary = replay_lines([encode(m) for m in delivered], zones(), orders())
    assert summary.late >= 1
    assert [x for x in alerts if x.kind == "signal_lost"] == []


def test_restore_keeps_a_late_facility_alert() -> None:
    """A facility video hit older than the horizon opens its alert in the
    camera's late lane; a snapshot and restore must keep that lane (it used
    to keep late lanes of persons only, and the open alert vanished)."""
    eng = engine()
    t = T0
    eng.process([fix(t, 1000.0), fix(t + 10 * MIN, 1000.0)])
    eng.process([hit(t + 2 * MIN, "fight", 500.0, jurisdiction="320102")])  # 8 min late
    opened = [a for a in eng.open_alerts() if a.kind == "video_fight"]
    assert len(opened) == 1 and opened[0].late
    fresh = engine()
    fresh.restore(eng.snapshot())
    assert [encode(a) for a in fresh.open_alerts()] == [encode(a) for a in eng.open_alerts()]


def test_persons_of_a_batch() -> None:
    """The persons a batch concerns, for the worker's log when a batch fails."""
    eng = engine()
    msgs = [fix(T0, 0.0, dev="WB-B"), fix(T0, 0.0, dev="WB-A2"), fix(T0, 0.0, dev="WB-X"),
            hit(T0, "face_match", 0.0, person_id="P-Z")]
    assert eng.persons_of(msgs) == ["P-A", "P-B", "P-Z"]


def test_a_person_seen_only_through_late_data_still_has_a_signal_loss_timer() -> None:
    """Late data re-arms signal_loss (contract: any message is a sign of life),
    also for a person with no live data yet: the timer is scheduled, with or
    without a snapshot and restore in between (found by the random worlds)."""
    rules = [{"id": "r5", "type": "signal_loss", "after_s": 900}]  # nobody watches P-A
    for restore in (False, True):
        eng = engine(rules=rules)
        out = eng.process([fix(T0 + 30 * MIN, -1500.0 + 400, dev="WB-B")]).records
        late = eng.process([fix(T0, 1000.0, dev="WB-A")])
        assert late.late == 1
        if restore:
            data = eng.snapshot()
            eng = engine(rules=rules)
            eng.restore(data)
        out += eng.process([fix(T0 + 60 * MIN, -1500.0 + 400, dev="WB-B")]).records
        out += eng.flush()
        assert ("opened", "signal_lost", "r5", "2026-11-22T12:15:00Z") in summary(out), restore
