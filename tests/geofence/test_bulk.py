"""The bulk path for quiet lanes (geofence.bulk) against the per-message path.

Every test drives two engines with the same batches: one as configured (bulk
on), one with ``EngineConfig(paths="reference")``, i.e. every message through
the state machines one by one. The records must be the same, in the same order, batch by batch; and the bulk
engine must actually have applied fixes in bulk, so the comparison is not
vacuous.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import json

import msgspec
import numpy as np
import pytest
from engine_world import MIN, SEC, T0, event, fix, hit, orders, pt, square, zones
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import geofence.engine as engine_pkg
from geofence.engine import Engine, EngineConfig, _Snapshot, batch_watermark
from geofence.engine.machines import rearm_due, rearm_due_np, window_begins, window_due
from geofence.engine.quiet import quiet_fix, too_fast, within_signal
from geofence.episodes import alert_id
from geofence.errors import ValidationError
from geofence.model import encode, parse_orders, parse_ts
from geofence.zones import ZoneCatalogue

ZONES = zones()
# P-A without its no_contact rule (a person with no_contact rules never goes in bulk)
RULES_A = [
    {"id": "r1", "type": "exclusion", "zone": "school", "buffer_m": 100},
    {"id": "r2", "type": "inclusion", "zone": "district"},
    {"id": "r3", "type": "curfew", "zone": "home-A",
     "windows": [{"days": "daily", "start": "22:00", "end": "06:00"}]},
    {"id": "r5", "type": "signal_loss", "after_s": 900},
]
ORDERS = orders(rules=RULES_A)
LATENESS = EngineConfig().lateness_ms
# x metres east of the centre: quiet spots (home, the district) and every boundary
PLACES = [1000.0, 1000.0, 1010.0, 800.0, 500.0, 0.0, 148.0, 152.0, 240.0, 1040.0, 1070.0,
          2990.0, 3010.0, -1500.0, -1290.0, -1310.0]


class Pair:
    """The bulk engine and the reference engine, fed the same way."""

    def __init__(self, fold_every: int | None = None) -> None:
        self.bulk = Engine(ZONES, ORDERS, EngineConfig())
        if fold_every is not None:
            self.bulk._fold_every = fold_every
        self.ref = Engine(ZONES, ORDERS, EngineConfig(paths="reference"))
        self.in_bulk = 0

    def process(self, msgs: list[Any]) -> None:
        a = self.bulk.process(msgs)
        b = self.ref.process(msgs)
        self.in_bulk += a.bulk
        assert [encode(r) for r in a.records] == [encode(r) for r in b.records]
        assert (a.duplicates, a.late, a.too_late, len(a.unknown)) == (
            b.duplicates, b.late, b.too_late, len(b.unknown))

    def advance(self, wm: int) -> None:
        assert _by_alert(self.bulk.advance(wm)) == _by_alert(self.ref.advance(wm))

    def flush(self) -> None:
        assert _by_alert(self.bulk.flush()) == _by_alert(self.ref.flush())
        assert [encode(a) for a in self.bulk.open_alerts()] == [encode(a) for a in self.ref.open_alerts()]

    def snapshot_restore(self, restore: bool = True) -> None:
        data = self.bulk.snapshot()
        # the same state, not just the same output (checkpoints may sit elsewhere)
        assert _states(data) == _states(self.ref.snapshot())
        if not restore:
            return
        fresh = Engine(ZONES, ORDERS, EngineConfig())
        fresh._fold_every = self.bulk._fold_every
        fresh.restore(data)
        self.bulk = fresh


def _by_alert(records: list[Any]) -> list[bytes]:
    """Timer records in the order of each alert's own records.

    Within one ``advance()`` lanes fire in the order of their timer-heap
    entries, and the bulk path leaves earlier (lazy) entries there than the
    per-message path: records of different alerts may come in another
    order, never those of one alert.
    """
    return [encode(r) for r in sorted(records, key=lambda r: r.alert.alert_id)]


def _states(data: bytes) -> list[Any]:
    snap = msgspec.msgpack.decode(data, type=_Snapshot)
    if snap.quiet is not None:
        # lanes kept as arrays: compare them as lane objects (the previous format)
        scratch = Engine(ZONES, ORDERS, EngineConfig())
        scratch.restore(data)
        snap = msgspec.msgpack.decode(scratch.snapshot(version=2), type=_Snapshot)
    # emitted keeps a cleared episode until the checkpoint passes it: only
    # where the checkpoint sits differs, so compare the open ones
    return [(ln.key, ln.late, encode(ln.state),
             sorted(k for k, a in ln.emitted.items() if a.status == "open"),
             ln.last_key, ln.frontier, ln.due)
            for ln in sorted((*snap.lanes, *snap.late_lanes), key=lambda ln: (ln.late, ln.key))
            ] + [snap.wm, snap.max_ts]


@st.composite
def streams(draw: Any) -> list[Any]:
    """Fixes (mostly quiet), a few device events, for P-A's two devices and P-B."""
    msgs: list[Any] = []
    base = T0 + draw(st.sampled_from([0, 100 * 60, 590 * 60])) * SEC  # 20:00, 21:40, 05:50
    for dev in ("WB-A", "WB-A2", "WB-B"):
        t = base + draw(st.integers(0, 60)) * SEC
        for _ in range(draw(st.integers(0, 40))):
            t += draw(st.sampled_from([5, 30, 60, 60, 60, 200, 1000])) * SEC
            x = draw(st.sampled_from(PLACES)) + draw(st.floats(-5, 5))
            acc = draw(st.sampled_from([5.0, 10.0, 30.0]))
            valid = draw(st.integers(0, 9)) > 0
            msgs.append(fix(t, x, acc=acc, dev=dev, valid=valid))
            if draw(st.integers(0, 19)) == 0:
                name = draw(st.sampled_from(["tamper", "battery_low", "charging", "heartbeat"]))
                msgs.append(event(t + SEC, name, dev=dev))
    for _ in range(draw(st.integers(0, 2))):  # video hits send a batch down the per-message path
        t = base + draw(st.integers(0, 7200)) * SEC
        name = draw(st.sampled_from(["face_match", "fight"]))
        msgs.append(hit(t, name, draw(st.sampled_from(PLACES)),
                        person_id="P-A" if name == "face_match" else None,
                        confidence=0.9, jurisdiction="320102"))
    msgs.sort(key=lambda m: m.ts)
    return msgs


SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(streams(), st.data())
def test_bulk_gives_the_records_of_the_full_path(msgs: list[Any], data: Any) -> None:
    # arrival order: each message up to a whole horizon late, some beyond it
    delays = [data.draw(st.sampled_from([0, 0, 0, 5 * SEC, LATENESS // 2, 3 * LATENESS]))
              for _ in msgs]
    order = sorted(range(len(msgs)), key=lambda i: (msgs[i].ts + delays[i], i))
    arrived = [msgs[i] for i in order]
    if data.draw(st.booleans()):  # a duplicate delivery
        arrived += arrived[-3:]
    pair = Pair(fold_every=data.draw(st.sampled_from([1, 3, 50_000])))
    batch = data.draw(st.sampled_from([1, 2, 5, 40]))
    note(f"batch={batch} arrived={[(getattr(m, 'device_id', None), m.ts - T0, getattr(m, 'lon', None), getattr(m, 'event', None)) for m in arrived]}")
    for i in range(0, len(arrived), batch):
        chunk = arrived[i:i + batch]
        pair.process(chunk)
        step = data.draw(st.integers(0, 5))
        note(f"after batch {i // batch}: step {step}")
        if step == 0:
            pair.advance(batch_watermark(chunk))
        elif step == 1:
            pair.snapshot_restore()
        elif step == 2:  # a snapshot alone (the worker's periodic one) changes nothing
            pair.snapshot_restore(restore=False)
    pair.flush()


def test_quiet_fixes_go_in_bulk_and_a_late_rewind_still_sees_them() -> None:
    """Hours of quiet fixes at home, folded into the checkpoint as they age,
    then an out-of-order fix inside the horizon that starts an exclusion
    streak confirmed by the in-order fixes after it."""
    pair = Pair(fold_every=1)
    t = T0
    for _ in range(200):  # 200 minutes at home, one fix a minute, one per batch
        t += MIN
        pair.process([fix(t, 1000.0, dev="WB-A")])
    assert pair.in_bulk >= 190
    # the rows older than the horizon were folded: the log holds about one horizon
    assert pair.bulk._q.ck_has.any()
    assert len(pair.bulk._pl) <= 2 * LATENESS // MIN + 2
    # P-A walks into the school: the fix at t+20 s is delivered after the one at t+40 s
    pair.process([fix(t + 40 * SEC, 0.0, dev="WB-A")])
    pair.process([fix(t + 20 * SEC, 0.0, dev="WB-A")])
    pair.process([fix(t + 70 * SEC, 0.0, dev="WB-A")])
    pair.advance(t + 80 * SEC)
    opened = [a for a in pair.bulk.open_alerts() if a.kind == "exclusion_entered"]
    assert len(opened) == 1 and opened[0].person_id == "P-A"
    pair.flush()


def test_signal_loss_timer_of_a_bulk_lane_fires_on_advance() -> None:
    pair = Pair()
    t = T0
    for _ in range(10):
        t += MIN
        pair.process([fix(t, 1000.0, dev="WB-A"), fix(t, -1500.0 + 400, dev="WB-B")])
    assert pair.in_bulk > 0
    pair.advance(t + 15 * MIN + SEC)  # 900 s of silence: signal_lost opens
    kinds = {a.kind for a in pair.bulk.open_alerts()}
    assert "signal_lost" in kinds
    pair.process([fix(t + 16 * MIN, 1000.0, dev="WB-A")])  # and clears with the next fix
    pair.flush()


def test_curfew_window_entered_in_bulk_then_breached() -> None:
    """At home across 22:00 local (the window is entered in bulk), out at 22:30."""
    pair = Pair(fold_every=1)
    t = T0 + 100 * MIN  # 21:40 local
    for _ in range(40):  # until 22:20, one fix a minute, home
        t += MIN
        pair.process([fix(t, 1000.0, dev="WB-A")])
    assert pair.in_bulk >= 38  # the first fix makes the lane; all the others in bulk
    for _ in range(5):  # then 200 m from home: certainly outside
        t += MIN
        pair.process([fix(t, 1200.0, dev="WB-A")])
    kinds = [a.kind for a in pair.bulk.open_alerts()]
    assert kinds == ["curfew_violated"]
    pair.flush()


def test_curfew_window_entered_by_the_watermark_then_a_fix_from_before_it() -> None:
    pair = Pair()
    t = T0 + 100 * MIN  # 21:40 local
    for _ in range(19):  # home until 21:59
        t += MIN
        pair.process([fix(t, 1000.0, dev="WB-A")])
    pair.advance(T0 + 121 * MIN)  # 22:01: the window begins with nobody certainly outside
    state = pair.bulk._q  # the lane stayed in bulk mode through the window's start
    assert bool(state.mode[pair.bulk._q.row_of["P-A"]])
    pair.process([fix(T0 + 119 * MIN + 30 * SEC, 1000.0, dev="WB-A")])  # 21:59:30, in order no more
    for k in range(3):  # out at 22:02..22:04
        pair.process([fix(T0 + (122 + k) * MIN, 1200.0, dev="WB-A")])
    assert [a.kind for a in pair.bulk.open_alerts()] == ["curfew_violated"]
    pair.flush()


def test_out_at_the_windows_start_by_the_watermark_home_at_the_next_fix() -> None:
    """Certainly outside at 21:59, the watermark passes 22:00 (a streak begins
    in bulk), certainly home at 22:02 (it ends): no alert, and the same state."""
    for home_x, expect in ((1000.0, []), (1200.0, ["curfew_violated"])):
        pair = Pair()
        t = T0 + 100 * MIN
        for _ in range(19):
            t += MIN
            pair.process([fix(t, 1200.0 if t >= T0 + 118 * MIN else 1000.0, dev="WB-A")])
        pair.advance(T0 + 121 * MIN)
        assert bool(pair.bulk._q.pst[pair.bulk._q.row_of["P-A"]])
        pair.process([fix(T0 + 122 * MIN, home_x, dev="WB-A")])
        pair.snapshot_restore()
        pair.process([fix(T0 + 123 * MIN, home_x, dev="WB-A")])
        assert [a.kind for a in pair.bulk.open_alerts()] == expect
        pair.flush()


class _Steady:
    """Counts the fixes the steady path (geofence.engine.steady) applied."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import geofence.engine.steady as steady

        self.applied = 0
        inner = steady.steady_many

        def counting(*a: Any) -> bool:
            ok = inner(*a)
            self.applied += ok
            return ok

        monkeypatch.setattr(steady, "steady_many", counting)


def test_a_person_parked_in_a_zone_goes_the_steady_way_with_the_reference_state(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Twenty minutes inside the school: the fixes after the alert opens keep
    it open on the steady path, leaving the state the per-message path
    leaves (the open episode's latest violation included); leaving clears."""
    steady = _Steady(monkeypatch)
    pair = Pair()
    t = T0
    for k in range(20):
        t += MIN
        pair.process([fix(t, 0.0 if k else 1000.0, dev="WB-A")])
    assert steady.applied >= 15
    assert [a.kind for a in pair.bulk.open_alerts()] == ["exclusion_entered"]
    pair.snapshot_restore()
    pair.process([fix(t + MIN, 1000.0, dev="WB-A")])
    assert pair.bulk.open_alerts() == []
    pair.flush()


def test_streaks_that_start_and_end_without_an_alert_go_the_steady_way(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """In and out of the school a fix at a time (two fixes confirm): each
    fix inside starts a streak, the next one outside ends it, and no alert
    opens; the fixes that end a streak take the steady path and leave the
    reference's state, and the lane goes quiet again."""
    steady = _Steady(monkeypatch)
    pair = Pair()
    t = T0
    for k in range(21):
        t += MIN
        pair.process([fix(t, 0.0 if k % 2 else 1000.0, dev="WB-A")])
    assert steady.applied >= 8
    assert pair.bulk.open_alerts() == []
    assert bool(pair.bulk._q.mode[pair.bulk._q.row_of["P-A"]])  # quiet, in the arrays
    pair.snapshot_restore()
    pair.process([fix(t + MIN, 0.0, dev="WB-A"), fix(t + 2 * MIN, 0.0, dev="WB-A")])
    assert [a.kind for a in pair.bulk.open_alerts()] == ["exclusion_entered"]
    pair.flush()


def test_a_curfew_begins_while_a_steady_person_is_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Home at 21:40, inside the school from 21:45 (its alert open), still there
    when the curfew begins at 22:00. The steady fixes keep the curfew zone's
    latest code: certainly outside, or (the 21:59 fix, 1 km accurate)
    uncertain; the window opens a streak at its start only after a certain
    one, and the curfew alert opens as on the per-message path."""
    for acc_2159, start in ((5.0, "22:00:00"), (1000.0, "22:00:30")):
        steady = _Steady(monkeypatch)
        pair = Pair()
        t = T0 + 100 * MIN  # 21:40 local
        for k in range(19):  # 21:41 .. 21:59
            t += MIN
            pair.process([fix(t, 0.0 if k >= 4 else 1000.0, dev="WB-A",
                              acc=acc_2159 if k == 18 else 5.0)])
        assert steady.applied >= 10
        pair.snapshot_restore(restore=False)  # the same curfew code as the reference's
        for k in range(5):  # 22:00:30 .. 22:04:30
            pair.process([fix(t + (k + 1) * MIN + 30 * SEC, 0.0, dev="WB-A")])
        curfew = [a for a in pair.bulk.open_alerts() if a.kind == "curfew_violated"]
        assert len(curfew) == 1 and curfew[0].alert_id == alert_id(
            "P-A", "r3", parse_ts(f"2026-11-22T{start}+08:00"))
        assert [a.kind for a in pair.bulk.open_alerts()].count("exclusion_entered") == 1
        pair.flush()


def test_a_silence_inside_one_batch_of_a_new_person_raises_signal_lost() -> None:
    """A person's first batch holds a 20-minute gap (signal_loss after 15):
    the bulk path must not apply it, nor the per-lane fast path after it
    (found by the stream's poison test, where one batch held a whole day)."""
    ts = [T0 + k * MIN for k in (*range(0, 11), *range(30, 41))]
    # P-B reports throughout, so the engine's clock moves without a jump
    batch = sorted([*(fix(t, 1000.0, dev="WB-A") for t in ts),
                    *(fix(T0 + k * MIN + SEC, -1000.0, dev="WB-B") for k in range(41))],
                   key=lambda m: m.ts)
    pair = Pair()
    pair.process(batch)
    pair.flush()
    out = Engine(ZONES, ORDERS, EngineConfig()).process(batch)
    assert out.bulk > 0  # P-B's fixes went in bulk; P-A's could not
    assert [(r.event, r.alert.kind) for r in out.records] == [("opened", "signal_lost"),
                                                                ("cleared", "signal_lost")]


def test_a_person_first_seen_in_bulk_has_no_lane_object_until_it_needs_one() -> None:
    """Lanes started in bulk live in the arrays only (a province's worth of
    ``Lane`` objects is what the bulk path saves); a timer, an order change or
    a snapshot builds the object, and the records are those of the full path."""
    pair = Pair()
    t = T0
    for _ in range(5):
        t += MIN
        pair.process([fix(t, 1000.0, dev="WB-A"), fix(t, -1500.0 + 400, dev="WB-B")])
    assert pair.in_bulk == 10
    assert pair.bulk._lanes == {}  # both persons quiet: no Lane objects yet
    assert len(pair.ref._lanes) == 2
    pair.advance(t + 15 * MIN + SEC)  # P-A's signal loss: the timer needs the lane
    assert set(pair.bulk._lanes) == {"P-A"}  # P-B has no timer: still in the arrays
    assert {a.kind for a in pair.bulk.open_alerts()} == {"signal_lost"}
    pair.flush()


def test_a_snapshot_builds_the_lanes_started_in_bulk() -> None:
    pair = Pair()
    t = T0 + 100 * MIN  # 21:40 local: the curfew window starts while they are quiet
    for _ in range(30):
        t += MIN
        pair.process([fix(t, 1000.0, dev="WB-A"), fix(t, -1500.0 + 400, dev="WB-B")])
    assert pair.bulk._lanes == {}
    pair.snapshot_restore()
    for _ in range(10):
        t += MIN
        pair.process([fix(t, 1000.0, dev="WB-A"), fix(t, -1500.0 + 400, dev="WB-B")])
    pair.flush()


def _mixed_world() -> tuple[Any, list[Any]]:
    """Zones D1 (a district polygon) and X1 (a 100 m circle inside it); A has
    zone rules, B only a no_contact rule, C no rules at all."""
    gj = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "D1", "properties": {},
         "geometry": {"type": "Polygon", "coordinates": [square(0, 0, 3000)]}},
        {"type": "Feature", "id": "X1", "properties": {"radius_m": 100},
         "geometry": {"type": "Point", "coordinates": list(pt(1000, 0))}}]}
    base = {"jurisdiction": "320102"}
    ords = parse_orders(json.dumps([
        {**base, "person_id": "A", "devices": ["WA"], "rules": [
            {"id": "a1", "type": "inclusion", "zone": "D1"},
            {"id": "a2", "type": "exclusion", "zone": "X1"}]},
        {**base, "person_id": "B", "devices": ["WB"], "rules": [
            {"id": "b1", "type": "no_contact", "person": "C", "distance_m": 100}]},
        {**base, "person_id": "C", "devices": ["WC"], "rules": []}]))
    return ZoneCatalogue.from_geojson(gj), ords


def test_a_batch_mixing_a_person_with_zone_rules_and_one_without_goes_in_bulk() -> None:
    """Regression: the curfew-code lookup of the bulk pass indexed past the
    end of the batch's (fix, rule) pairs for a fix of a person with no zone
    rules, and the whole batch raised IndexError."""
    zs, ords = _mixed_world()
    fast = Engine(zs, ords, EngineConfig())
    ref = Engine(zs, ords, EngineConfig(paths="reference"))
    t = T0
    for step in range(6):
        # A inside D1 (quiet), B and C near each other half the time
        batch = [fix(t, 0.0, dev="WA"), fix(t + SEC, 2000.0 if step % 2 else 0.0, dev="WB"),
                 fix(t + 2 * SEC, 50.0, dev="WC")]
        a, b = fast.process(batch), ref.process(batch)
        assert [encode(r) for r in a.records] == [encode(r) for r in b.records]
        if step == 0:
            assert a.bulk == 1  # A's fix went in bulk beside the others
        t += MIN
    # A walks into X1: the exclusion opens on both paths
    for _ in range(3):
        batch = [fix(t, 1000.0, dev="WA"), fix(t, 0.0, dev="WB"), fix(t, 20.0, dev="WC")]
        a, b = fast.process(batch), ref.process(batch)
        assert [encode(r) for r in a.records] == [encode(r) for r in b.records]
        t += MIN
    kinds = {x.kind for x in fast.open_alerts()}
    assert kinds == {"exclusion_entered", "contact"}
    assert [encode(x) for x in fast.open_alerts()] == [encode(x) for x in ref.open_alerts()]


def test_engine_paths_is_checked() -> None:
    with pytest.raises(ValidationError, match="engine paths"):
        EngineConfig(paths="quick")  # type: ignore[arg-type]


def test_snapshot_keeps_quiet_lanes_as_arrays_and_reads_the_previous_format() -> None:
    """A snapshot (format 3) holds quiet lanes as arrays, with their pending
    fixes (a battery reading among them); restored, it continues as the
    reference does, and so does the previous format (2) of the same state.
    A ``battery_low`` alert open across the snapshot clears on a pending
    fix's battery reading when the restored lane rewinds over it."""
    pair = Pair()
    t = T0
    for _ in range(12):  # quiet fixes at home
        t += MIN
        pair.process([fix(t, 1000.0, dev="WB-A")])
    pair.process([event(t + SEC, "heartbeat", dev="WB-A")])  # a lane object, then quiet again
    for k in range(3):  # the last one reads a full battery
        t += MIN
        pair.process([fix(t, 1000.0, dev="WB-A", battery_pct=90.0 if k == 2 else None)])
    assert pair.in_bulk >= 10
    blob = pair.bulk.snapshot()
    snap = msgspec.msgpack.decode(blob, type=_Snapshot)
    assert snap.version == engine_pkg.SNAPSHOT_VERSION and snap.quiet is not None and len(snap.quiet.rows) == 8
    assert len(snap.quiet.log["ts"]) > 0  # pending fixes travel as columns
    old = pair.bulk.snapshot(version=2)
    assert msgspec.msgpack.decode(old, type=_Snapshot).quiet is None
    for data in (blob, old):
        fresh = Engine(ZONES, ORDERS, EngineConfig())
        fresh.restore(data)
        # an out-of-order fix inside the horizon: the restored lane rewinds over its fixes
        late = [event(t - 50 * SEC, "battery_low", dev="WB-A"),
                fix(t - 30 * SEC, 0.0, dev="WB-A"), fix(t + 20 * SEC, 0.0, dev="WB-A"),
                fix(t + 50 * SEC, 0.0, dev="WB-A")]
        ref = Engine(ZONES, ORDERS, EngineConfig(paths="reference"))
        ref.restore(pair.ref.snapshot())
        want = ref.process(late).records + ref.flush()
        assert [encode(r) for r in fresh.process(late).records + fresh.flush()] == [
            encode(r) for r in want]
        kinds = [(r.event, r.alert.kind) for r in want]
        assert ("opened", "exclusion_entered") in kinds  # not vacuous
        assert ("cleared", "battery_low") in kinds


def test_restore_refuses_an_unknown_format_and_broken_arrays() -> None:
    pair = Pair()
    for k in range(3):
        pair.process([fix(T0 + k * MIN, 1000.0, dev="WB-A")])
    snap = msgspec.msgpack.decode(pair.bulk.snapshot(), type=_Snapshot)
    fresh = Engine(ZONES, ORDERS, EngineConfig())
    with pytest.raises(ValidationError) as err:
        fresh.restore(msgspec.msgpack.encode(msgspec.structs.replace(snap, version=1)))
    assert err.value.reason == "snapshot_version" and "reads 2, 3, 4 and 5" in str(err.value)
    assert snap.quiet is not None
    broken = msgspec.structs.replace(snap.quiet, columns={
        k: v[:-1] for k, v in snap.quiet.columns.items()})
    with pytest.raises(ValidationError) as err:
        fresh.restore(msgspec.msgpack.encode(msgspec.structs.replace(snap, quiet=broken)))
    assert err.value.reason == "snapshot_corrupt"
    with pytest.raises(ValidationError):
        pair.bulk.snapshot(version=1)


_I64S = st.integers(-1, 50)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_I64S, _I64S, _I64S, st.integers(0, 3), st.booleans(), st.booleans(),
                          _I64S, st.integers(-1, 20)), min_size=1, max_size=20))
