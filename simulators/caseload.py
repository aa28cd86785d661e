"""A simulated day of a supervision caseload, with its ground truth.

:func:`generate` builds a city (:mod:`simulators.city`), gives every person
an order and a daily routine (:mod:`simulators.routine`), injects breach
scenarios into a chosen share of persons and adversarial cases into others,
and renders the telemetry in delivery order together with the alerts a
correct engine must raise.

How the scenarios stay unambiguous under the contract
-----------------------------------------------------
* Position error never exceeds the reported ``accuracy_m`` (the error is
  drawn as a fraction of the accuracy, capped at 0.95). So a fix whose true
  position is on the permitted side of a boundary can never be *certainly*
  on the wrong side, whatever the noise: ordinary people, urban-canyon
  outliers (error up to hundreds of metres, reported with an even larger
  accuracy) and indoor fixes raise nothing.
* Routines keep every true position at least 250 m inside the person's
  district and more than ``buffer_m`` + 60 m from their exclusion zones,
  and no-contact partners more than ``distance_m`` + 60 m apart at any two
  times within 150 s of each other.
* A breach puts the true position deep in the violating region (at least
  45 m past the boundary with accuracy 4-10 m, or in the middle of the
  approach band), the device reports every 15 s while in violation, and the
  person arrives and leaves between two fixes, so the fixes are either
  certainly violating or certainly not and no fix lands in an approach band
  on the way in or out.
* The expected ``opened_at`` window runs from the first certainly violating
  fix (the window start for a person who is out when a curfew starts, the
  second person's arrival for a contact) to the first fix that completes
  two consecutive certain fixes spanning the rule's dwell (contract default:
  at most 60 s later). Signal loss, tamper, removed, sos, battery_low and
  power_off are exact instants.
* Boundary-jitter persons stand within 3 m of a boundary with 15-30 m
  accuracy and errors of at most half of it, so every fix is uncertain:
  they must raise nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import LineString, MultiPoint, Point

from geofence.model import format_ts
from simulators import routine
from simulators.city import (
    NANJING_DISTRICTS,
    City,
    ExclusionZone,
    build_districts,
    circle_feature,
    district_features,
    exclusion_features,
    place_zones,
)
from simulators.frame import LocalFrame

BREACH_KINDS: tuple[str, ...] = (
    "exclusion", "approach", "inclusion", "curfew", "curfew_late", "contact",
    "signal_loss", "tamper", "removed", "sos", "battery_low", "backfill",
)
ADVERSARIAL_KINDS: tuple[str, ...] = ("jitter", "teleport", "expired")
VIDEO_KINDS: tuple[str, ...] = ("video_exclusion", "video_opens", "video_separation", "video_low_conf")
DUAL_KINDS: tuple[str, ...] = ("dual_breach", "dual_outage")
EXTRA_KINDS: tuple[str, ...] = VIDEO_KINDS + DUAL_KINDS
"""Scenarios added after the first acceptance run; assigned after the others."""
SILENT_KINDS = (*ADVERSARIAL_KINDS, "video_low_conf")
ALL_KINDS: tuple[str, ...] = BREACH_KINDS + ADVERSARIAL_KINDS + EXTRA_KINDS
FACILITY_EVENTS: tuple[str, ...] = ("perimeter_breach", "fight", "crowd", "fall", "loitering")
FACE_MATCH_MIN_CONFIDENCE = 0.8   # contract default: below it a face match raises nothing
SEPARATION_M = 500.0              # contract: camera this far from the wristband's fix
CAMERA_QUIET_S = 300.0            # engine default: a facility alert clears after this quiet

DEFAULT_SHARES: dict[str, float] = {
    **{k: 0.02 for k in BREACH_KINDS},
    "contact": 0.04,  # pairs: 2 % of persons are in a meeting pair
    "jitter": 0.03,
    "teleport": 0.01,
    "expired": 0.005,
    **{k: 0.005 for k in VIDEO_KINDS},
    **{k: 0.01 for k in DUAL_KINDS},
}

CURFEWS: tuple[tuple[str, str], ...] = (("22:00", "06:00"), ("23:00", "05:00"), ("21:30", "06:30"))
VIOLATION_INTERVAL_S = 15.0


@dataclass(frozen=True)
class SimConfig:
    """What to simulate (see ``wardstream simulate generate --help``)."""

    persons: int = 1000
    seed: int = 1
    lat: float = 32.06
    lon: float = 118.79
    day: str = "2026-11-22"
    timezone: str = "Asia/Shanghai"
    interval_s: float = 60.0
    city_radius_m: float = 15_000.0
    district_detail_m: float = 12.0
    shares: tuple[tuple[str, float], ...] = tuple(DEFAULT_SHARES.items())
    outlier_rate: float = 0.01
    invalid_indoor_rate: float = 0.04
    offline_person_rate: float = 0.04
    duplicate_rate: float = 0.003
    reorder_person_rate: float = 0.05
    malformed_lines: int | None = None   # default: max(8, persons // 100)
    admin_prefix: str = "3201"
    front_load_s: float | None = None    # live demo: one of each breach starts right after this
    incident_window_s: float | None = None  # live demo: the other breaches start within this long after
    open_validity: bool = False          # demo: orders valid 2024..2100 instead of around the day
    fixed_accuracy_m: float | None = None  # profile jt808: every valid fix reports this accuracy
    whole_seconds: bool = False          # profile jt808: BCD times carry whole seconds only
    facility_cameras: int | None = None  # cameras with facility incidents (default persons // 250, >= 2)

    @classmethod
    def for_profile(cls, profile: str, **kw: Any) -> SimConfig:
        """``full`` (OsmAnd, Kafka, files) or ``jt808`` (what JT/T 808 can carry)."""
        if profile == "jt808":
            # JT/T 808 has no accuracy field: the gateway assumes the contract default
            # (10 m), so errors stay below 9.5 m and urban-canyon outliers are left out.
            kw.setdefault("fixed_accuracy_m", 10.0)
            kw.setdefault("whole_seconds", True)
            kw.setdefault("outlier_rate", 0.0)
            # JT/T 808 carries no video analytics: no video scenarios, no facility cameras
            shares = dict(kw.get("shares", tuple(DEFAULT_SHARES.items())))
            shares.update({k: 0.0 for k in VIDEO_KINDS})
            kw["shares"] = tuple(shares.items())
            kw.setdefault("facility_cameras", 0)
        elif profile != "full":
            raise ValueError(f"unknown profile {profile!r}")
        return cls(**kw)


@dataclass
class Segment:
    """A stretch of time overriding the routine: a breach, a jitter, a meeting..."""

    t0: float
    t1: float
    x: float
    y: float
    interval: float
    acc_lo: float
    acc_hi: float
    noise_cap: float
    wander_m: float = 3.0
    start_offset: float = 0.0


@dataclass
class Person:
    """One supervised person and everything the generator decided for them."""

    idx: int
    person_id: str
    device_id: str
    district: str
    home: tuple[float, float]
    home_r: float
    traj: routine.Trajectory
    curfew: tuple[str, str]
    curfew_days: str = "daily"
    after_s: int = 900
    scenario: str | None = None
    segments: list[Segment] = field(default_factory=list)
    exclusions: list[tuple[str, str, float]] = field(default_factory=list)  # rule_id, zone, buffer
    partner: str | None = None
    contact_distance: float = 200.0
    events: list[tuple[float, str]] = field(default_factory=list)
    outage: tuple[float, float] | None = None      # no messages at all
    offline: tuple[float, float] | None = None     # fixes stored and backfilled at t1
    teleports: list[float] = field(default_factory=list)
    valid_until_s: float | None = None
    battery0: float = 90.0
    drain_per_h: float = 2.5
    extra_points: list[tuple[float, float]] = field(default_factory=list)
    expected: list[dict[str, Any]] = field(default_factory=list)
    reorder: bool = False
    dwell: dict[str, float] = field(default_factory=dict)
    phone_id: str | None = None                    # a second device (phone) on the same order
    phone_outages: list[tuple[float, float]] = field(default_factory=list)
    faces: list[tuple[float, float, float, float]] = field(default_factory=list)  # t, x, y, confidence


@dataclass
class Caseload:
    """The generated day: zones, orders, telemetry lines and ground truth."""

    config: SimConfig
    city: City
    persons: list[Person]
    zones: dict[str, Any]
    orders: list[dict[str, Any]]
    truth: dict[str, Any]
    day_start_ms: int
    messages: Messages

    def lines(self) -> Iterator[bytes]:
        """Telemetry JSONL lines in delivery order."""
        return self.messages.lines()


# --------------------------------------------------------------------------- helpers


def _day_start_ms(cfg: SimConfig) -> int:
    d = dt.date.fromisoformat(cfg.day)
    start = dt.datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(cfg.timezone))
    return int(start.timestamp() * 1000)


def _hhmm_s(text: str) -> float:
    h, m = text.split(":")
    return int(h) * 3600.0 + int(m) * 60.0


def _sample_in(
    rng: np.random.Generator, geom: Any, n: int, near: tuple[float, float] | None = None,
    rmin: float = 0.0, rmax: float = 0.0,
) -> list[tuple[float, float]]:
    """``n`` grid-snapped points inside ``geom`` (optionally rmin..rmax from ``near``)."""
    out: list[tuple[float, float]] = []
    minx, miny, maxx, maxy = geom.bounds
    for _ in range(200):
        if near is None:
            xs = rng.uniform(minx, maxx, 64)
            ys = rng.uniform(miny, maxy, 64)
        else:
            ang = rng.uniform(0, 2 * math.pi, 64)
            r = rng.uniform(rmin, rmax, 64)
            xs = near[0] + r * np.cos(ang)
            ys = near[1] + r * np.sin(ang)
        xs, ys = routine.snap(xs), routine.snap(ys)
        ok = shapely.contains_xy(geom, xs, ys)
        out.extend((float(a), float(b)) for a, b in zip(xs[ok], ys[ok], strict=True))
        if len(out) >= n:
            return out[:n]
    raise RuntimeError("could not place points in a district core; enlarge the city")


# --------------------------------------------------------------------------- generation


def generate(cfg: SimConfig) -> Caseload:
    """Generate a caseload deterministically from ``cfg`` (same config, same bytes)."""
    rng = np.random.default_rng(cfg.seed)
    _TAKEN.clear()
    frame = LocalFrame(cfg.lat, cfg.lon)
    if (cfg.lat, cfg.lon) == (32.06, 118.79) and cfg.admin_prefix == "3201":
        codes = NANJING_DISTRICTS
    else:
        codes = tuple((f"{cfg.admin_prefix}{i:02d}", f"District {i:02d}") for i in range(2, 13))
    districts = build_districts(rng, frame, cfg.city_radius_m, codes, cfg.district_detail_m, 800.0)
    city = City(frame, cfg.city_radius_m, districts)
    n = cfg.persons
    place_zones(rng, city, max(20, int(n * 0.3)), max(20, int(n * 0.2)), max(10, int(n * 0.25)))
    safe = {d.code: d.geom.buffer(-250.0) for d in districts}
    for g in safe.values():
        shapely.prepare(g)
    persons = _persons(rng, cfg, city, safe)
    shares = dict(cfg.shares)
    _assign_scenarios(rng, cfg, city, persons, shares, safe)
    _choose_exclusions(rng, city, persons)
    _pair_contacts(rng, persons)
    day0 = _day_start_ms(cfg)
    messages, expected = _render(rng, cfg, city, persons, day0)
    orders = _orders(cfg, persons, day0)
    used = {z for p in persons for _, z, _ in p.exclusions}
    features = district_features(city) + exclusion_features(city, used)
    features += [
        circle_feature(frame, f"home-{p.person_id}", p.home[0], p.home[1], p.home_r,
                       {"name": f"home of {p.person_id}", "category": "home", "jurisdiction": p.district})
        for p in persons
    ]
    zones = {"type": "FeatureCollection", "features": features,
             "wardstream_simulation": _config_dict(cfg)}
    silent = {k: sorted(p.person_id for p in persons if p.scenario == k) for k in SILENT_KINDS}
    truth = {
        "meta": {
            "seed": cfg.seed, "persons": n, "day": cfg.day, "timezone": cfg.timezone,
            "center": [cfg.lat, cfg.lon],
            "day_start": format_ts(day0), "engine_assumptions": {
                "lateness_s": 120, "dwell_s": 30, "confirm_fixes": 2, "contact_max_age_s": 120},
            "scenarios": {k: sum(1 for p in persons if p.scenario == k) for k in ALL_KINDS},
            "two_device_persons": sum(1 for p in persons if p.phone_id is not None),
            "facility_alerts": sum(1 for e in expected if e["scenario"] == "facility"),
            "messages": messages.count, "lines": messages.line_count,
        },
        "expected": sorted(expected, key=lambda e: (e["opened_at"][0], e["person_id"], e["rule_id"])),
        "silent_persons": silent,
        "rejected": messages.malformed_reasons,
    }
    return Caseload(cfg, city, persons, zones, orders, truth, day0, messages)


def _persons(
    rng: np.random.Generator, cfg: SimConfig, city: City, safe: dict[str, Any]
) -> list[Person]:
    weights = np.array([d.core.area for d in city.districts])
    weights /= weights.sum()
    out: list[Person] = []
    for i in range(cfg.persons):
        d = city.districts[int(rng.choice(len(weights), p=weights))]
        worker = bool(rng.random() < 0.7)
        for _attempt in range(40):
            home = _sample_in(rng, d.core, 1)[0]
            places = _sample_in(rng, d.core, 3, home, 400.0, 4500.0)
            traj = routine.build(rng, home, places, worker)
            line = LineString(np.column_stack([traj.x, traj.y]))
            if safe[d.code].contains(line):
                break
        else:  # pragma: no cover - cores are far from the boundary
            raise RuntimeError(f"no routine fits district {d.code}")
        cf = CURFEWS[int(rng.integers(len(CURFEWS)))]
        days = "daily" if rng.random() < 0.8 else "mon,tue,wed,thu,fri,sat,sun"
        out.append(Person(
            idx=i, person_id=f"P-{i + 1:05d}", device_id=f"0138{i + 1:08d}", district=d.code,
            home=home, home_r=float(rng.uniform(60, 110)), traj=traj, curfew=cf, curfew_days=days,
            after_s=900 if rng.random() < 0.7 else 1800,
            battery0=float(rng.uniform(80, 100)), drain_per_h=float(rng.uniform(1.2, 2.4)),
        ))
        if rng.random() < 0.15:
            out[-1].dwell["incl"] = 60.0
    return out


def _routine_geom(p: Person) -> Any:
    """Everything a person's fixes come near, for distance checks."""
    parts: list[Any] = [LineString(np.column_stack([p.traj.x, p.traj.y]))]
    pts = [(s.x, s.y) for s in p.segments] + p.extra_points
    if pts:
        parts.append(MultiPoint(pts))
    return shapely.union_all(parts) if len(parts) > 1 else parts[0]


