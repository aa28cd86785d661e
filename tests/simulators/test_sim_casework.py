"""Casework persons (windows on zone rules, leave, category rules, positioning
terms): their orders, their ground truth, determinism, and a replayed day."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import shapely
from shapely.geometry import Point

from geofence.model import parse_orders, parse_ts
from simulators.caseload import DEFAULT_SHARES, Caseload, SimConfig, dumps, generate, write
from simulators.casework import (
    CASEWORK_KINDS,
    CASEWORK_SILENT,
    CATEGORY_APPROACH_BUFFER_M,
    CATEGORY_BUFFER_M,
)
from simulators.people import _routine_geom
from simulators.score import load_alerts, score

TZ = ZoneInfo("Asia/Shanghai")
SHARES = (*DEFAULT_SHARES.items(), *((k, 0.01) for k in CASEWORK_KINDS))


@pytest.fixture(scope="module")
def day() -> Caseload:
    return generate(SimConfig(persons=300, seed=5, casework=True, shares=SHARES))


def _local(ts: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(parse_ts(ts) / 1000, TZ)


def _by_kind(cl: Caseload, kind: str) -> list[Any]:
    ps = [p for p in cl.persons if p.scenario == kind]
    assert ps, f"no person staged for {kind}"
    return ps


def _expected(cl: Caseload, pid: str) -> list[dict[str, Any]]:
    return [e for e in cl.truth["expected"] if e["person_id"] == pid]


def _order(cl: Caseload, pid: str) -> dict[str, Any]:
    return next(o for o in cl.orders if o["person_id"] == pid)


def test_every_casework_kind_is_staged_and_orders_parse(day: Caseload) -> None:
    for kind in CASEWORK_KINDS:
        _by_kind(day, kind)
    orders = parse_orders(dumps(day.orders))
    assert any(o.exemptions for o in orders) and any(o.positioning for o in orders)


def test_school_hours_alert_inside_the_window_and_evening_entry_is_silent(day: Caseload) -> None:
    for p in _by_kind(day, "school_hours"):
        (e,) = _expected(day, p.person_id)
        assert (e["rule_id"], e["kind"]) == ("excl-1", "exclusion_entered")
        rule = next(r for r in _order(day, p.person_id)["rules"] if r["id"] == "excl-1")
        assert rule["windows"][0]["start"] == "07:00"
        assert 7 <= _local(e["opened_at"][0]).hour < 18
    for p in _by_kind(day, "school_evening"):
        assert _expected(day, p.person_id) == []
        assert p.segments[0].t0 >= 18 * 3600 + 20 * 60
        assert p.person_id in day.truth["silent_persons"]["school_evening"]


def test_inside_at_window_start_opens_at_the_start(day: Caseload) -> None:
    for p in _by_kind(day, "school_at_start"):
        (e,) = _expected(day, p.person_id)
        assert _local(e["opened_at"][0]).time() == dt.time(7, 0)
        assert p.segments[0].t0 < 7 * 3600 <= p.segments[1].t0  # already inside before it
    for p in _by_kind(day, "widen_at_start"):
        (e,) = _expected(day, p.person_id)
        assert (e["rule_id"], _local(e["opened_at"][0]).time()) == ("incl", dt.time(18, 0))


def test_widened_inclusion_alerts_only_outside_the_widening(day: Caseload) -> None:
    for p in _by_kind(day, "widen_day"):
        assert _expected(day, p.person_id) == []
        o = _order(day, p.person_id)
        wide = next(r for r in o["rules"] if r["id"] == "incl-work")
        assert wide["windows"][0]["start"] == "08:00"
        assert p.segments[0].t0 > 8 * 3600 and p.segments[0].t1 < 18 * 3600
    for p in _by_kind(day, "widen_night"):
        (e,) = _expected(day, p.person_id)
        assert e["kind"] == "inclusion_left" and _local(e["opened_at"][0]).hour >= 18


def test_leave_travel_is_silent_and_late_return_is_overdue_at_until(day: Caseload) -> None:
    for p in _by_kind(day, "leave_travel"):
        (ex,) = _order(day, p.person_id)["exemptions"]
        assert _expected(day, p.person_id) == []
        lo, hi = parse_ts(ex["from"]) - day.day_start_ms, parse_ts(ex["until"]) - day.day_start_ms
        assert lo < p.segments[0].t0 * 1000 and p.segments[0].t1 * 1000 < hi
    for p in _by_kind(day, "leave_late"):
        (ex,) = _order(day, p.person_id)["exemptions"]
        got = {(e["rule_id"], e["kind"]): e["opened_at"] for e in _expected(day, p.person_id)}
        lo, hi = got[(ex["id"], "leave_overdue")]
        assert lo == hi  # an exact instant
        assert parse_ts(got[(ex["id"], "leave_overdue")][0]) == parse_ts(ex["until"])
        assert parse_ts(got[("incl", "inclusion_left")][0]) == parse_ts(ex["until"])
        assert p.segments[0].t1 * 1000 > parse_ts(ex["until"]) - day.day_start_ms


def test_positioning_reminder_and_term_end(day: Caseload) -> None:
    for p in _by_kind(day, "positioning_reminder"):
        term = _order(day, p.person_id)["positioning"]
        (e,) = _expected(day, p.person_id)
        assert e["kind"] == "positioning_term_ending"
        assert parse_ts(e["opened_at"][0]) == parse_ts(term["until"]) - term["remind_days"] * 86_400_000
    for p in _by_kind(day, "positioning_ends"):
        o = _order(day, p.person_id)
        until = parse_ts(o["positioning"]["until"])
        (e,) = _expected(day, p.person_id)
        assert parse_ts(e["opened_at"][1]) < until  # the breach after the term raises nothing
        assert (p.segments[1].t0 * 1000 + day.day_start_ms) > until
        # the reminder fell before this order version was valid: none expected
        assert until - 7 * 86_400_000 < parse_ts(o["valid_from"])


def test_category_alerts_in_the_own_county_only(day: Caseload) -> None:
    feats = {f["id"]: f for f in day.zones["features"]}
    for kind, rule in (("category_county", "cat-school"), ("category_other", "incl")):
        for p in _by_kind(day, kind):
            (e,) = _expected(day, p.person_id)
            assert e["rule_id"] == rule
            (zid,) = p.case["used"]
            props = feats[zid]["properties"]
            assert props["category"] == "school"
            assert (props["jurisdiction"] == p.district) == (kind == "category_county")
            z = next(z for z in day.city.zones if z.zone_id == zid)
            (stop,) = p.segments  # the visit is the person's one stop (the truth times it)
            assert z.geom.contains(Point(stop.x, stop.y))
            # every other school of the county stays out of reach
            own = [z.geom for z in day.city.zones if z.category == "school" and z.district == p.district
                   and z.zone_id != zid]
            here = Point(stop.x, stop.y)
            assert all(shapely.distance(g, here) > CATEGORY_BUFFER_M + 60 for g in own)


def test_a_category_approach_warns_beside_the_venue_placed_for_it(day: Caseload) -> None:
    """The approach buffer of a category rule: the stop is half the buffer
    outside the venue placed for the person, and only the approach is expected."""
    feats = {f["id"]: f for f in day.zones["features"]}
    for p in _by_kind(day, "category_approach"):
        (e,) = _expected(day, p.person_id)
        assert (e["rule_id"], e["kind"]) == ("cat-entertainment", "exclusion_approach")
        (rule,) = [r for r in _order(day, p.person_id)["rules"] if r["id"].startswith("cat-")]
        assert rule == {"id": "cat-entertainment", "type": "exclusion", "category": "entertainment",
                        "area": "county", "buffer_m": CATEGORY_APPROACH_BUFFER_M}
        (zid,) = p.case["used"]
        assert feats[zid]["properties"]["jurisdiction"] == p.district

        (stop,) = p.segments  # the stop is the person's one (the truth times it)
        assert abs(_venue_gap(day, feats[zid], Point(stop.x, stop.y))
                   - CATEGORY_APPROACH_BUFFER_M / 2) < 0.5


def _venue_gap(day: Caseload, f: dict[str, Any], geom: Any) -> float:
    """Metres from ``geom`` (metric frame) to the circle of venue feature ``f``."""
    cx, cy = day.city.frame.to_xy(*(np.array([v]) for v in f["geometry"]["coordinates"]))
    return float(shapely.distance(geom, Point(cx[0], cy[0]))) - f["properties"]["radius_m"]


def test_no_venue_of_the_county_comes_within_reach_of_a_category_persons_day(day: Caseload) -> None:
    """Every category person's whole day keeps more than their rule's buffer
    plus 60 m from every entertainment venue of their county, but the one
    placed for an approach person's stop."""
    venues = [f for f in day.zones["features"] if f["properties"].get("category") == "entertainment"]
    for kind in ("category_county", "category_other", "category_approach"):
        buffer = CATEGORY_APPROACH_BUFFER_M if kind == "category_approach" else CATEGORY_BUFFER_M
        for p in _by_kind(day, kind):
            whole = _routine_geom(p)
            for f in venues:
                if (f["properties"]["jurisdiction"] == p.district
                        and f["id"] not in p.case["used"]):
                    assert _venue_gap(day, f, whole) > buffer + 60, (p.person_id, f["id"])


