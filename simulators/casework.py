"""Casework scenarios: schedules on zone rules, approved leave, rules by zone
category and terms of electronic positioning, with their exact ground truth.

They are staged only when :attr:`SimConfig.casework` is set, from a random
stream of their own, so a day generated without them is unchanged.

How each stays unambiguous
--------------------------
* Windows and terms start and end on whole minutes; a person who breaches
  inside a window (or before a term ends) is back at least 20 minutes
  before it ends, and one who breaches outside starts at least 20 minutes
  after it ended. A person already violating when a window starts reports
  every 60 s before it and every 15 s from a few seconds after it: the alert
  opens between the window start and the fix completing the dwell.
* Leave: the temporary inclusion zone is a circle around the person's home
  wide enough (1.5 km margin) to hold their whole day and the destination,
  so it is never in doubt. A person back late is still at the destination
  at ``until`` (no fix within 5 s of it): ``leave_overdue`` opens at
  ``until`` and the inclusion rule, active again, opens between ``until``
  and the fix completing its dwell.
* Categories: a person with category rules keeps ``buffer_m`` + 60 m from
  every zone of the category in their county (all of the city's zones, not
  only the written ones) except during the staged visit, whose point is
  45 m deep in one zone and more than ``buffer_m`` + 60 m from the others.
  A ``category_approach`` person's one rule is every entertainment venue of
  the county with a 100 m buffer; a venue is placed for them half the
  buffer from a stop 1-4 km from where they are, clear of their day by
  more than the buffer plus 60 m and 400 m from the days of the category
  persons staged before them (those staged after keep the buffer plus 60 m
  from it).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Point

from simulators.caseconfig import VIOLATION_INTERVAL_S, SimConfig
from simulators.city import City, ExclusionZone
from simulators.people import Person, Segment, _daytime_stay, _routine_geom, sample_in

CASEWORK_KINDS: tuple[str, ...] = (
    "school_hours", "school_evening", "school_at_start",
    "widen_day", "widen_night", "widen_at_start",
    "leave_travel", "leave_late",
    "positioning_reminder", "positioning_ends",
    "category_county", "category_other", "category_approach",
)
"""Casework scenario kinds (see the module docstring)."""

CASEWORK_SILENT: tuple[str, ...] = ("school_evening", "widen_day", "leave_travel")
"""Casework persons who must raise nothing at all."""

CASEWORK_SHARES: dict[str, float] = {k: 0.003 for k in CASEWORK_KINDS}
"""Default share of persons in each casework scenario."""

SCHOOL_HOURS = ("07:00", "18:00")
WIDE_HOURS = ("08:00", "18:00")
SCHOOL_BUFFER_M = 100.0
CATEGORY_BUFFER_M = 0.0
CATEGORY_APPROACH_BUFFER_M = 100.0
"""The approach buffer of ``cat-entertainment`` for the persons of ``category_approach``."""
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_H = 3600.0


def _weekday(cfg: SimConfig) -> int:
    return dt.date.fromisoformat(cfg.day).weekday()


def _minute(t: float) -> float:
    return float(round(t / 60.0) * 60)


def _far_from(geom: Any, zones: list[ExclusionZone], margin: float) -> bool:
    if not zones:
        return True
    d = shapely.distance(np.array([z.geom for z in zones]), geom)
    return bool(np.all(d > margin))


def _deep(z: ExclusionZone, depth: float) -> tuple[float, float] | None:
    if z.radius_m is not None:
        return z.center if z.radius_m >= depth + 5.0 else None
    inner = z.geom.buffer(-depth)
    if inner.is_empty:
        return None
    pt = inner.representative_point()
    return float(pt.x), float(pt.y)


def _own_zones(city: City, p: Person) -> list[tuple[ExclusionZone, float]]:
    by_id = {z.zone_id: z for z in city.zones}
    return [(by_id[zid], buf) for _, zid, buf in p.exclusions if zid in by_id]


def _clear_of_own(city: City, p: Person, pt: tuple[float, float]) -> bool:
    return all(shapely.distance(z.geom, Point(pt)) > buf + 60.0 for z, buf in _own_zones(city, p))


def _away_point(rng: np.random.Generator, city: City, p: Person, near: tuple[float, float],
                safe: dict[str, Any]) -> tuple[float, float] | None:
    """A point 1-9 km from ``near``, deep in another district's core."""
    own = city.district(p.district).geom.buffer(300.0)
    others = [safe[d.code] for d in city.districts if d.code != p.district]
    for _ in range(60):
        ang = rng.uniform(0, 2 * math.pi)
        r = rng.uniform(1000, 9000)
        q = (near[0] + r * math.cos(ang), near[1] + r * math.sin(ang))
        if not own.contains(Point(q)) and any(o.contains(Point(q)) for o in others) \
                and _clear_of_own(city, p, q):
            return q
    return None