def _daytime_stay(rng: np.random.Generator, p: Person, lo_h: float, hi_h: float,
                  min_len: float, at: float | None = None) -> tuple[float, routine.Stay] | None:
    """A time inside a daytime stay with ``min_len`` seconds of it left.

    With ``at`` (a staged breach) that time or None: a person on the move
    then is left for another, so a staged breach starts when it was staged.
    """
    if at is not None:
        for s in p.traj.stays:
            if s.t0 + 120 <= at and at + min_len + 120 <= s.t1:
                return at, s
        return None
    cands = [s for s in p.traj.stays
             if s.t1 - s.t0 > min_len + 300 and s.t0 < hi_h * 3600 and s.t1 > lo_h * 3600]
    if not cands:
        return None
    s = cands[int(rng.integers(len(cands)))]
    lo = max(s.t0 + 120, lo_h * 3600)
    hi = min(s.t1 - min_len - 120, hi_h * 3600)
    if hi <= lo:
        return None
    return float(rng.uniform(lo, hi)), s


def _deep_point(z: ExclusionZone, depth: float) -> tuple[float, float] | None:
    """A point at least ``depth`` metres inside zone ``z``."""
    if z.radius_m is not None:
        return z.center if z.radius_m >= depth else None
    inner = z.geom.buffer(-depth)
    if inner.is_empty:
        return None
    pt = inner.representative_point()
    return float(pt.x), float(pt.y)