def test_silent_kinds_are_listed(day: Caseload) -> None:
    for k in CASEWORK_SILENT:
        assert sorted(p.person_id for p in day.persons if p.scenario == k) == day.truth["silent_persons"][k]


def test_same_config_same_bytes_and_off_leaves_no_trace(tmp_path: Path) -> None:
    cfg = SimConfig(persons=120, seed=9, casework=True)
    a, b = generate(cfg), generate(cfg)
    assert dumps(a.orders) == dumps(b.orders) and dumps(a.truth) == dumps(b.truth)
    assert b"".join(a.lines()) == b"".join(b.lines())
    off = generate(SimConfig(persons=120, seed=9))
    assert "casework" not in off.zones["wardstream_simulation"]
    assert not any("exemptions" in o or "positioning" in o for o in off.orders)
    assert not any(k in off.truth["meta"]["scenarios"] for k in CASEWORK_KINDS)


def test_small_casework_day_replays_with_full_precision_and_recall(tmp_path: Path) -> None:
    cl = generate(SimConfig(persons=300, seed=5, casework=True, shares=SHARES))
    paths = write(cl, str(tmp_path))
    out = tmp_path / "alerts.jsonl"
    proc = subprocess.run([sys.executable, "-m", "stream.cli", "replay", "--zones", paths["zones.geojson"],
                           "--orders", paths["orders.json"], "--telemetry", paths["telemetry.jsonl"],
                           "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    report = score(json.loads(Path(paths["truth.json"]).read_text()), load_alerts(out.read_text()))
    assert (report.precision, report.recall) == (1.0, 1.0), report.text()


def test_oracle_rederives_the_casework_truth_and_notices_changes(day: Caseload, tmp_path: Path) -> None:
    import copy

    from geofence.model import format_ts
    from simulators.verify import verify

    write(day, str(tmp_path))

    def check(truth: dict[str, Any]) -> list[str]:
        with open(tmp_path / "telemetry.jsonl", "rb") as f:
            return verify((tmp_path / "zones.geojson").read_bytes(), (tmp_path / "orders.json").read_bytes(),
                          (line.rstrip(b"\n") for line in f), truth, 32.06, 118.79)

    assert check(day.truth) == []
    bad = copy.deepcopy(day.truth)
    overdue = next(e for e in bad["expected"] if e["kind"] == "leave_overdue")
    bad["expected"].remove(overdue)
    reminder = next(e for e in bad["expected"] if e["kind"] == "positioning_term_ending")
    reminder["opened_at"] = [format_ts(parse_ts(reminder["opened_at"][0]) + 60_000)] * 2
    evening = day.truth["silent_persons"]["school_evening"][0]
    bad["expected"].append({"person_id": evening, "rule_id": "excl-1", "kind": "exclusion_entered",
                            "opened_at": [day.truth["meta"]["day_start"]] * 2, "late": False})
    problems = "\n".join(check(bad))
    assert f"'{overdue['person_id']}', '{overdue['rule_id']}', 'leave_overdue'" in problems
    assert f"'{reminder['person_id']}', 'positioning', 'positioning_term_ending'" in problems
    assert f"'{evening}', 'excl-1', 'exclusion_entered'" in problems


def test_cli_casework_option_and_share(tmp_path: Path) -> None:
    from simulators.cli import main

    out = tmp_path / "d"
    assert main(["generate", "--persons", "200", "--seed", "3", "--casework", "--share", "leave_late=0.02",
                 "--phone-share", "0", "--no-telemetry", "--quiet", "--out", str(out)]) == 0
    truth = json.loads((out / "truth.json").read_text())
    assert truth["meta"]["scenarios"]["leave_late"] == 4
    orders = json.loads((out / "orders.json").read_text())
    assert sum(1 for o in orders if "exemptions" in o) == truth["meta"]["scenarios"]["leave_late"] + \
        truth["meta"]["scenarios"]["leave_travel"]
    zones = json.loads((out / "zones.geojson").read_text())
    assert zones["wardstream_simulation"]["casework"] is True
    with pytest.raises(SystemExit):
        main(["generate", "--share", "leave_early=0.01", "--out", str(out)])