def _pick_school(rng: np.random.Generator, city: City, p: Person, near: tuple[float, float],
                 buffer: float, district: str | None) -> tuple[ExclusionZone, tuple[float, float]] | None:
    """A school (of ``district``, any when None) near ``near``, far from the routine."""
    path = _routine_geom(p)
    cands = [z for z in city.zones if z.category == "school"
             and (district is None or z.district == district)
             and math.hypot(z.center[0] - near[0], z.center[1] - near[1]) < 4000.0]
    order = rng.permutation(len(cands))
    for k in order[:40]:
        z = cands[int(k)]
        if shapely.distance(z.geom, path) <= buffer + 60.0:
            continue
        pt = _deep(z, 45.0)
        if pt is None or not city.district(z.district).core.contains(Point(pt)):
            continue
        return z, pt
    return None


def _circle_around(p: Person, extra: list[tuple[float, float]], margin: float) -> float:
    """Radius of a circle around home holding the whole day and ``extra``."""
    xs = np.concatenate([p.traj.x, [q[0] for q in extra]])
    ys = np.concatenate([p.traj.y, [q[1] for q in extra]])
    return float(np.max(np.hypot(xs - p.home[0], ys - p.home[1]))) + margin


def stage(rng: np.random.Generator, cfg: SimConfig, city: City, persons: list[Person],
          safe: dict[str, Any]) -> None:
    """Plan the schedule, leave and positioning scenarios (before exclusions are chosen)."""
    shares = {**CASEWORK_SHARES, **{k: v for k, v in cfg.shares if k in CASEWORK_SHARES}}
    free = [p for p in persons if p.scenario is None and p.phone_id is None]
    order = rng.permutation(len(free))
    pos = 0
    for kind in CASEWORK_KINDS:
        if kind.startswith("category_"):
            continue
        count = max(1, round(shares[kind] * len(persons))) if shares[kind] > 0 else 0
        done = tries = 0
        while done < count and pos < len(free) and tries < 6 * count + 10:
            p = free[int(order[pos])]
            pos += 1
            tries += 1
            if _stage_one(rng, cfg, city, p, kind, safe):
                p.scenario = kind
                done += 1


