"""The supervised persons: where they live, their daily routine, the
stretches of time that override it, and where they truly are at any moment."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import LineString, MultiPoint

from simulators import routine
from simulators.caseconfig import CURFEWS, SimConfig
from simulators.city import City


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
    case: dict[str, Any] = field(default_factory=dict)  # casework: windows, leave, term (simulators.casework)


def sample_in(
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
            home = sample_in(rng, d.core, 1)[0]
            places = sample_in(rng, d.core, 3, home, 400.0, 4500.0)
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