def _ring_point(z: ExclusionZone, offset: float, rng: np.random.Generator) -> tuple[float, float]:
    """A point ``offset`` metres outside zone ``z`` (0 = on its boundary)."""
    ang = float(rng.uniform(0, 2 * math.pi))
    if z.radius_m is not None:
        r = z.radius_m + offset
        return z.center[0] + r * math.cos(ang), z.center[1] + r * math.sin(ang)
    ring = z.geom.buffer(offset, quad_segs=16).exterior if offset > 0 else z.geom.exterior
    pt = ring.interpolate(float(rng.uniform(0, 1)), normalized=True)
    return float(pt.x), float(pt.y)


def _zone_tree(city: City) -> shapely.STRtree:
    return shapely.STRtree([z.geom for z in city.zones])


def _assign_scenarios(
    rng: np.random.Generator, cfg: SimConfig, city: City, persons: list[Person],
    shares: dict[str, float], safe: dict[str, Any],
) -> None:
    n = len(persons)
    order = rng.permutation(n)
    pos = 0
    used: set[int] = set()
    tree = _zone_tree(city)
    for kind in ALL_KINDS:
        share = shares.get(kind, 0.0)
        count = round(share * n)
        if share > 0 and count == 0 and n >= 40:
            count = 1
        if kind == "contact":
            count += count % 2
        if kind == "contact":
            chosen: list[Person] = []
            while len(chosen) < count and pos < n:
                a = persons[int(order[pos])]
                pos += 1
                if a.idx in used:
                    continue
                # a partner from the same district, further down the order
                for j in range(pos, n):
                    b = persons[int(order[j])]
                    if b.idx not in used and b.district == a.district:
                        used.update((a.idx, b.idx))
                        chosen.extend((a, b))
                        break
            _contact_meetings(rng, chosen, safe)
            continue
        done = 0
        tries = 0
        while done < count and pos < n and tries < 6 * count + 10:
            p = persons[int(order[pos])]
            pos += 1
            if p.idx in used:
                continue
            tries += 1
            at = None
            if cfg.front_load_s is not None and done == 0:
                at = cfg.front_load_s + float(rng.uniform(2, 20))
            elif cfg.front_load_s is not None and cfg.incident_window_s:
                # the rest follow one another through the window, so the demo keeps moving
                at = cfg.front_load_s + 60.0 + float(rng.uniform(0, cfg.incident_window_s))
            if at is not None:
                at %= 86_400.0  # a window running past midnight goes on in the next (looped) day
            if _inject(rng, kind, p, city, tree, safe, at):
                p.scenario = kind
                done += 1


def _target_zone(
    rng: np.random.Generator, p: Person, near: tuple[float, float], city: City,
    tree: shapely.STRtree, safe: Any, need_depth: float, buffer: float,
) -> tuple[ExclusionZone, tuple[float, float]] | None:
    """An exclusion zone near ``near``, far from the routine, with a usable point."""
    idx = tree.query(Point(near).buffer(4000.0))
    rng.shuffle(idx)
    path = _routine_geom(p)
    for k in idx[:40]:
        z = city.zones[int(k)]
        if z.district != p.district or (z.category == "victim_home" and z.zone_id in _TAKEN):
            continue
        if shapely.distance(z.geom, path) <= buffer + 60.0:
            continue
        pt = _deep_point(z, need_depth) if need_depth > 0 else _ring_point(z, -need_depth, rng)
        if pt is None or not safe.contains(Point(pt)):
            continue
        if z.category == "victim_home":
            _TAKEN.add(z.zone_id)
        return z, pt
    return None


_TAKEN: set[str] = set()


def _inject(
    rng: np.random.Generator, kind: str, p: Person, city: City, tree: shapely.STRtree,
    safe: dict[str, Any], at: float | None = None,
) -> bool:
    """Plan scenario ``kind`` for person ``p``; False when it does not fit."""
    v = VIOLATION_INTERVAL_S
    if kind in ("video_opens", "video_low_conf", "video_separation"):
        return _inject_face(rng, kind, p, city, tree, safe, at)
    if kind == "dual_outage":
        a = float(rng.uniform(8.0, 9.5)) * 3600
        b = a + p.after_s + 600 + float(rng.uniform(20, 40)) * 60
        c = b + 2 * p.after_s + 1200
        p.phone_id = "0139" + p.device_id[4:]
        p.outage = (b, c)                                  # wristband dark from b
        p.phone_outages = [(a, a + p.after_s + 600),       # phone alone dark, wristband reports
                           (b + p.after_s + 300, c)]       # then both dark
        return True
    if kind in ("exclusion", "approach", "backfill", "expired", "video_exclusion", "dual_breach"):
        span = (14.0, 17.0) if kind == "expired" else (9.0, 19.0)
        got = _daytime_stay(rng, p, *span, 20 * 60, at)
        if got is None:
            return False
        t_b, stay = got
        buffer = 150.0
        depth = 45.0 if kind != "approach" else -buffer / 2
        found = _target_zone(rng, p, (stay.x, stay.y), city, tree, safe[p.district], depth, buffer)
        if found is None:
            return False
        z, pt = found
        dur = float(rng.uniform(4, 12)) * 60
        if kind == "backfill":
            dur = float(rng.uniform(3, 5)) * 60
            p.offline = (t_b - 120.0, t_b + dur + 240.0)
        p.segments.append(Segment(t_b, t_b + dur, pt[0], pt[1], v, 4.0, 10.0, 0.95))
        p.exclusions.append(("excl-1", z.zone_id, buffer))
        if kind == "expired":
            p.valid_until_s = 12 * 3600.0
        if kind == "dual_breach":
            p.phone_id = "0139" + p.device_id[4:]
        if kind == "video_exclusion":
            # a camera inside the zone sees the face after the GPS alert opened (30 s in)
            t_f = t_b + 30.0 + float(rng.uniform(20.0, dur - 90.0))
            ang = float(rng.uniform(0, 2 * math.pi))
            p.faces.append((t_f, pt[0] + 8.0 * math.cos(ang), pt[1] + 8.0 * math.sin(ang),
                            round(float(rng.uniform(0.85, 0.99)), 2)))
        return True
    if kind == "inclusion":
        got = _daytime_stay(rng, p, 9.0, 19.0, 25 * 60, at)
        if got is None:
            return False
        t_b, stay = got
        own = city.district(p.district).geom.buffer(300.0)
        others = [safe[d.code] for d in city.districts if d.code != p.district]
        for _ in range(60):
            ang = rng.uniform(0, 2 * math.pi)
            r = rng.uniform(1000, 9000)
            q = (stay.x + r * math.cos(ang), stay.y + r * math.sin(ang))
            if not own.contains(Point(q)) and any(o.contains(Point(q)) for o in others):
                break
        else:
            return False
        dur = float(rng.uniform(10, 25)) * 60
        p.segments.append(Segment(t_b, t_b + dur, q[0], q[1], v, 4.0, 10.0, 0.95))
        return True
    if kind in ("curfew", "curfew_late"):
        ws, we = (_hhmm_s(c) for c in p.curfew)
        p.curfew_days = "daily"
        q = _sample_in(rng, city.district(p.district).core, 1, p.home, 500.0, 1500.0)[0]
        dur = float(rng.uniform(15, 40)) * 60
        if kind == "curfew":
            # out in the small hours (window started yesterday) or late evening
            evening_ok = ws + 1200 < 86400 - dur - 600
            if evening_ok and rng.random() < 0.5:
                t_b = float(rng.uniform(ws + 1200, 86400 - dur - 600))
            else:
                t_b = float(rng.uniform(0.5, we / 3600 - 1.0) * 3600)
            p.segments.append(Segment(t_b, t_b + dur, q[0], q[1], v, 4.0, 10.0, 0.95))
        else:
            # still out when the window starts; the device drops to 15 s after it
            p.segments.append(Segment(ws - 40 * 60, ws, q[0], q[1], 60.0, 4.0, 10.0, 0.95))
            p.segments.append(Segment(ws, ws + dur, q[0], q[1], v, 4.0, 10.0, 0.95,
                                      start_offset=float(rng.uniform(1.0, 50.0))))
        return True
    if kind == "signal_loss":
        got = _daytime_stay(rng, p, 9.0, 18.0, 0)
        if got is None:
            return False
        t_b = got[0]
        gap = p.after_s + float(rng.uniform(10, 40)) * 60
        p.outage = (t_b, t_b + gap)
        if rng.random() < 0.5:
            p.events.append((t_b, "power_off"))
            p.events.append((t_b + gap, "power_on"))
        return True
    if kind in ("tamper", "removed", "sos"):
        t = float(rng.uniform(8.0, 20.0)) * 3600 if at is None else at
        p.events.append((t, kind))
        return True
    if kind == "battery_low":
        p.battery0 = float(rng.uniform(30, 40))
        p.drain_per_h = float(rng.uniform(2.0, 2.5))
        return True
    if kind == "teleport":
        p.teleports = sorted(float(t) for t in rng.uniform(8, 20, int(rng.integers(2, 5))) * 3600)
        return True
    if kind == "jitter":
        which = ("exclusion", "inclusion", "curfew")[p.idx % 3]
        if which == "curfew":
            ws, we = (_hhmm_s(c) for c in p.curfew)
            ang = float(rng.uniform(0, 2 * math.pi))
            pt = (p.home[0] + p.home_r * math.cos(ang), p.home[1] + p.home_r * math.sin(ang))
            t_b = float(rng.uniform(1800.0, we - 3600.0 - 3000.0))  # small hours
            p.segments.append(Segment(t_b, t_b + 3000.0, pt[0], pt[1], 60.0, 15.0, 30.0, 0.5, 3.0))
            return True
        got = _daytime_stay(rng, p, 9.0, 18.0, 45 * 60)
        if got is None:
            return False
        t_b, stay = got
        if which == "exclusion":
            found = _target_zone(rng, p, (stay.x, stay.y), city, tree, safe[p.district], 0.0, 150.0)
            if found is None:
                return False
            z, pt = found
            p.exclusions.append(("excl-1", z.zone_id, 150.0))
        else:
            ring = city.district(p.district).geom.exterior
            pt_on = ring.interpolate(ring.project(Point(stay.x, stay.y)))
            pt = (float(pt_on.x), float(pt_on.y))
        p.segments.append(Segment(t_b, t_b + 2400.0, pt[0], pt[1], 60.0, 15.0, 30.0, 0.5, 3.0))
        return True
    raise ValueError(kind)