def _stage_one(rng: np.random.Generator, cfg: SimConfig, city: City, p: Person, kind: str,
               safe: dict[str, Any]) -> bool:
    v = VIOLATION_INTERVAL_S
    wd = _weekday(cfg)
    if kind.startswith("school_"):
        days = sorted({0, 1, 2, 3, 4, wd})
        windows = [{"days": ",".join(_DAYS[d] for d in days), "start": SCHOOL_HOURS[0],
                    "end": SCHOOL_HOURS[1]}]
        if kind == "school_at_start":
            near = p.home
        else:
            lo_h, hi_h = (9.0, 16.5) if kind == "school_hours" else (18.4, 20.5)
            got = _daytime_stay(rng, p, lo_h, hi_h, 20 * 60)
            if got is None:
                return False
            near = (got[1].x, got[1].y)
        found = _pick_school(rng, city, p, near, SCHOOL_BUFFER_M, p.district)
        if found is None:
            return False
        z, pt = found
        if kind == "school_at_start":
            ws = 7 * _H
            dur = float(rng.uniform(10, 20)) * 60
            p.segments.append(Segment(ws - 20 * 60, ws, pt[0], pt[1], 60.0, 4.0, 10.0, 0.95))
            p.segments.append(Segment(ws, ws + dur, pt[0], pt[1], v, 4.0, 10.0, 0.95,
                                      start_offset=float(rng.uniform(2.0, 12.0))))
        else:
            dur = float(rng.uniform(4, 12)) * 60
            t_b = float(rng.uniform(lo_h * _H, hi_h * _H))
            p.segments.append(Segment(t_b, t_b + dur, pt[0], pt[1], v, 4.0, 10.0, 0.95))
        p.exclusions.append(("excl-1", z.zone_id, SCHOOL_BUFFER_M))
        p.case["windows"] = {"excl-1": windows}
        p.case["used"] = [z.zone_id]
        return True
    if kind.startswith("widen_"):
        wide_days = sorted({5, 6, wd})
        narrow = [{"days": "daily", "start": WIDE_HOURS[1], "end": WIDE_HOURS[0]}]
        rest = [d for d in range(7) if d not in wide_days]
        if rest:
            narrow.append({"days": ",".join(_DAYS[d] for d in rest), "start": WIDE_HOURS[0],
                           "end": WIDE_HOURS[1]})
        if kind == "widen_day":
            t_b = float(rng.uniform(9.0, 15.5)) * _H
            dur = float(rng.uniform(30, 90)) * 60
        elif kind == "widen_night":
            t_b = float(rng.uniform(18.4, 20.0)) * _H
            dur = float(rng.uniform(10, 25)) * 60
        else:
            t_b = 17 * _H + 35 * 60
            dur = float(rng.uniform(15, 30)) * 60
        nx, ny = p.traj.position_at(np.array([t_b]))
        q = _away_point(rng, city, p, (float(nx[0]), float(ny[0])), safe)
        if q is None:
            return False
        if kind == "widen_at_start":
            ws = 18 * _H
            p.segments.append(Segment(t_b, ws, q[0], q[1], 60.0, 4.0, 10.0, 0.95))
            p.segments.append(Segment(ws, ws + dur, q[0], q[1], v, 4.0, 10.0, 0.95,
                                      start_offset=float(rng.uniform(2.0, 12.0))))
        else:
            p.segments.append(Segment(t_b, t_b + dur, q[0], q[1], v, 4.0, 10.0, 0.95))
        zid = f"work-{p.person_id}"
        p.case["windows"] = {"incl": narrow}
        p.case["rules"] = [{"id": "incl-work", "type": "inclusion", "zone": zid,
                            "windows": [{"days": ",".join(_DAYS[d] for d in wide_days),
                                         "start": WIDE_HOURS[0], "end": WIDE_HOURS[1]}]}]
        p.case["circles"] = [(zid, p.home[0], p.home[1], _circle_around(p, [q], 1500.0),
                              {"name": f"approved work area of {p.person_id}", "category": "work_area",
                               "jurisdiction": p.district})]
        return True
    if kind.startswith("leave_"):
        t_from = _minute(float(rng.uniform(7.5, 9.0)) * _H)
        until = _minute(float(rng.uniform(15.0, 17.0)) * _H)
        t0 = t_from + float(rng.uniform(20, 60)) * 60
        if kind == "leave_late":
            t0 = t0 - ((until - t0) % v) + 7.5  # no fix within 5 s of `until`
            t1 = until + float(rng.uniform(40, 90)) * 60
        else:
            t1 = until - float(rng.uniform(30, 60)) * 60
        nx, ny = p.traj.position_at(np.array([t0]))
        q = _away_point(rng, city, p, (float(nx[0]), float(ny[0])), safe)
        if q is None:
            return False
        p.segments.append(Segment(t0, t1, q[0], q[1], v, 4.0, 10.0, 0.95))
        ex_id = f"L-{cfg.day[:4]}-{p.idx + 1:05d}"
        zid = f"leave-area-{p.person_id}"
        p.case["leave"] = {"id": ex_id, "from": t_from, "until": until, "zone": zid}
        p.case["circles"] = [(zid, p.home[0], p.home[1], _circle_around(p, [q], 1500.0),
                              {"name": f"approved travel area of {p.person_id}", "category": "leave_area",
                               "jurisdiction": p.district})]
        return True
    if kind == "positioning_reminder":
        k = int(rng.integers(1, 8))
        t = _minute(float(rng.uniform(9.0, 17.0)) * _H)
        p.case["positioning"] = {"until": t + k * 86_400.0, "days": int(rng.integers(30, 80)),
                                 "remind_days": k, "remind_at": t}
        return True
    if kind == "positioning_ends":
        t_end = _minute(float(rng.uniform(12.0, 15.0)) * _H)
        got = _daytime_stay(rng, p, 9.0, t_end / _H - 1.0, 20 * 60)
        if got is None:
            return False
        t_b, stay = got
        found = _pick_school(rng, city, p, (stay.x, stay.y), 150.0, p.district)
        if found is None:
            return False
        z, pt = found
        dur = float(rng.uniform(4, 10)) * 60
        if t_b + dur > t_end - 30 * 60:
            return False
        t_after = t_end + float(rng.uniform(30, 180)) * 60
        p.segments.append(Segment(t_b, t_b + dur, pt[0], pt[1], v, 4.0, 10.0, 0.95))
        p.segments.append(Segment(t_after, t_after + dur, pt[0], pt[1], v, 4.0, 10.0, 0.95))
        p.exclusions.append(("excl-1", z.zone_id, 150.0))
        p.case["used"] = [z.zone_id]
        p.case["positioning"] = {"until": t_end, "days": int(rng.integers(30, 80)), "remind_days": 7}
        p.case["valid_from"] = -3 * 86_400.0  # the 7-day reminder fell before this order version
        return True
    raise ValueError(kind)  # pragma: no cover


