"""Staging the scenarios: which persons breach which rule, where and when,
and which exclusion zones each order names."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Point

from simulators.caseconfig import ALL_KINDS, VIOLATION_INTERVAL_S, SimConfig, _hhmm_s
from simulators.city import City, ExclusionZone
from simulators.people import Person, Segment, _closest_m, _daytime_stay, _routine_geom, sample_in


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
"""Victim homes an order already names: each is given to one person only (emptied by ``generate``)."""


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
        q = sample_in(rng, city.district(p.district).core, 1, p.home, 500.0, 1500.0)[0]
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
    # (kept only if the scenario fits: a person left without one keeps no stray stop)
    around = Segment(t_f - 90.0, t_f + 90.0, stay.x, stay.y, 20.0, 4.0, 10.0, 0.95)
    if kind == "video_separation":
        try:
            q = sample_in(rng, safe[p.district], 1, (stay.x, stay.y), 1500.0, 4000.0)[0]
        except RuntimeError:
            return False
        p.segments.append(around)
        p.extra_points.append(q)  # later exclusion zones keep away from the camera
        p.faces.append((t_f, q[0], q[1], round(float(rng.uniform(0.8, 0.99)), 2)))
        return True
    found = _target_zone(rng, p, (stay.x, stay.y), city, tree, safe[p.district], 20.0, 700.0)
    if found is None:
        return False
    z, pt = found
    p.segments.append(around)
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
            m = sample_in(rng, safe[a.district], 1)[0]
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