def _inject_face(
    rng: np.random.Generator, kind: str, p: Person, city: City, tree: shapely.STRtree,
    safe: dict[str, Any], at: float | None = None,
) -> bool:
    """A face match while the wristband stays at a daytime stay far from the camera.

    ``video_opens``: the camera is inside a new exclusion zone (>= 760 m from the
    routine): the face match opens that rule's alert and raises device_separation.
    ``video_low_conf``: the same, below the confidence threshold (twice): nothing.
    ``video_separation``: the camera is 1.5-4 km away, in no zone of the person.
    The face match falls inside a daytime stay, at least 120 s after it starts.
    """
    got = _daytime_stay(rng, p, 9.0, 18.0, 10 * 60, at)
    if got is None:
        return False
    t_f, stay = got
    # the wristband reports every 20 s around the face match, so its latest valid fix
    # is fresh (<= 120 s) at any normal interval: separation is decided by distance only
    p.segments.append(Segment(t_f - 90.0, t_f + 90.0, stay.x, stay.y, 20.0, 4.0, 10.0, 0.95))
    if kind == "video_separation":
        try:
            q = _sample_in(rng, safe[p.district], 1, (stay.x, stay.y), 1500.0, 4000.0)[0]
        except RuntimeError:
            return False
        p.extra_points.append(q)  # later exclusion zones keep away from the camera
        p.faces.append((t_f, q[0], q[1], round(float(rng.uniform(0.8, 0.99)), 2)))
        return True
    found = _target_zone(rng, p, (stay.x, stay.y), city, tree, safe[p.district], 20.0, 700.0)
    if found is None:
        return False
    z, pt = found
    p.exclusions.append(("excl-1", z.zone_id, 150.0))
    p.extra_points.append(pt)
    if kind == "video_opens":
        p.faces.append((t_f, pt[0], pt[1], round(float(rng.uniform(0.8, 0.99)), 2)))
    else:
        p.faces.append((t_f, pt[0], pt[1], round(float(rng.uniform(0.3, 0.79)), 2)))
        p.faces.append((t_f + float(rng.uniform(120, 300)), pt[0], pt[1], 0.79))
    return True


def _contact_meetings(rng: np.random.Generator, chosen: list[Person], safe: dict[str, Any]) -> None:
    """Plan a meeting for each consecutive pair of ``chosen`` (same district)."""
    pairs = list(zip(chosen[0::2], chosen[1::2], strict=True))
    for a, b in pairs:
        for _ in range(30):
            t_m = float(rng.uniform(9.5, 18.5)) * 3600
            dur = float(rng.uniform(8, 15)) * 60
            m = _sample_in(rng, safe[a.district], 1)[0]
            # both must be far (> 1 km) from the meeting point just before and after
            ts = np.linspace(t_m - 600, t_m + dur + 600, 40)
            far = True
            for q in (a, b):
                qx, qy = q.traj.position_at(ts)
                if np.min(np.hypot(qx - m[0], qy - m[1])) < 1000.0:
                    far = False
            if far:
                break
        else:
            a.scenario = b.scenario = None
            continue
        if _closest_m(a, b, (t_m - 600, t_m + dur + 600)) <= a.contact_distance + 60.0:
            a.scenario = b.scenario = None  # their days cross anyway: ordinary persons
            continue
        ang = float(rng.uniform(0, 2 * math.pi))
        for q, sign in ((a, 1.0), (b, -1.0)):
            x = m[0] + sign * 5.0 * math.cos(ang)
            y = m[1] + sign * 5.0 * math.sin(ang)
            q.segments.append(Segment(t_m + float(rng.uniform(0, 10)), t_m + dur, x, y,
                                      VIOLATION_INTERVAL_S, 4.0, 10.0, 0.95))
            q.scenario = "contact"
        a.partner, b.partner = b.person_id, a.person_id


def _choose_exclusions(rng: np.random.Generator, city: City, persons: list[Person]) -> None:
    """Give each person 1-3 exclusion zones that their day keeps well away from."""
    tree = _zone_tree(city)
    for p in persons:
        want = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15])) - len(p.exclusions)
        if want <= 0:
            continue
        geom = _routine_geom(p)
        cands = tree.query(shapely.box(p.home[0] - 6000, p.home[1] - 6000,
                                       p.home[0] + 6000, p.home[1] + 6000))
        rng.shuffle(cands)
        cands = cands[:24]
        if len(cands) == 0:
            continue
        geoms = np.array([city.zones[int(k)].geom for k in cands])
        dist = shapely.distance(geoms, geom)
        taken = {z for _, z, _ in p.exclusions}
        for k, d in zip(cands, dist, strict=True):
            if want == 0:
                break
            z = city.zones[int(k)]
            if z.zone_id in taken or (z.category == "victim_home" and z.zone_id in _TAKEN):
                continue
            buffer = float(rng.choice([0.0, 100.0, 150.0, 200.0]))
            if d <= buffer + 60.0:
                continue
            if z.category == "victim_home":
                _TAKEN.add(z.zone_id)
            p.exclusions.append((f"excl-{len(p.exclusions) + 1}", z.zone_id, buffer))
            taken.add(z.zone_id)
            want -= 1