def test_the_quiet_decision_is_the_same_on_arrays_and_on_one_row(rows: list[Any]) -> None:
    # the bulk pass applies it to arrays, the per-lane shortcut to one row's scalars
    t, last, due, flags, cf, ws, prev, after = (np.array(c) for c in zip(*rows, strict=True))
    flags = flags.astype(np.int8)
    arr = quiet_fix(t, last, due, flags, cf, ws)
    sig = within_signal(prev, t, after)
    fast = too_fast(t.astype(np.float64), 20.0)
    for i, (ti, li, di, fi, ci, wi, pi, ai) in enumerate(rows):
        assert bool(quiet_fix(ti, li, di, fi, ci, wi)) == bool(arr[i])
        assert bool(within_signal(pi, ti, ai)) == bool(sig[i])
        assert bool(too_fast(float(ti), 20.0)) == bool(fast[i])
        # what it says, written out
        assert bool(arr[i]) == (li < ti and (ti < di or wi) and not fi & 1
                                and not (fi & 2 and (ci or wi)))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 10_000), st.one_of(st.just(-1), st.integers(1, 900)),
                          st.one_of(st.integers(-2, 2), st.none())),
                min_size=1, max_size=20))
def test_the_timer_rearm_is_the_same_on_arrays_and_on_one_lane(gen: list[Any]) -> None:
    # the quiet arrays re-arm many lanes at once, a lane object one at a time;
    # the static timers sit around the signal-loss time (or far away: None)
    rows = [(1 << 62 if off is None else max(0, lm + abs(a) + off), lm, a) for lm, a, off in gen]
    sdue, lastmsg, after = (np.array(c, np.int64) for c in zip(*rows, strict=True))
    arr = rearm_due_np(sdue, lastmsg, after)
    for i, (si, li, ai) in enumerate(rows):
        one = rearm_due(si, li, None if ai < 0 else ai)
        assert one == int(arr[i]) == rearm_due(si, li, ai)  # None or -1: no signal_loss rule
        # what it says, written out: no signal_loss rule leaves the static timers
        assert one == (si if ai < 0 else min(si, li + ai))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1 << 50), st.integers(0, 1 << 40), st.integers(-1, 1)),
                min_size=1, max_size=20))
def test_a_window_begins_the_same_on_arrays_and_on_one_rule(gen: list[Any]) -> None:
    # the quiet arrays enter many rows' windows at once (enter_windows),
    # catch_up one lane's rule: same timer, same violation at the start
    start = np.array([s for s, _, _ in gen], np.int64)
    end = start + np.array([d for _, d, _ in gen], np.int64)
    code = np.array([c for _, _, c in gen], np.int8)
    due, viol_at = window_begins(start, end, code)
    assert due.dtype == viol_at.dtype == np.int64
    for i, (si, di, ci) in enumerate(gen):
        one_due, one_viol = window_begins(si, si + di, ci)
        # a lane object's rule keeps plain ints (they end up in alert ids)
        assert type(one_due) is int and type(one_viol) is int
        assert (one_due, one_viol) == (int(due[i]), int(viol_at[i]))
        # what it says, written out: the timer is the begun window's end, and
        # a person last seen certainly outside violates from the window's start
        assert one_due == si + di == window_due(si, si + di, True)
        assert one_viol == (si if ci == 1 else -1)
