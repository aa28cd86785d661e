"""Phone-supervised persons in the simulated day: their check-ins, the
check-in alerts the ground truth expects, and the oracle that re-derives
them from the written files."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import shapely

from devices.provisioning import load, verify_secret
from geofence.checkin import Owed, owed_between
from geofence.engine import ReplaySummary, replay_lines
from geofence.model import encode, format_ts, parse_order, parse_orders, parse_ts
from geofence.zones import load_zones
from simulators.caseload import Caseload, SimConfig, generate, write
from simulators.phones import PHONE_BEHAVIOURS, CheckinPlan, checkin_alerts
from simulators.score import ScoreReport, score
from simulators.verify import verify

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _c(ts: int, face: float | None = 0.9, action: bool | None = True, request_id: str | None = None,
       outside: bool = False) -> CheckinPlan:
    return CheckinPlan(ts, 0.0, 0.0, 10.0, face, action, "face_action", request_id, outside)


W1 = Owed(5_000, 1_000, "P-1/c/w1000", False)
W2 = Owed(50_000, 40_000, "P-1/c/w40000", False)
R1 = Owed(30_000, 20_000, "P-1/c/20261122/0", True)


# --------------------------------------------------------------------------- the truth, by hand


def test_an_answered_window_raises_nothing_and_its_deadline_is_inclusive():
    assert checkin_alerts([W1], [_c(2_000)], 0.8) == []
    assert checkin_alerts([W1], [_c(5_000)], 0.8) == []
    assert checkin_alerts([W1], [_c(5_001)], 0.8) == [("checkin_missed", 5_000)]
    assert checkin_alerts([W1], [_c(999)], 0.8) == [("checkin_missed", 5_000)]


def test_a_missed_window_stays_one_episode_until_a_verified_check_in():
    assert checkin_alerts([W1, W2], [], 0.8) == [("checkin_missed", 5_000)]
    # a late answer clears the first episode: the next missed deadline opens a second one
    assert checkin_alerts([W1, W2], [_c(7_000)], 0.8) == [("checkin_missed", 5_000),
                                                          ("checkin_missed", 50_000)]


def test_an_impostor_fails_and_answers_nothing():
    impostor = _c(2_000, face=0.5)
    assert checkin_alerts([W1], [impostor], 0.8) == [("checkin_failed", 2_000),
                                                     ("checkin_missed", 5_000)]
    # the real person follows in time: the failure stands, nothing is missed
    assert checkin_alerts([W1], [impostor, _c(3_000)], 0.8) == [("checkin_failed", 2_000)]
    # a second failure while the first is open is the same episode
    assert checkin_alerts([W1], [impostor, _c(2_500, face=0.1), _c(3_000)], 0.8) == [
        ("checkin_failed", 2_000)]


def test_a_failed_action_fails_whatever_the_face_score():
    assert checkin_alerts([W1], [_c(2_000, face=0.99, action=False), _c(3_000)], 0.8) == [
        ("checkin_failed", 2_000)]
    assert checkin_alerts([W1], [_c(2_000, face=None, action=False)], 0.8) == [
        ("checkin_failed", 2_000), ("checkin_missed", 5_000)]


def test_a_face_score_at_min_score_passes_and_the_rule_floor_counts():
    assert checkin_alerts([W1], [_c(2_000, face=0.8, action=None)], 0.8) == []
    assert checkin_alerts([W1], [_c(2_000, face=0.8, action=None)], 0.85) == [
        ("checkin_failed", 2_000), ("checkin_missed", 5_000)]


def test_an_outside_check_in_answers_and_opens_until_one_inside():
    assert checkin_alerts([W1, W2], [_c(2_000, outside=True), _c(45_000)], 0.8) == [
        ("checkin_outside", 2_000)]
    # still outside at the next check-in: one episode
    assert checkin_alerts([W1, W2], [_c(2_000, outside=True), _c(45_000, outside=True)], 0.8) == [
        ("checkin_outside", 2_000)]


def test_a_check_in_naming_another_request_does_not_answer_it():
    other = "P-1/c/20261122/1"
    assert checkin_alerts([R1], [_c(25_000, request_id=other)], 0.8) == [("checkin_missed", 30_000)]
    assert checkin_alerts([R1], [_c(25_000, request_id=R1.key)], 0.8) == []
    assert checkin_alerts([R1], [_c(25_000)], 0.8) == []


def test_a_repeated_check_in_counts_once():
    failed = _c(2_000, face=0.2)
    assert checkin_alerts([W1], [failed, failed, _c(3_000)], 0.8) == [("checkin_failed", 2_000)]


# --------------------------------------------------------------------------- a generated day


@pytest.fixture(scope="module")
def phone_day() -> Caseload:
    # 36 phone persons: every behaviour at least three times, every rule shape
    return generate(SimConfig(persons=120, seed=11, district_detail_m=60.0, phone_share=0.3))


@pytest.fixture(scope="module")
def phone_dir(phone_day: Caseload, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("phones")
    write(phone_day, str(out))
    return out


def _checkin_lines(cl: Caseload) -> list[dict]:
    return [json.loads(line) for line in cl.lines() if b'"kind":"checkin"' in line]


def test_every_behaviour_is_staged(phone_day: Caseload):
    behaviours = {p.behaviour for p in phone_day.phones}
    assert behaviours == set(PHONE_BEHAVIOURS)
    assert phone_day.truth["meta"]["phone_persons"] == len(phone_day.phones) == 36
    ids = {p.person_id for p in phone_day.phones}
    assert len(ids) == 36 and not ids & {p.person_id for p in phone_day.persons}
    assert all(p.device_id.startswith("PH-") and len(p.device_id) == 9 for p in phone_day.phones)


def test_the_owed_check_ins_come_from_the_schedule(phone_day: Caseload):
    orders = {o.person_id: o for o in parse_orders(json.dumps(phone_day.orders))}
    day0 = phone_day.day_start_ms
    for p in phone_day.phones:
        o = orders[p.person_id]
        assert list(o.devices) == [p.device_id]
        assert [r.type for r in o.rules] == ["inclusion", "checkin"]
        assert o.rules[0].zone == p.district and o.valid_from_ms() == day0
        assert p.owed == owed_between(p.person_id, o.rules[1], o.timezone, day0, day0 + 86_400_000)
        assert p.owed and all(w.due_ms < day0 + 22 * 3_600_000 for w in p.owed)
        # the app's morning heartbeat comes before anything is owed
        assert day0 + 6 * 3_600_000 <= p.wake_ms < min(w.opens_ms for w in p.owed)
    beats = [json.loads(line) for line in phone_day.lines() if b'"event":"heartbeat"' in line]
    assert sorted((m["device_id"], m["ts"]) for m in beats) == sorted(
        (p.device_id, p.wake_ms) for p in phone_day.phones)


def test_each_behaviour_has_its_alerts(phone_day: Caseload):
    for p in phone_day.phones:
        kinds = sorted(e["kind"] for e in p.expected)
        opened = [parse_ts(e["opened_at"][0]) for e in p.expected]
        assert all(parse_ts(e["opened_at"][1]) == t for e, t in zip(p.expected, opened, strict=True))
        dues = {w.due_ms for w in p.owed}
        if p.behaviour in ("on_time", "late_arrival"):
            assert kinds == [], p
            assert p.person_id in phone_day.truth["silent_persons"]["checkin_answered"]
        elif p.behaviour == "missed":
            assert kinds == ["checkin_missed"] and opened[0] in dues
        elif p.behaviour == "late_answer":
            assert kinds == ["checkin_missed"] and opened[0] in dues
            # the late answer comes after the deadline and clears the episode
            assert any(opened[0] < c.ts <= opened[0] + 1_200_000 for c in p.checkins)
        elif p.behaviour in ("impostor", "action_failed"):
            assert "checkin_failed" in kinds and set(kinds) <= {"checkin_failed", "checkin_missed"}
            failed_at = [t for e, t in zip(p.expected, opened, strict=True) if e["kind"] == "checkin_failed"]
            bad = [c for c in p.checkins if not c.verified(p.min_score)]
            assert len(bad) == 1 and failed_at == [bad[0].ts]
            if p.behaviour == "impostor":
                assert bad[0].face_score is not None and bad[0].face_score < p.min_score
            else:
                assert bad[0].action_ok is False
        elif p.behaviour == "outside":
            assert kinds == ["checkin_outside"]
            assert [c.ts for c in p.checkins if c.outside] == opened


def test_check_ins_outside_are_far_outside_and_the_others_far_inside(phone_day: Caseload):
    by_dev = {p.device_id: p for p in phone_day.phones}
    frame = phone_day.city.frame
    for m in _checkin_lines(phone_day):
        p = by_dev[m["device_id"]]
        x, y = frame.to_xy(m["lon"], m["lat"])
        geom = phone_day.city.district(p.district).geom
        d = float(shapely.distance(geom.boundary, shapely.Point(float(x), float(y))))
        assert m["accuracy_m"] <= 60.0 and d > m["accuracy_m"] + 500.0
        plan = next(c for c in p.checkins if c.ts == m["ts"])
        assert geom.contains(shapely.Point(float(x), float(y))) != plan.outside


def test_late_arrivals_reach_the_system_after_their_deadline_inside_the_horizon(phone_day: Caseload):
    late = [p for p in phone_day.phones if p.behaviour == "late_arrival"]
    assert late
    for p in late:
        hits = [(w, c) for w in p.owed for c in p.checkins
                if w.due_ms - 15_000 <= c.ts < w.due_ms and c.ts + c.delay_ms > w.due_ms]
        assert hits, p
        assert all(20_000 <= c.delay_ms < 75_000 for _, c in hits)


def test_check_in_lines_say_what_the_plan_says(phone_day: Caseload):
    lines = _checkin_lines(phone_day)
    plans = {(p.device_id, c.ts): (p, c) for p in phone_day.phones for c in p.checkins}
    resent = sum(1 for p in phone_day.phones for c in p.checkins if c.resent_ms is not None)
    assert len(lines) == len(plans) + resent and resent > 0
    for m in lines:
        p, c = plans[(m["device_id"], m["ts"])]
        assert m.get("face_score") == c.face_score and m.get("action_ok") == c.action_ok
        assert m.get("request_id") == c.request_id and m["method"] == c.method
        if c.request_id is not None:
            assert c.request_id in {w.key for w in p.owed if w.requested}


def test_phones_leave_the_wristband_day_as_it_was():
    base = generate(SimConfig(persons=80, seed=5, district_detail_m=60.0))
    with_phones = generate(SimConfig(persons=80, seed=5, district_detail_m=60.0, phone_share=0.1))
    assert with_phones.phones and not base.phones
    assert "phone_share" not in base.zones["wardstream_simulation"]
    assert [line for line in with_phones.lines() if b'"device_id":"PH-' not in line] == list(base.lines())
    assert with_phones.orders[:len(base.orders)] == base.orders
    phone_ids = {p.person_id for p in with_phones.phones}
    assert [e for e in with_phones.truth["expected"] if e["person_id"] not in phone_ids] == \
        base.truth["expected"]
    assert base.zones["features"] == with_phones.zones["features"]


def test_a_day_with_phones_is_deterministic(phone_day: Caseload):
    again = generate(SimConfig(persons=120, seed=11, district_detail_m=60.0, phone_share=0.3))
    assert list(again.lines()) == list(phone_day.lines())
    assert again.truth == phone_day.truth and again.orders == phone_day.orders
    other = generate(SimConfig(persons=120, seed=12, district_detail_m=60.0, phone_share=0.3))
    assert [e for e in other.truth["expected"] if e["kind"].startswith("checkin")] != \
        [e for e in phone_day.truth["expected"] if e["kind"].startswith("checkin")]


def test_jt808_days_have_no_phones():
    cfg = SimConfig.for_profile("jt808", persons=80, phone_share=0.1)
    assert cfg.phone_count() == 0


# --------------------------------------------------------------------------- the engine


def _replay_scored(phone_dir: Path, truth: dict, drop: bytes | None = None
                   ) -> tuple[ScoreReport, ReplaySummary]:
    zones = load_zones(phone_dir / "zones.geojson")
    orders = parse_orders((phone_dir / "orders.json").read_bytes())
    # small chunks: the watermark passes a late arrival's deadline before the check-in
    # arrives (120 persons send about 2 messages per second of event time), so the
    # missed-deadline timer fires and must be rewound
    with open(phone_dir / "telemetry.jsonl", "rb") as f:
        lines = (line.rstrip(b"\n") for line in f if drop is None or drop not in line)
        alerts, summary = replay_lines(lines, zones, orders, chunk=64)
    return score(truth, [json.loads(encode(a)) for a in alerts]), summary


def _first_checkin(phone_day: Caseload, person_id: str) -> int:
    p = next(p for p in phone_day.phones if p.person_id == person_id)
    return min(c.ts for c in p.checkins)


def test_a_day_with_phones_replays_perfectly(phone_day: Caseload, phone_dir: Path):
    truth = json.loads((phone_dir / "truth.json").read_text())
    report, summary = _replay_scored(phone_dir, truth)
    assert report.false_negatives == [] and report.false_positives == [], report.text()
    assert report.precision == 1.0 and report.recall == 1.0
    assert all(not persons for persons in report.silent_violations.values())
    assert report.late_mismatches == []
    for kind in ("checkin_missed", "checkin_failed", "checkin_outside"):
        assert report.per_kind[kind]["tp"] == report.per_kind[kind]["expected"] >= 3, kind
    assert summary.duplicates > 0
    # late arrivals made the missed-deadline timer fire early, and the rewind retracted it
    assert summary.retracted > 0
    # some persons miss a deadline before their first check-in (their heartbeat came earlier)
    assert any(e["kind"] == "checkin_missed" and parse_ts(e["opened_at"][0])
               < _first_checkin(phone_day, e["person_id"]) for e in truth["expected"])


def test_a_deadline_missed_before_the_phone_sent_anything_opens_checkin_missed(
        phone_day: Caseload, phone_dir: Path):
    # the same day without the phones' morning heartbeats: the truth does not change,
    # as the orders' valid_from (midnight) starts the schedules, not a first message
    truth = json.loads((phone_dir / "truth.json").read_text())
    early = {(e["person_id"], e["opened_at"][0]) for e in truth["expected"]
             if e["kind"] == "checkin_missed"
             and parse_ts(e["opened_at"][0]) < _first_checkin(phone_day, e["person_id"])}
    assert early
    report, _ = _replay_scored(phone_dir, truth, drop=b'"event":"heartbeat"')
    assert not early & {(e["person_id"], e["opened_at"][0]) for e in report.false_negatives}
    assert report.false_negatives == [] and report.false_positives == [], report.text()


# --------------------------------------------------------------------------- the oracle


def _verify(d: Path, truth: dict) -> list[str]:
    with open(d / "telemetry.jsonl", "rb") as f:
        return verify((d / "zones.geojson").read_bytes(), (d / "orders.json").read_bytes(),
                      (line.rstrip(b"\n") for line in f), truth, 32.06, 118.79)


def test_the_oracle_agrees_with_the_check_in_truth(phone_dir: Path):
    truth = json.loads((phone_dir / "truth.json").read_text())
    kinds = defaultdict(int)
    for e in truth["expected"]:
        kinds[e["kind"]] += 1
    assert min(kinds[k] for k in ("checkin_missed", "checkin_failed", "checkin_outside")) >= 3
    assert _verify(phone_dir, truth) == []


def test_the_oracle_finds_a_missing_or_moved_check_in_alert(phone_dir: Path):
    truth = json.loads((phone_dir / "truth.json").read_text())
    idx = [i for i, e in enumerate(truth["expected"]) if e["kind"].startswith("checkin")]
    dropped = dict(truth, expected=[e for i, e in enumerate(truth["expected"]) if i != idx[0]])
    gone = truth["expected"][idx[0]]
    problems = _verify(phone_dir, dropped)
    assert len(problems) == 1 and gone["person_id"] in problems[0] and gone["kind"] in problems[0]
    moved = json.loads(json.dumps(truth))
    e = moved["expected"][idx[1]]
    t = format_ts(parse_ts(e["opened_at"][0]) + 1000)
    e["opened_at"] = [t, t]
    problems = _verify(phone_dir, moved)
    assert len(problems) == 1 and e["person_id"] in problems[0]


def test_the_oracle_reads_a_check_in_without_results_as_rejected(phone_dir: Path, tmp_path: Path):
    # a check-in with neither face_score nor action_ok is bad input: it answers nothing
    truth = json.loads((phone_dir / "truth.json").read_text())
    orders = json.loads((phone_dir / "orders.json").read_text())
    missed = next(e for e in truth["expected"] if e["kind"] == "checkin_missed"
                  and e["scenario"] == "checkin_missed")
    o = next(o for o in orders if o["person_id"] == missed["person_id"])
    due = parse_ts(missed["opened_at"][0])
    rule = parse_order(o).rules[1]
    w = next(w for w in owed_between(o["person_id"], rule, o["timezone"], due - 1, due + 1)
             if w.due_ms == due)
    raw = (phone_dir / "telemetry.jsonl").read_bytes().splitlines(keepends=True)
    mine = next(json.loads(x) for x in raw if o["devices"][0].encode() in x and b'"kind":"checkin"' in x)
    extra = {"kind": "checkin", "device_id": o["devices"][0], "ts": w.due_ms - 60_000,
             "lat": mine["lat"], "lon": mine["lon"], "accuracy_m": mine["accuracy_m"],
             "request_id": w.key if w.requested else None}
    at = next(i for i, x in enumerate(raw) if re.search(rb'"ts":(\d+)', x)
              and int(re.search(rb'"ts":(\d+)', x).group(1)) > extra["ts"])  # type: ignore[union-attr]

    def day_with(msg: dict) -> Path:
        for name in ("zones.geojson", "orders.json"):
            (tmp_path / name).write_bytes((phone_dir / name).read_bytes())
        (tmp_path / "telemetry.jsonl").write_bytes(
            b"".join([*raw[:at], json.dumps(msg).encode() + b"\n", *raw[at:]]))
        return tmp_path

    assert _verify(day_with(extra), truth) == []
    problems = _verify(day_with({**extra, "face_score": 0.95}), truth)
    assert len(problems) == 1 and missed["person_id"] in problems[0] and "checkin_missed" in problems[0]


# --------------------------------------------------------------------------- command line


def test_generate_provisions_phones_with_keys(tmp_path: Path):
    out = tmp_path / "day"
    r = subprocess.run([sys.executable, "-m", "stream.cli", "simulate", "generate", "--persons", "40",
                        "--phone-share", "0.1", "--no-telemetry", "--quiet", "--out", str(out),
                        "--provisioning-out", str(tmp_path / "devices.json")],
                       env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    keys_path = tmp_path / "phone-keys.json"
    assert stat.S_IMODE(keys_path.stat().st_mode) == 0o600
    keys = json.loads(keys_path.read_text())
    orders = json.loads((out / "orders.json").read_text())
    phones = {d for o in orders for d in o["devices"] if d.startswith("PH-")}
    assert set(keys) == phones and len(phones) == 4
    book = load(str(tmp_path / "devices.json"))
    assert {d.device_id for d in book} == {d for o in orders for d in o["devices"]}
    for dev in book:
        if dev.device_id in phones:
            assert dev.protocol == "osmand" and dev.check_secret(keys[dev.device_id])
            assert not verify_secret(keys[dev.device_id] + "x", dev.secret_hash or "")
        else:
            assert dev.secret_hash is None
    bad = subprocess.run([sys.executable, "-m", "stream.cli", "simulate", "generate", "--persons", "40",
                          "--phone-share", "2", "--out", str(out)], env=ENV, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "phone-share" in bad.stderr and "Traceback" not in bad.stderr


def test_phone_share_zero_counts_nobody():
    assert SimConfig(persons=1000).phone_count() == 0
    assert SimConfig(persons=1000, phone_share=0.05).phone_count() == 50
    assert SimConfig(persons=3, phone_share=0.05).phone_count() == 1