def _true_track(p: Person, ts: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x, y = p.traj.position_at(ts)
    for s in p.segments:
        m = (ts >= s.t0) & (ts < s.t1)
        x = np.where(m, s.x, x)
        y = np.where(m, s.y, y)
    return x, y


def _closest_m(a: Person, b: Person, skip: tuple[float, float] | None = None) -> float:
    """Smallest true distance between two persons at any two times <= 150 s apart."""
    grid = np.arange(0.0, 86400.0, 30.0)
    ax, ay = _true_track(a, grid)
    bx, by = _true_track(b, grid)
    if skip is not None:
        m = (grid >= skip[0]) & (grid < skip[1])
        ax, ay = np.where(m, 1e7, ax), np.where(m, 1e7, ay)
        bx, by = np.where(m, -1e7, bx), np.where(m, -1e7, by)
    closest = np.inf
    for off in range(-5, 6):
        sb = slice(max(0, off), len(grid) + min(0, off))
        sa = slice(max(0, -off), len(grid) + min(0, -off))
        closest = min(closest, float(np.min(np.hypot(ax[sa] - bx[sb], ay[sa] - by[sb]))))
    return closest


def _pair_contacts(rng: np.random.Generator, persons: list[Person]) -> None:
    """Ordinary no-contact pairs (co-defendants) whose days never bring them close."""
    free = [p for p in persons if p.partner is None and p.scenario is None]
    by_d: dict[str, list[Person]] = {}
    for p in free:
        by_d.setdefault(p.district, []).append(p)
    for ps in by_d.values():
        order = rng.permutation(len(ps))
        ps = [ps[int(i)] for i in order]
        for i in range(len(ps) // 10):
            a, b = ps[2 * i], ps[2 * i + 1]
            if _closest_m(a, b) > a.contact_distance + 60.0:
                a.partner, b.partner = b.person_id, a.person_id


# --------------------------------------------------------------------------- rendering


class Messages:
    """All telemetry of the day as columns, plus the few irregular lines.

    Fix columns hold delivery time, event time, position and quality;
    ``group`` ties the fixes of one backfill batch into one JSON-array line.
    """

    def __init__(self) -> None:
        self.fix_cols: dict[str, NDArray[Any]] = {}
        self.extra: list[tuple[int, int, bytes]] = []   # (deliver_ms, seq, line)
        self.device_ids: list[str] = []
        self.malformed_reasons: dict[str, int] = {}
        self.count = 0
        self.line_count = 0

    def lines(self, chunk: int = 400_000) -> Iterator[bytes]:
        """JSONL lines in delivery order (ties broken deterministically).

        Fixes of one backfill batch share a delivery time and become one
        JSON-array line; device events and malformed lines are merged in by
        delivery time. Rendered in chunks so a day of 5,000 persons never
        holds a gigabyte of text at once.
        """
        c = self.fix_cols
        order = np.lexsort((c["seq"], c["group"], c["deliver"]))
        deliver = c["deliver"][order]
        group = c["group"][order]
        extra = sorted(self.extra)
        extra_at = np.array([e[0] for e in extra], dtype=np.int64)
        n = len(order)
        # a line starts where a fix is single or opens a new backfill group
        starts = np.ones(n, dtype=bool)
        if n:
            starts[1:] = (group[1:] < 0) | (group[1:] != group[:-1])
        ei = 0
        lo = 0
        while lo < n:
            hi = min(n, lo + chunk)
            while hi < n and not starts[hi]:
                hi += 1
            texts = _fix_texts(c, order[lo:hi], self.device_ids)
            st = np.flatnonzero(starts[lo:hi])
            if len(st) == hi - lo:
                lines = texts
            else:
                bounds = [*st.tolist(), hi - lo]
                lines = [
                    texts[a] if b - a == 1 else b"[" + b",".join(texts[a:b]) + b"]"
                    for a, b in itertools.pairwise(bounds)
                ]
            line_deliver = deliver[lo:hi][st]
            # extras delivered no later than a line go before it
            pos = np.searchsorted(line_deliver, extra_at[ei:], side="left")
            k = 0
            prev = 0
            for p_ in pos.tolist():
                if p_ >= len(lines) and hi < n:
                    break
                yield from lines[prev:p_]
                yield extra[ei + k][2]
                prev = max(prev, p_)
                k += 1
            ei += k
            yield from lines[prev:]
            lo = hi
        for e in extra[ei:]:
            yield e[2]


def _fix_texts(c: dict[str, NDArray[Any]], order: NDArray[np.int64], device_ids: list[str]) -> list[bytes]:
    dev = c["dev"][order].tolist()
    ts = c["ts"][order].tolist()
    lat = np.round(c["lat"][order], 6).tolist()
    lon = np.round(c["lon"][order], 6).tolist()
    acc = np.round(c["acc"][order], 1).tolist()
    valid = c["valid"][order].tolist()
    speed = np.round(c["speed"][order], 1).tolist()
    batt = c["batt"][order].tolist()
    ids = [d.encode() for d in device_ids]
    out: list[bytes] = []
    for dv, t, la, lo, a, v, s, b in zip(dev, ts, lat, lon, acc, valid, speed, batt, strict=True):
        if v:
            out.append(b'{"kind":"fix","device_id":"%s","ts":%d,"lat":%r,"lon":%r,"accuracy_m":%r,'
                       b'"speed_mps":%r,"battery_pct":%d}' % (ids[dv], t, la, lo, a, s, b))
        else:
            out.append(b'{"kind":"fix","device_id":"%s","ts":%d,"lat":%r,"lon":%r,"accuracy_m":%r,'
                       b'"valid":false,"source":"cell","battery_pct":%d}' % (ids[dv], t, la, lo, a, b))
    return out


def _confirm_window(ts: list[int], dwell_s: float) -> tuple[int, int]:
    """(first certain fix, fix completing 2 consecutive certain fixes spanning the dwell)."""
    first = ts[0]
    for t in ts[1:]:
        if t - first >= dwell_s * 1000:
            return first, t
    raise AssertionError("segment too short to confirm")  # pragma: no cover


def _report_times(p: Any, cfg: Any, base: NDArray[np.float64], shift: float,
                  outages: Any) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
    """One device's report times: the regular ``base`` schedule, replaced inside
    each scenario segment by the segment's own (``shift`` seconds later), as
    millisecond event times unique per device, minus the ``outages``
    (``(start, end)`` seconds). Returns (ms, seconds, segment index or -1).
    """
    keep = np.ones(len(base), dtype=bool)
    seg_ts: list[NDArray[np.float64]] = []
    seg_of: list[NDArray[np.int64]] = []
    for si, sg in enumerate(p.segments):
        keep &= ~((base >= sg.t0) & (base < sg.t1))
        sts = np.arange(sg.t0 + sg.start_offset + shift, sg.t1, sg.interval)
        seg_ts.append(sts)
        seg_of.append(np.full(len(sts), si))
    t_all = np.concatenate([base[keep], *seg_ts])
    s_all = np.concatenate([np.full(int(keep.sum()), -1), *seg_of]).astype(np.int64)
    ms = (np.round(t_all) * 1000 if cfg.whole_seconds else np.round(t_all * 1000)).astype(np.int64)
    o = np.argsort(ms, kind="stable")
    ms, t_all, s_all = ms[o], t_all[o], s_all[o]
    u = np.concatenate([[True], np.diff(ms) > 0])
    ms, t_all, s_all = ms[u], t_all[u], s_all[u]
    for a, b in outages:
        m = (t_all >= a) & (t_all < b)
        ms, t_all, s_all = ms[~m], t_all[~m], s_all[~m]
    return ms, t_all, s_all


def _render(
    rng: np.random.Generator, cfg: SimConfig, city: City, persons: list[Person], day0: int,
) -> tuple[Messages, list[dict[str, Any]]]:
    msgs = Messages()
    cols: dict[str, list[NDArray[Any]]] = {k: [] for k in (
        "dev", "ts", "deliver", "x", "y", "acc", "valid", "speed", "batt", "group", "seq")}
    expected: list[dict[str, Any]] = []
    group_id = 0
    seq0 = 0
    contact_ts: dict[str, list[int]] = {}
    day_s = 86400.0
    for p in persons:
        dev = len(msgs.device_ids)
        msgs.device_ids.append(p.device_id)
        phase = float(rng.uniform(0, cfg.interval_s))
        base = np.arange(phase, day_s, cfg.interval_s)
        ms, t_all, s_all = _report_times(p, cfg, base, 0.0,
                                         [p.outage] if p.outage is not None else [])
        n = len(ms)
        x, y = _true_track(p, t_all)
        speed = p.traj.speed_at(t_all)
        in_seg = s_all >= 0
        speed[in_seg] = 0.0
        # accuracy by situation: indoors at home/work, moving, outdoors
        stay_indoor = np.zeros(n, dtype=bool)
        for st in p.traj.stays:
            if st.indoor:
                stay_indoor |= (t_all >= st.t0) & (t_all < st.t1)
        stay_indoor &= ~in_seg
        acc = np.where(stay_indoor, rng.lognormal(math.log(16), 0.35, n), rng.lognormal(math.log(7), 0.35, n))
        acc = np.clip(acc, 3.0, 60.0)
        cap = np.full(n, 0.95)
        wander = np.zeros(n)
        valid = np.ones(n, dtype=bool)
        for si, s in enumerate(p.segments):
            m = s_all == si
            acc[m] = rng.uniform(s.acc_lo, s.acc_hi, int(m.sum()))
            cap[m] = s.noise_cap
            wander[m] = s.wander_m
        # quiet time around scenario segments: no outliers, no invalid fixes
        quiet = np.zeros(n, dtype=bool)
        for s in p.segments:
            quiet |= (t_all >= s.t0 - 600) & (t_all < s.t1 + 600)
        ordinary = p.scenario is None
        if ordinary or p.scenario in ("tamper", "removed", "sos", "battery_low", "signal_loss", "teleport"):
            inval = stay_indoor & (rng.random(n) < cfg.invalid_indoor_rate) & ~quiet
            valid &= ~inval
            acc[inval] = rng.uniform(150, 1500, int(inval.sum()))
            outl = ~stay_indoor & ~in_seg & (rng.random(n) < cfg.outlier_rate) & ~quiet
            err = rng.uniform(50, 300, int(outl.sum()))
            acc[outl] = err * rng.uniform(1.1, 2.0, len(err))
            # the outlier error replaces the ordinary one (see below)
        else:
            outl = np.zeros(n, dtype=bool)
        if cfg.fixed_accuracy_m is not None:  # the protocol reports one accuracy for all
            acc = np.where(valid, np.minimum(acc, cfg.fixed_accuracy_m), acc)
        # true wander within segments (standing, small steps)
        if wander.any():
            wa = rng.uniform(0, 2 * math.pi, n)
            wr = rng.uniform(0, 1, n) * wander
            x = x + wr * np.cos(wa)
            y = y + wr * np.sin(wa)
        # position error: a fraction of the reported accuracy, never more than it
        frac = np.minimum(rng.rayleigh(0.45, n), cap)
        frac[outl] = 1.0 / rng.uniform(1.1, 2.0, int(outl.sum()))
        ang = rng.uniform(0, 2 * math.pi, n)
        ex = acc * frac * np.cos(ang)
        ey = acc * frac * np.sin(ang)
        rx, ry = x + ex, y + ey
        if cfg.fixed_accuracy_m is not None:
            acc = np.where(valid, cfg.fixed_accuracy_m, acc)
        if p.teleports:
            used_k: list[int] = []
            for tt in p.teleports:
                k = int(np.searchsorted(t_all, tt))
                if k < n and not quiet[k] and all(abs(k - j) > 2 for j in used_k):
                    used_k.append(k)
                    far = float(rng.uniform(25_000, 40_000))
                    a = float(rng.uniform(0, 2 * math.pi))
                    rx[k] = far * math.cos(a)
                    ry[k] = far * math.sin(a)
                    acc[k] = float(rng.uniform(5, 12))
                    if cfg.fixed_accuracy_m is not None:
                        acc[k] = cfg.fixed_accuracy_m
                    valid[k] = True
        # battery: drains by day, charges from about 22:00
        charge_at = float(rng.uniform(21.7, 22.5)) * 3600
        hours = t_all / 3600.0
        batt = p.battery0 - p.drain_per_h * hours
        after = t_all >= charge_at
        low_at_charge = p.battery0 - p.drain_per_h * charge_at / 3600
        batt = np.where(after, np.minimum(100.0, low_at_charge + 40.0 * (t_all - charge_at) / 3600), batt)
        batt = np.clip(batt, 1.0, 100.0)
        p.events.append((charge_at + 5.0, "charging"))
        if p.scenario == "battery_low":
            t_low = (p.battery0 - 15.0) / p.drain_per_h * 3600
            if t_low < charge_at:
                p.events.append((t_low, "battery_low"))
        # delivery: network delay, out-of-order persons, backfill
        deliver = ms + rng.integers(200, 2500, n)
        p.reorder = ordinary and rng.random() < cfg.reorder_person_rate
        if p.reorder:
            deliver = ms + rng.integers(200, 75_000, n)
        group = np.full(n, -1, dtype=np.int64)
        offline = p.offline
        if offline is None and ordinary and rng.random() < cfg.offline_person_rate:
            t_o = float(rng.uniform(9, 19)) * 3600
            offline = (t_o, t_o + float(rng.uniform(5, 12)) * 60)
            p.offline = offline
        if offline is not None:
            m = (t_all >= offline[0]) & (t_all < offline[1])
            reconnect = int(offline[1] * 1000) + 3000  # relative to day0, like ms
            deliver[m] = reconnect
            group[m] = group_id
            group_id += 1
        lon, lat = city.frame.to_lonlat(rx, ry)
        valid_until_ms = None if p.valid_until_s is None else day0 + int(p.valid_until_s * 1000)
        cols["dev"].append(np.full(n, dev, dtype=np.int64))
        cols["ts"].append(day0 + ms)
        cols["deliver"].append(day0 + deliver)
        cols["x"].append(lon)
        cols["y"].append(lat)
        cols["acc"].append(acc)
        cols["valid"].append(valid)
        cols["speed"].append(speed)
        cols["batt"].append(np.round(batt).astype(np.int64))
        cols["group"].append(group)
        cols["seq"].append(np.arange(seq0, seq0 + n))
        seq0 += n
        # duplicates: the same fix delivered again a little later
        if ordinary and cfg.duplicate_rate > 0:
            dup = np.flatnonzero((rng.random(n) < cfg.duplicate_rate) & (group < 0))
            if len(dup):
                for name, arr in (("dev", np.full(len(dup), dev, dtype=np.int64)), ("ts", day0 + ms[dup]),
                                  ("deliver", day0 + deliver[dup] + rng.integers(1000, 30_000, len(dup))),
                                  ("x", lon[dup]), ("y", lat[dup]), ("acc", acc[dup]), ("valid", valid[dup]),
                                  ("speed", speed[dup]), ("batt", np.round(batt[dup]).astype(np.int64)),
                                  ("group", np.full(len(dup), -1, dtype=np.int64)),
                                  ("seq", np.arange(seq0, seq0 + len(dup)))):
                    cols[name].append(arr)
                seq0 += len(dup)
        # device events (heartbeats for some, scenario events, charging)
        for t_ev, name in sorted(p.events):
            if p.outage is not None and p.outage[0] < t_ev < p.outage[1]:
                continue
            ev_ms = day0 + (round(t_ev) * 1000 if cfg.whole_seconds else round(t_ev * 1000))
            line = b'{"kind":"device_event","device_id":"%s","ts":%d,"event":"%s"}' % (
                p.device_id.encode(), ev_ms, name.encode())
            msgs.extra.append((ev_ms + 800, seq0, line))
            seq0 += 1
            if name in ("tamper", "removed", "sos", "battery_low", "power_off") and (
                    valid_until_ms is None or ev_ms < valid_until_ms):
                expected.append(_exp(p, name, name, ev_ms, ev_ms, "device"))
        phone: tuple[NDArray[np.int64], NDArray[np.int64]] | None = None
        if p.phone_id is not None:
            pdev = len(msgs.device_ids)
            msgs.device_ids.append(p.phone_id)
            pcols, phone = _render_phone(rng, cfg, city, p, pdev, phase, day0, seq0, ms)
            seq0 += len(phone[0])
            for name, arr in pcols.items():
                cols[name].append(arr)
        # video analytics: face matches of this person
        for k, (t_f, fx_, fy_, conf) in enumerate(p.faces):
            f_ms = day0 + (round(t_f) * 1000 if cfg.whole_seconds else round(t_f * 1000))
            flon, flat = city.frame.to_lonlat(np.array([fx_]), np.array([fy_]))
            line = (b'{"kind":"video_hit","camera_id":"CAM-%05d-%d","ts":%d,"event":"face_match",'
                    b'"lat":%r,"lon":%r,"person_id":"%s","confidence":%r,"jurisdiction":"%s"}' % (
                        p.idx + 1, k, f_ms, round(float(flat[0]), 6), round(float(flon[0]), 6),
                        p.person_id.encode(), conf, p.district.encode()))
            msgs.extra.append((f_ms + int(rng.integers(500, 3000)), seq0, line))
            seq0 += 1
        # ground truth of geofence scenarios from the emitted fixes
        _truth_for(p, ms, s_all, day0, expected, offline, cfg.whole_seconds, phone)
        if p.scenario == "contact":
            contact_ts[p.person_id] = [int(v) for v in ms[s_all == 0]]
        msgs.count += n
    expected.extend(contact_truth(persons, contact_ts, day0))
    seq0 = _facility(rng, cfg, city, day0, msgs, expected, seq0)
    for col, arrs in cols.items():
        msgs.fix_cols[col] = np.concatenate(arrs) if arrs else np.zeros(0)
    msgs.fix_cols["lat"] = msgs.fix_cols.pop("y")
    msgs.fix_cols["lon"] = msgs.fix_cols.pop("x")
    msgs.count = len(msgs.fix_cols["ts"]) + len(msgs.extra)
    _malformed(rng, cfg, persons, day0, msgs)
    groups = msgs.fix_cols["group"]
    singles = int(np.sum(groups < 0))
    msgs.line_count = singles + len(set(groups[groups >= 0].tolist())) + len(msgs.extra)
    return msgs, expected


def _render_phone(
    rng: np.random.Generator, cfg: SimConfig, city: City, p: Person, pdev: int, phase: float,
    day0: int, seq0: int, wristband_ms: NDArray[np.int64],
) -> tuple[dict[str, NDArray[Any]], tuple[NDArray[np.int64], NDArray[np.int64]]]:
    """Fix columns of a person's second device (a phone carried with the wristband).

    Same true track, its own phase (10-50 s after the wristband's), 7 s after
    the wristband inside scenario segments, always valid, error below the
    reported accuracy. A phone fix in the same second as a wristband fix is
    dropped: with whole-second times (JT/T 808) a phone fix just before a
    breach starts would otherwise share its timestamp with the wristband's
    first fix inside, and the order of two fixes with one timestamp is the
    engine's choice, not the contract's. Returns the columns and (event-time
    ms relative to day0, segment index).
    """
    day_s = 86400.0
    pphase = (phase + float(rng.uniform(10.0, 50.0))) % cfg.interval_s
    base = np.arange(pphase, day_s, cfg.interval_s)
    ms, t_all, s_all = _report_times(p, cfg, base, 7.0, p.phone_outages)
    n = len(ms)
    x, y = _true_track(p, t_all)
    speed = p.traj.speed_at(t_all)
    speed[s_all >= 0] = 0.0
    acc = np.clip(rng.lognormal(math.log(9), 0.35, n), 3.0, 40.0)
    for si, sg in enumerate(p.segments):
        m = s_all == si
        acc[m] = rng.uniform(sg.acc_lo, sg.acc_hi, int(m.sum()))
    if cfg.fixed_accuracy_m is not None:
        acc = np.minimum(acc, cfg.fixed_accuracy_m)
    frac = np.minimum(rng.rayleigh(0.45, n), 0.95)
    ang = rng.uniform(0, 2 * math.pi, n)
    rx, ry = x + acc * frac * np.cos(ang), y + acc * frac * np.sin(ang)
    if cfg.fixed_accuracy_m is not None:
        acc = np.full(n, cfg.fixed_accuracy_m)
    lon, lat = city.frame.to_lonlat(rx, ry)
    batt = np.clip(np.round(95.0 - 2.0 * t_all / 3600.0), 30, 100).astype(np.int64)
    deliver = day0 + ms + rng.integers(200, 2500, n)
    ok = ~np.isin(ms // 1000, wristband_ms // 1000)  # after every draw: the rest of the day is unchanged
    m_ = int(ok.sum())
    cols: dict[str, NDArray[Any]] = {
        "dev": np.full(m_, pdev, dtype=np.int64), "ts": day0 + ms[ok], "deliver": deliver[ok],
        "x": lon[ok], "y": lat[ok], "acc": acc[ok], "valid": np.ones(m_, dtype=bool),
        "speed": speed[ok], "batt": batt[ok], "group": np.full(m_, -1, dtype=np.int64),
        "seq": np.arange(seq0, seq0 + m_),
    }
    return cols, (ms[ok], s_all[ok])


def _facility(rng: np.random.Generator, cfg: SimConfig, city: City, day0: int, msgs: Messages,
              expected: list[dict[str, Any]], seq0: int) -> int:
    """Facility cameras (no person): bursts of perimeter_breach, fight, crowd, fall, loitering.

    Hits of one camera and event less than ``CAMERA_QUIET_S`` apart are one
    incident (one alert, opened at its first hit); the next burst of the same
    event starts 6-60 min after the last hit, when the engine has cleared the
    alert, and opens a new one. Half the cameras also see a second event
    during the first burst: a separate alert.
    """
    count = cfg.facility_cameras if cfg.facility_cameras is not None else max(2, cfg.persons // 250)
    for k in range(count):
        d = city.districts[int(rng.integers(len(city.districts)))]
        pos = _sample_in(rng, d.core, 1)[0]
        lon, lat = city.frame.to_lonlat(np.array([pos[0]]), np.array([pos[1]]))
        cam = f"CAM-F{k + 1:04d}"
        ev = FACILITY_EVENTS[k % len(FACILITY_EVENTS)]
        t = float(rng.uniform(1.0, 18.0)) * 3600
        bursts: list[tuple[str, list[float]]] = []
        for _b in range(2):
            hits = [t]
            for _ in range(int(rng.integers(0, 4))):
                hits.append(hits[-1] + float(rng.uniform(15.0, CAMERA_QUIET_S - 60.0)))
            bursts.append((ev, hits))
            t = hits[-1] + float(rng.uniform(CAMERA_QUIET_S + 60.0, 3600.0))
        if rng.random() < 0.5:
            other = FACILITY_EVENTS[(k + 1 + int(rng.integers(len(FACILITY_EVENTS) - 1))) % len(FACILITY_EVENTS)]
            first = bursts[0][1]
            bursts.append((other, [first[0] + 2.0, first[0] + 2.0 + float(rng.uniform(15.0, 200.0))]))
        for event, hits in bursts:
            hit_ms = [day0 + (round(h) * 1000 if cfg.whole_seconds else round(h * 1000)) for h in hits]
            for h in hit_ms:
                line = (b'{"kind":"video_hit","camera_id":"%s","ts":%d,"event":"%s","lat":%r,"lon":%r,'
                        b'"confidence":%r,"jurisdiction":"%s"}' % (
                            cam.encode(), h, event.encode(), round(float(lat[0]), 6),
                            round(float(lon[0]), 6), round(float(rng.uniform(0.6, 0.99)), 2),
                            d.code.encode()))
                msgs.extra.append((h + int(rng.integers(500, 3000)), seq0, line))
                seq0 += 1
            expected.append({"person_id": None, "rule_id": f"video:{event}", "kind": f"video_{event}",
                             "opened_at": [format_ts(hit_ms[0]), format_ts(hit_ms[0])], "late": False,
                             "scenario": "facility", "camera_id": cam, "jurisdiction": d.code})
    return seq0


def _exp(p: Person, rule: str, kind: str, lo: int, hi: int, scenario: str,
         late: bool = False) -> dict[str, Any]:
    return {"person_id": p.person_id, "rule_id": rule, "kind": kind,
            "opened_at": [format_ts(lo), format_ts(hi)], "late": late, "scenario": scenario}


def _truth_for(
    p: Person, ms: NDArray[np.int64], s_all: NDArray[np.int64], day0: int,
    expected: list[dict[str, Any]], offline: tuple[float, float] | None, whole: bool = False,
    phone: tuple[NDArray[np.int64], NDArray[np.int64]] | None = None,
) -> None:
    sc = p.scenario
    if sc is None or sc in SILENT_KINDS:
        return

    def at_ms(t: float) -> int:
        return round(t) * 1000 if whole else round(t * 1000)

    if sc in ("video_opens", "video_separation"):
        t = day0 + at_ms(p.faces[0][0])
        if sc == "video_opens":
            expected.append({**_exp(p, "excl-1", "exclusion_entered", t, t, sc), "evidence": "video"})
        expected.append({**_exp(p, "device_separation", "device_separation", t, t, sc), "evidence": "video"})
        return
    if sc == "dual_breach":
        assert phone is not None
        seg_ms = sorted({int(v) for v in ms[s_all == 0]} | {int(v) for v in phone[0][phone[1] == 0]})
        lo, hi = _confirm_window(seg_ms, 30.0)
        expected.append(_exp(p, "excl-1", "exclusion_entered", day0 + lo, day0 + hi, sc))
        return
    if sc == "dual_outage":
        assert phone is not None and p.outage is not None
        both_dark = at_ms(p.phone_outages[-1][0])
        last = max(int(v) for v in np.concatenate([ms, phone[0]]) if v < both_dark)
        t = day0 + last + p.after_s * 1000
        expected.append(_exp(p, "signal", "signal_lost", t, t, sc))
        return
    if sc == "signal_loss":
        assert p.outage is not None
        before = ms[ms < p.outage[0] * 1000]
        last = int(before[-1])
        for t_ev, name in p.events:
            ev = round(t_ev) * 1000 if whole else round(t_ev * 1000)
            if name == "power_off" and ev >= last:
                last = ev
        t = day0 + last + p.after_s * 1000
        expected.append(_exp(p, "signal", "signal_lost", t, t, sc))
        return
    if sc in ("exclusion", "approach", "backfill", "video_exclusion"):
        seg_ms = [int(v) for v in ms[s_all == 0]]
        lo, hi = _confirm_window(seg_ms, 30.0)
        kind = "exclusion_approach" if sc == "approach" else "exclusion_entered"
        e = _exp(p, "excl-1", kind, day0 + lo, day0 + hi, sc, late=sc == "backfill")
        if sc == "video_exclusion":
            e["evidence"] = "gps+video"  # the face match corroborates the open GPS alert
        expected.append(e)
        return
    if sc == "inclusion":
        seg_ms = [int(v) for v in ms[s_all == 0]]
        lo, hi = _confirm_window(seg_ms, p.dwell.get("incl", 30.0))
        expected.append(_exp(p, "incl", "inclusion_left", day0 + lo, day0 + hi, sc))
        return
    if sc == "curfew":
        seg_ms = [int(v) for v in ms[s_all == 0]]
        lo, hi = _confirm_window(seg_ms, 30.0)
        expected.append(_exp(p, "curfew", "curfew_violated", day0 + lo, day0 + hi, sc))
        return
    if sc == "curfew_late":
        ws = int(_hhmm_s(p.curfew[0]) * 1000)
        in_window = [int(v) for v in ms[(s_all >= 0) & (ms >= ws)]]
        _, hi = _confirm_window(in_window, 30.0)
        expected.append(_exp(p, "curfew", "curfew_violated", day0 + ws, day0 + hi, sc))
        return
    if sc == "contact":
        return  # needs both persons: see _contact_truth
    if sc in ("tamper", "removed", "sos", "battery_low"):
        return  # device events: added where the event is emitted
    raise AssertionError(sc)  # pragma: no cover


def contact_truth(persons: list[Person], fix_ts: dict[str, list[int]], day0: int) -> list[dict[str, Any]]:
    """Expected contact alerts: the moment both partners' fresh fixes are at the meeting."""
    out: list[dict[str, Any]] = []
    by_id = {p.person_id: p for p in persons}
    for p in persons:
        if p.scenario != "contact" or p.partner is None:
            continue
        q = by_id[p.partner]
        first = max(fix_ts[p.person_id][0], fix_ts[q.person_id][0])
        out.append(_exp(p, f"contact-{q.person_id}", "contact", day0 + first, day0 + first + 60_000,
                        "contact"))
    return out


def _malformed(rng: np.random.Generator, cfg: SimConfig, persons: list[Person], day0: int,
               msgs: Messages) -> None:
    """Lines a correct consumer rejects with a reason (and never alerts on)."""
    count = cfg.malformed_lines if cfg.malformed_lines is not None else max(8, cfg.persons // 100)
    dev = persons[0].device_id.encode()
    kinds: list[tuple[str, bytes]] = [
        ("malformed_json", b'{"kind":"fix","device_id":"%s","ts":%d,"lat":32.0,' % (dev, day0)),
        ("out_of_range", b'{"kind":"fix","device_id":"%s","ts":%d,"lat":95.5,"lon":118.8}' % (dev, day0)),
        ("missing_field", b'{"kind":"fix","device_id":"%s","lat":32.0,"lon":118.8}' % dev),
        ("unknown_kind", b'{"kind":"teleport","device_id":"%s","ts":%d}' % (dev, day0)),
        ("non_finite_number", b'{"kind":"fix","device_id":"%s","ts":%d,"lat":NaN,"lon":118.8}' % (dev, day0)),
        ("unknown_event", b'{"kind":"device_event","device_id":"%s","ts":%d,"event":"explode"}' % (dev, day0)),
        ("unknown_device", b'{"kind":"fix","device_id":"099999999999","ts":%d,"lat":32.06,"lon":118.79}' % day0),
        ("wrong_type", b'"just a string"'),
    ]
    reasons: dict[str, int] = {}
    for i in range(count):
        reason, line = kinds[i % len(kinds)]
        t = day0 + int(rng.uniform(0, 86_000_000))
        msgs.extra.append((t, -1 - i, line))
        reasons[reason] = reasons.get(reason, 0) + 1
    msgs.malformed_reasons = reasons


# --------------------------------------------------------------------------- orders


def _orders(cfg: SimConfig, persons: list[Person], day0: int) -> list[dict[str, Any]]:
    tz = ZoneInfo(cfg.timezone)

    def iso(ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, tz).isoformat()

    out: list[dict[str, Any]] = []
    for p in persons:
        rules: list[dict[str, Any]] = []
        for rid, zone, buffer in p.exclusions:
            r: dict[str, Any] = {"id": rid, "type": "exclusion", "zone": zone}
            if buffer > 0:
                r["buffer_m"] = buffer
            rules.append(r)
        incl: dict[str, Any] = {"id": "incl", "type": "inclusion", "zone": p.district}
        if "incl" in p.dwell:
            incl["dwell_s"] = p.dwell["incl"]
        rules.append(incl)
        rules.append({"id": "curfew", "type": "curfew", "zone": f"home-{p.person_id}",
                      "windows": [{"days": p.curfew_days, "start": p.curfew[0], "end": p.curfew[1]}]})
        if p.partner is not None:
            rules.append({"id": f"contact-{p.partner}", "type": "no_contact", "person": p.partner,
                          "distance_m": p.contact_distance})
        rules.append({"id": "signal", "type": "signal_loss", "after_s": p.after_s})
        until = day0 + 90 * 86_400_000 if p.valid_until_s is None else day0 + int(p.valid_until_s * 1000)
        since = day0 - 21 * 86_400_000
        if cfg.open_validity and p.valid_until_s is None:
            since, until = 1_704_038_400_000, 4_102_416_000_000  # 2024-01-01 .. 2100-01-01 (+08:00)
        out.append({
            "person_id": p.person_id,
            "devices": [p.device_id] if p.phone_id is None else [p.device_id, p.phone_id],
            "jurisdiction": p.district,
            "timezone": cfg.timezone, "valid_from": iso(since),
            "valid_until": iso(until), "rules": rules,
        })
    return out


def _config_dict(cfg: SimConfig) -> dict[str, Any]:
    """The generator settings, kept with the zones so `live` can rebuild the same caseload."""
    d = dataclasses.asdict(cfg)
    d["shares"] = dict(cfg.shares)
    return d


def config_from_dict(d: dict[str, Any]) -> SimConfig:
    """Inverse of :func:`_config_dict`."""
    d = dict(d)
    d["shares"] = tuple(d.get("shares", DEFAULT_SHARES).items())
    return SimConfig(**d)


def dumps(obj: Any) -> bytes:
    """Stable, readable JSON for the files the generator writes."""
    return msgspec.json.format(msgspec.json.encode(obj), indent=1)


def write(caseload: Caseload, out_dir: str, progress: bool = False) -> dict[str, str]:
    """Write zones.geojson, orders.json, telemetry.jsonl and truth.json into ``out_dir``."""
    import os

    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, name) for name in
             ("zones.geojson", "orders.json", "telemetry.jsonl", "truth.json")}
    with open(paths["zones.geojson"], "wb") as f:
        f.write(msgspec.json.encode(caseload.zones))
        f.write(b"\n")
    with open(paths["orders.json"], "wb") as f:
        f.write(dumps(caseload.orders))
        f.write(b"\n")
    with open(paths["truth.json"], "wb") as f:
        f.write(dumps(caseload.truth))
        f.write(b"\n")
    bar = _progress(caseload.messages.line_count, "telemetry lines", progress)
    with open(paths["telemetry.jsonl"], "wb", buffering=4 << 20) as f:
        buf: list[bytes] = []
        for line in caseload.lines():
            buf.append(line)
            if len(buf) >= 50_000:
                f.write(b"\n".join(buf) + b"\n")
                bar.update(len(buf))
                buf.clear()
        if buf:
            f.write(b"\n".join(buf) + b"\n")
            bar.update(len(buf))
    bar.close()
    return paths


def _progress(total: int, unit: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit=" " + unit.split()[-1], desc=unit, disable=not enabled,
                unit_scale=True, smoothing=0.1)