def stage_categories(rng: np.random.Generator, cfg: SimConfig, city: City, persons: list[Person],
                     safe: dict[str, Any]) -> list[tuple[str, float, float, float, dict[str, Any]]]:
    """Plan the category scenarios (after exclusions and ordinary contact pairs are chosen).

    Returns the entertainment zones to write (circles far from every person
    with category rules).
    """
    shares = {**CASEWORK_SHARES, **{k: v for k, v in cfg.shares if k in CASEWORK_SHARES}}
    schools: dict[str, list[ExclusionZone]] = {}
    for z in city.zones:
        if z.category == "school":
            schools.setdefault(z.district, []).append(z)
    free = [p for p in persons if p.scenario is None and p.partner is None and p.phone_id is None]
    order = rng.permutation(len(free))
    pos = 0
    chosen: list[Person] = []
    for kind in ("category_county", "category_other"):
        count = max(1, round(shares[kind] * len(persons))) if shares[kind] > 0 else 0
        buffer = CATEGORY_BUFFER_M
        done = 0
        while done < count and pos < len(free):
            p = free[int(order[pos])]
            pos += 1
            own = schools.get(p.district, [])
            path = _routine_geom(p)
            if not _far_from(path, own, buffer + 60.0):
                continue
            got = _daytime_stay(rng, p, 9.0, 18.5, 25 * 60)
            if got is None:
                continue
            t_b, stay = got
            if kind == "category_county":
                cands = [z for z in own if math.hypot(z.center[0] - stay.x, z.center[1] - stay.y) < 4000]
                dur = float(rng.uniform(4, 12)) * 60
            else:
                cands = [z for code, zs in schools.items() if code != p.district for z in zs
                         if 1000 < math.hypot(z.center[0] - stay.x, z.center[1] - stay.y) < 9000]
                dur = float(rng.uniform(10, 20)) * 60
            pt = None
            for k in rng.permutation(len(cands))[:30]:
                z = cands[int(k)]
                q = _deep(z, 45.0)
                if q is None or not safe[z.district].contains(Point(q)):
                    continue
                others = [o for o in own if o is not z]
                if not _far_from(Point(q), others, buffer + 60.0) or not _clear_of_own(city, p, q):
                    continue
                if any(zid == z.zone_id for _, zid, _ in p.exclusions):
                    continue
                pt = q
                break
            if pt is None:
                continue
            p.segments.append(Segment(t_b, t_b + dur, pt[0], pt[1], VIOLATION_INTERVAL_S, 4.0, 10.0, 0.95))
            p.scenario = kind
            p.case["used"] = [z.zone_id]
            p.case["rules"] = [
                {"id": "cat-school", "type": "exclusion", "category": "school", "area": "county",
                 **({"buffer_m": buffer} if buffer > 0 else {})},
                {"id": "cat-entertainment", "type": "exclusion", "category": "entertainment",
                 "area": "county"},
            ]
            chosen.append(p)
            done += 1
    venues = _stage_approach(rng, city, free, order, shares, len(persons), chosen, safe)
    return venues + _entertainment(rng, city, chosen)


def _stage_approach(rng: np.random.Generator, city: City, free: list[Person], order: Any,
                    shares: dict[str, float], n_persons: int, chosen: list[Person],
                    safe: dict[str, Any]) -> list[tuple[str, float, float, float, dict[str, Any]]]:
    """Plan ``category_approach``: each person's one rule is ``cat-entertainment``
    with a buffer, and a venue of their county is placed half the buffer from
    where they stop for a while, so that only that stop comes within the
    buffer. Returns those venues; appends the persons to ``chosen``."""
    kind = "category_approach"
    count = max(1, round(shares[kind] * n_persons)) if shares[kind] > 0 else 0
    buffer = CATEGORY_APPROACH_BUFFER_M
    earlier = [_routine_geom(q) for q in chosen]  # the other category persons' days
    venues: list[tuple[str, float, float, float, dict[str, Any]]] = []
    placed: list[tuple[str, Any]] = []  # (county, circle) of the venues so far
    done = 0
    for idx in order:
        if done >= count:
            break
        p = free[int(idx)]
        if p.scenario is not None:
            continue
        got = _daytime_stay(rng, p, 9.0, 18.5, 25 * 60)
        if got is None:
            continue
        t_b, stay = got
        near = sample_in(rng, city.district(p.district).core, 1, (stay.x, stay.y), 1000.0, 4000.0)
        if not near:
            continue
        q = near[0]
        if not safe[p.district].contains(Point(q)) or not _clear_of_own(city, p, q):
            continue
        r = float(rng.uniform(30, 60))
        ang = float(rng.uniform(0, 2 * math.pi))
        c = (q[0] + (r + buffer / 2) * math.cos(ang), q[1] + (r + buffer / 2) * math.sin(ang))
        venue = Point(c).buffer(r, 64)
        path = _routine_geom(p)
        # the day keeps clear of the new venue and of the county's earlier
        # ones; the other category persons keep far from it
        if shapely.distance(path, venue) <= buffer + 60.0:
            continue
        if any(cty == p.district and shapely.distance(Point(q).union(path), v) <= buffer + 60.0
               for cty, v in placed):
            continue
        if any(shapely.distance(g, venue) <= 400.0 for g in earlier):
            continue
        dur = float(rng.uniform(4, 12)) * 60
        p.segments.append(Segment(t_b, t_b + dur, q[0], q[1], VIOLATION_INTERVAL_S, 4.0, 10.0, 0.95))
        zid = f"Z-ent-{p.district}-a{done + 1}"
        venues.append((zid, c[0], c[1], r, {"name": zid, "category": "entertainment",
                                            "jurisdiction": p.district}))
        placed.append((p.district, Point(c).buffer(r, 64)))
        p.scenario = kind
        p.case["used"] = [zid]
        p.case["rules"] = [{"id": "cat-entertainment", "type": "exclusion", "category": "entertainment",
                            "area": "county", "buffer_m": buffer}]
        earlier.append(_routine_geom(p))
        chosen.append(p)
        done += 1
    return venues


def _entertainment(rng: np.random.Generator, city: City,
                   chosen: list[Person]) -> list[tuple[str, float, float, float, dict[str, Any]]]:
    """Two entertainment venues per district, > 400 m from every person with category rules."""
    keep_away = shapely.union_all([_routine_geom(p) for p in chosen]) if chosen else None
    out: list[tuple[str, float, float, float, dict[str, Any]]] = []
    for d in city.districts:
        placed = 0
        for _ in range(200):
            if placed == 2:
                break
            minx, miny, maxx, maxy = d.core.bounds
            x, y = float(rng.uniform(minx, maxx)), float(rng.uniform(miny, maxy))
            if not d.core.contains(Point(x, y)):
                continue
            if keep_away is not None and shapely.distance(keep_away, Point(x, y)) <= 400.0:
                continue
            placed += 1
            zid = f"Z-ent-{d.code}-{placed}"
            out.append((zid, x, y, float(rng.uniform(30, 60)),
                        {"name": zid, "category": "entertainment", "jurisdiction": d.code}))
    return out


def order_parts(p: Person, day0: int, iso: Any) -> dict[str, Any]:
    """What a casework scenario adds to a person's order (``iso`` formats epoch ms)."""
    out: dict[str, Any] = {}
    leave = p.case.get("leave")
    if leave is not None:
        out["exemptions"] = [{
            "id": leave["id"], "from": iso(day0 + int(leave["from"] * 1000)),
            "until": iso(day0 + int(leave["until"] * 1000)), "rules": ["incl"],
            "temporary_rules": [{"id": f"{leave['id']}/t1", "type": "inclusion", "zone": leave["zone"]}],
            "reason": "medical", "requested_by": "officer-li", "approved_by": "chief-wang",
            "level": "office",
        }]
    term = p.case.get("positioning")
    if term is not None:
        until = day0 + int(term["until"] * 1000)
        out["positioning"] = {
            "grounds": "violated_prohibition_order", "from": iso(until - term["days"] * 86_400_000),
            "until": iso(until), "approved_by": "chief-wang", "remind_days": term["remind_days"],
        }
    return out


def truth_for(p: Person, ms: Any, s_all: Any, day0: int, whole: bool) -> list[dict[str, Any]]:
    """Expected alerts of a casework person from their rendered fixes (ms after ``day0``)."""
    from simulators.truth import _confirm_window, _exp

    sc = p.scenario
    assert sc is not None
    incl_dwell = p.dwell.get("incl", 30.0)

    def at(t: float) -> int:
        return round(t) * 1000 if whole else round(t * 1000)

    def first_seg(dwell: float) -> tuple[int, int]:
        return _confirm_window([int(v) for v in ms[s_all == 0]], dwell)

    def from_start(ws: int, dwell: float) -> int:
        return _confirm_window([int(v) for v in ms[(s_all >= 0) & (ms >= ws)]], dwell)[1]

    if sc in CASEWORK_SILENT:
        return []
    if sc in ("school_hours", "positioning_ends"):
        lo, hi = first_seg(30.0)
        return [_exp(p, "excl-1", "exclusion_entered", day0 + lo, day0 + hi, sc)]
    if sc == "category_county":
        lo, hi = first_seg(30.0)
        return [_exp(p, "cat-school", "exclusion_entered", day0 + lo, day0 + hi, sc)]
    if sc == "category_approach":
        lo, hi = first_seg(30.0)
        return [_exp(p, "cat-entertainment", "exclusion_approach", day0 + lo, day0 + hi, sc)]
    if sc in ("widen_night", "category_other"):
        lo, hi = first_seg(incl_dwell)
        return [_exp(p, "incl", "inclusion_left", day0 + lo, day0 + hi, sc)]
    if sc == "school_at_start":
        ws = int(7 * _H * 1000)
        return [_exp(p, "excl-1", "exclusion_entered", day0 + ws, day0 + from_start(ws, 30.0), sc)]
    if sc == "widen_at_start":
        ws = int(18 * _H * 1000)
        return [_exp(p, "incl", "inclusion_left", day0 + ws, day0 + from_start(ws, incl_dwell), sc)]
    if sc == "leave_late":
        leave = p.case["leave"]
        u = int(leave["until"] * 1000)
        return [_exp(p, leave["id"], "leave_overdue", day0 + u, day0 + u, sc),
                _exp(p, "incl", "inclusion_left", day0 + u, day0 + from_start(u, incl_dwell), sc)]
    if sc == "positioning_reminder":
        t = day0 + at(p.case["positioning"]["remind_at"])
        return [_exp(p, "positioning", "positioning_term_ending", t, t, sc)]
    raise AssertionError(sc)  # pragma: no cover
