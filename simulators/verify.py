"""Check a ground-truth file against the telemetry it describes.

This re-derives, from the written files alone (zones, orders, telemetry),
every moment the contract's conditions hold, using its own geometry (the
simulator's local metric frame, shapely for polygons, exact circles), and
compares them with ``truth.json``:

* each expected geofence alert must start a run of certainly-violating
  valid fixes whose first fix is the window's earliest time (or, for a
  curfew that starts while the person is out, the first fix after the
  window start) and whose confirming fix is no later than the window's end;
* no other run of two or more certainly-violating fixes may exist (this is
  what keeps the jitter, teleport and outlier cases honest);
* the run boundaries must be the same whether an uncertain fix breaks a run
  or is skipped (if they differed, the truth would depend on an engine
  choice the contract leaves open);
* signal gaps, device events and contact moments must match exactly;
* video hits (contract defaults: face matches at confidence >= 0.8, camera
  positions exact, 500 m separation, facility alerts quiet after 300 s): a
  face match inside one of the person's exclusion zones opens that rule's
  alert at its instant unless a GPS episode of the rule is open (the
  person's latest valid fix certainly inside, the episode confirmed), a
  face match more than 500 m (plus the fix's accuracy) from the person's
  latest valid fix, at most 120 s old, raises device_separation once per
  order, and each burst of one camera's facility event (hits less than
  300 s apart) is one alert at its first hit;
* check-ins (kind ``checkin``, phones of orders with a ``checkin`` rule):
  what is owed comes from :func:`geofence.checkin.owed_between` over the
  order's validity up to the newest event time of the file; a check-in is
  verified when it carries a result and none failed; walked in event time
  (a check-in before a deadline of the same millisecond), a deadline no
  verified check-in answers opens ``checkin_missed`` unless it is open, a
  check-in that is not verified opens ``checkin_failed``, a verified one
  whose accuracy circle is certainly outside an inclusion zone opens
  ``checkin_outside``; a verified check-in clears the first two, and the
  third when certainly inside every inclusion zone. Every check-in must
  reach the file less than 100 s of event time after the newest message
  before it (inside the 120 s lateness horizon, so its place in event time
  decides and not its arrival).

It is deliberately simple and slow-ish (a loop per person and rule, numpy
inside): a test oracle, not an engine.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import Polygon

from geofence.checkin import answers, owed_between
from geofence.model import (
    CheckIn,
    DeviceEvent,
    Fix,
    Order,
    TelemetryDecoder,
    VideoHit,
    parse_orders,
    parse_ts,
)
from simulators.frame import LocalFrame

_DEEP_M = 300.0
ALARM_EVENTS = ("tamper", "removed", "sos", "battery_low", "power_off")
FACE_MIN_CONFIDENCE = 0.8
SEPARATION_M = 500.0
FRESH_MS = 120_000
CAMERA_QUIET_MS = 300_000
CHECKIN_ARRIVAL_MS = 100_000


@dataclass
class _Zone:
    circle: tuple[float, float, float] | None
    poly: Any
    inner: Any = None

    def signed(self, x: NDArray[np.float64], y: NDArray[np.float64], need: NDArray[np.float64]) -> NDArray[np.float64]:
        """Signed distance (negative inside); exact where |d| <= need, else sign-correct."""
        if self.circle is not None:
            cx, cy, r = self.circle
            return np.asarray(np.hypot(x - cx, y - cy) - r)
        inside = shapely.contains_xy(self.poly, x, y)
        out = np.where(inside, -np.inf, np.inf)
        minx, miny, maxx, maxy = self.poly.bounds
        near = (x > minx - need) & (x < maxx + need) & (y > miny - need) & (y < maxy + need)
        if self.inner is None:
            self.inner = self.poly.buffer(-_DEEP_M)
            shapely.prepare(self.inner)
        # deep inside and needing less than that depth: the sign is all that matters
        deep = shapely.contains_xy(self.inner, x, y) & (need < _DEEP_M)
        idx = np.flatnonzero((near | inside) & ~deep)
        if len(idx):
            d = shapely.distance(shapely.points(x[idx], y[idx]), self.poly.boundary)
            out[idx] = np.where(inside[idx], -d, d)
        return out


def _zones(data: dict[str, Any], frame: LocalFrame) -> dict[str, _Zone]:
    out: dict[str, _Zone] = {}
    for f in data["features"]:
        zid = str(f.get("id") or f["properties"]["id"])
        g = f["geometry"]
        if g["type"] == "Point":
            x, y = frame.to_xy(g["coordinates"][0], g["coordinates"][1])
            out[zid] = _Zone((float(x), float(y), float(f["properties"]["radius_m"])), None)
            continue
        polys = [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]
        parts = []
        for rings in polys:
            conv = [np.column_stack(frame.to_xy(np.array(r)[:, 0], np.array(r)[:, 1])) for r in rings]
            parts.append(Polygon(conv[0], conv[1:]))
        geom = parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
        shapely.prepare(geom)
        out[zid] = _Zone(None, geom)
    return out


def _runs(viol: NDArray[np.bool_], clear: NDArray[np.bool_], ts: NDArray[np.int64],
          dwell_ms: int, skip_uncertain: bool) -> list[tuple[int, int]]:
    """Episodes as (first violating fix ts, confirming fix ts).

    A run is consecutive certainly-violating fixes; uncertain fixes either
    break it or are skipped. An episode opens when a run has two fixes
    spanning the dwell and closes at a certainly-clear fix.
    """
    out: list[tuple[int, int]] = []
    open_ = False
    start = -1
    count = 0
    for i in range(len(ts)):
        if viol[i]:
            if count == 0:
                start = int(ts[i])
            count += 1
            if not open_ and count >= 2 and ts[i] - start >= dwell_ms:
                out.append((start, int(ts[i])))
                open_ = True
        elif clear[i]:
            count = 0
            open_ = False
        elif not skip_uncertain:
            count = 0
    return out


def _curfew_mask(ts: NDArray[np.int64], tz: str, rule: Any) -> tuple[NDArray[np.bool_], list[int]]:
    """Which ts are inside a window, and the window start instants seen in the day."""
    zone = ZoneInfo(tz)
    t0 = int(ts.min())
    first = dt.datetime.fromtimestamp(t0 / 1000, zone)
    mid = dt.datetime(first.year, first.month, first.day, tzinfo=zone)
    mask = np.zeros(len(ts), dtype=bool)
    starts: list[int] = []
    for w in rule.windows:
        s_min, e_min = w.minutes()
        days = w.weekdays()
        for k in range(-1, 3):
            day = mid + dt.timedelta(days=k)
            if day.weekday() not in days:
                continue
            ws = int((day + dt.timedelta(minutes=s_min)).timestamp() * 1000)
            end_day = day if e_min > s_min else day + dt.timedelta(days=1)
            we = int((end_day + dt.timedelta(minutes=e_min)).timestamp() * 1000)
            mask |= (ts >= ws) & (ts < we)
            starts.append(ws)
    return mask, starts


def verify(zones_text: str | bytes, orders_text: str | bytes, telemetry: Any, truth: dict[str, Any],
           lat0: float, lon0: float) -> list[str]:
    """Problems found (empty when the truth and the tracks agree)."""
    frame = LocalFrame(lat0, lon0)
    zones = _zones(json.loads(zones_text), frame)
    orders = parse_orders(orders_text)
    by_dev = {d: o for o in orders for d in o.devices}
    dec = TelemetryDecoder(now_ms=lambda: 2**62)
    fixes: dict[str, list[Fix]] = defaultdict(list)
    events: dict[str, list[DeviceEvent]] = defaultdict(list)
    faces: dict[str, list[VideoHit]] = defaultdict(list)
    cameras: dict[tuple[str, str], list[int]] = defaultdict(list)
    checkins: dict[str, list[CheckIn]] = defaultdict(list)
    problems: list[str] = []
    newest = -1
    for line in telemetry:
        for m in dec.decode(line).messages:
            if isinstance(m, CheckIn) and newest - m.ts >= CHECKIN_ARRIVAL_MS:
                problems.append(f"check-in of {m.device_id} at {m.ts} arrives {newest - m.ts} ms of "
                                "event time late: its place depends on the lateness horizon")
            newest = max(newest, m.ts)
            if isinstance(m, CheckIn):
                if m.device_id in by_dev:
                    checkins[by_dev[m.device_id].person_id].append(m)
            elif isinstance(m, VideoHit):
                if m.event == "face_match" and m.person_id is not None:
                    faces[m.person_id].append(m)
                elif m.event != "face_match":
                    cameras[(m.camera_id, m.event)].append(m.ts)
            elif isinstance(m, Fix) and m.device_id in by_dev:
                fixes[by_dev[m.device_id].person_id].append(m)
            elif isinstance(m, DeviceEvent) and m.device_id in by_dev:
                events[by_dev[m.device_id].person_id].append(m)
    expected: dict[tuple[str, str, str], list[tuple[int, int]]] = defaultdict(list)
    for e in truth["expected"]:
        expected[(e["person_id"] or "", e["rule_id"], e["kind"])].append(
            (parse_ts(e["opened_at"][0]), parse_ts(e["opened_at"][1])))
    found: dict[tuple[str, str, str], list[tuple[int, int]]] = defaultdict(list)
    latest: dict[str, tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]] = {}
    for o in orders:
        _person(o, fixes.get(o.person_id, []), events.get(o.person_id, []), zones, frame, found,
                problems, latest)
    for o in orders:
        _faces(o, faces.get(o.person_id, []), latest.get(o.person_id), zones, frame, found)
    for o in orders:
        _checkins(o, checkins.get(o.person_id, []), newest, zones, frame, found)
    for (_cam, event), hits in cameras.items():
        prev = None
        for t in sorted(hits):
            if prev is None or t - prev > CAMERA_QUIET_MS:
                found[("", f"video:{event}", f"video_{event}")].append((t, t))
            prev = t
    for o in orders:
        for r in o.rules:
            if r.type == "no_contact" and r.person in latest and o.person_id in latest:
                for t in _contact_moments(latest[o.person_id], latest[r.person], r.effective_distance_m()):
                    found[(o.person_id, r.id, "contact")].append((t, t))
    # compare
    for key in sorted(set(expected) | set(found)):
        exp = sorted(expected.get(key, []))
        got = sorted(found.get(key, []))
        kind = key[2]
        if kind == "contact":
            # moments: each expected window must contain the first moment of a meeting
            for lo, hi in exp:
                if not any(lo <= t <= hi for t, _ in got) or any(lo > t > lo - 600_000 for t, _ in got):
                    problems.append(f"{key}: no contact moment starting in [{lo}, {hi}]")
            for t, _ in got:
                if not any(lo <= t <= lo + 3_600_000 for lo, _ in exp):
                    problems.append(f"{key}: contact moment at {t} not in the truth")
            continue
        if len(exp) != len(got):
            problems.append(f"{key}: truth has {len(exp)} alerts, tracks give {len(got)}: {exp} vs {got}")
            continue
        for (lo, hi), (first, confirm) in zip(exp, got, strict=True):
            if (kind in ("signal_lost", "device_separation", *ALARM_EVENTS) or kind.startswith("video_")
                    or kind.startswith("checkin_")):
                if (lo, hi) != (first, confirm):
                    problems.append(f"{key}: truth {lo}..{hi}, tracks {first}..{confirm}")
            elif not (lo <= first and confirm <= hi):
                problems.append(f"{key}: truth window {lo}..{hi}, run {first}..{confirm}")
    return problems


def _person(
    o: Order, fx: list[Fix], evs: list[DeviceEvent], zones: dict[str, _Zone], frame: LocalFrame,
    found: dict[tuple[str, str, str], list[tuple[int, int]]], problems: list[str],
    latest: dict[str, Any],
) -> None:
    vf, vu = o.valid_from_ms(), o.valid_until_ms()
    uniq = {(m.ts, m.device_id): m for m in fx}  # a device's duplicates collapse
    by_ts: dict[int, set[str]] = defaultdict(set)
    for t, dev in uniq:
        by_ts[t].add(dev)
    for t, devs in sorted(by_ts.items()):
        if len(devs) > 1 and vf <= t < vu:
            # which of two fixes with one timestamp counts last is the engine's choice
            problems.append(f"{o.person_id}: devices {sorted(devs)} report at the same ts {t}: ambiguous")
    fx = [uniq[k] for k in sorted(uniq) if vf <= k[0] < vu]
    evs = [e for e in evs if vf <= e.ts < vu]
    for e in evs:
        if e.event in ALARM_EVENTS:
            found[(o.person_id, e.event, e.event)].append((e.ts, e.ts))
    ts_all = sorted({m.ts for m in fx} | {e.ts for e in evs})
    for r in o.rules:
        if r.type == "signal_loss":
            gaps = np.diff(np.asarray(ts_all, dtype=np.int64))
            for i in np.flatnonzero(gaps > r.effective_after_s() * 1000):
                t = ts_all[int(i)] + r.effective_after_s() * 1000
                found[(o.person_id, r.id, "signal_lost")].append((t, t))
    if not fx:
        return
    ts = np.array([m.ts for m in fx], dtype=np.int64)
    lon = np.array([m.lon for m in fx])
    lat = np.array([m.lat for m in fx])
    acc = np.array([m.accuracy_m for m in fx])
    valid = np.array([m.valid for m in fx])
    x, y = frame.to_xy(lon, lat)
    ts, x, y, acc = ts[valid], x[valid], y[valid], acc[valid]
    latest[o.person_id] = (ts, x, y, acc)
    for r in o.rules:
        dwell = int((r.dwell_s if r.dwell_s is not None else 30.0) * 1000)
        if r.type in ("exclusion", "inclusion", "curfew"):
            assert r.zone is not None
            z = zones[r.zone]
            buf = r.effective_buffer_m()
            d = z.signed(x, y, acc + buf + 1.0)
            if r.type == "exclusion":
                checks = [("exclusion_entered", d < -acc, d > acc)]
                if buf > 0:
                    checks.append(("exclusion_approach", (d > acc) & (d < buf - acc),
                                   (d < -acc) | (d > buf + acc)))
            elif r.type == "inclusion":
                checks = [("inclusion_left", d > acc, d < -acc)]
            else:
                inw, _ = _curfew_mask(ts, o.timezone, r)
                checks = [("curfew_violated", (d > acc) & inw, (d < -acc) | ~inw)]
            for kind, viol, clear in checks:
                a = _runs(viol, clear, ts, dwell, skip_uncertain=False)
                b = _runs(viol, clear, ts, dwell, skip_uncertain=True)
                if a != b:
                    problems.append(f"{(o.person_id, r.id, kind)}: ambiguous runs {a} vs {b}")
                found[(o.person_id, r.id, kind)].extend(a)


def _faces(o: Order, hits: list[VideoHit], gps: Any, zones: dict[str, _Zone], frame: LocalFrame,
           found: dict[tuple[str, str, str], list[tuple[int, int]]]) -> None:
    """Alerts the person's face matches raise (see the module docstring)."""
    vf, vu = o.valid_from_ms(), o.valid_until_ms()
    hits = sorted((h for h in hits if vf <= h.ts < vu and h.confidence is not None
                   and h.confidence >= FACE_MIN_CONFIDENCE), key=lambda h: h.ts)
    if not hits:
        return
    ts, x, y, acc = gps if gps is not None else (np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0))
    separated = False
    video_open: dict[str, int] = {}  # rule -> ts until which a video-opened episode stays open
    for h in hits:
        cx, cy = frame.to_xy(h.lon, h.lat)
        i = int(np.searchsorted(ts, h.ts, side="right")) - 1
        for r in o.rules:
            if r.type != "exclusion" or r.zone is None:
                continue
            z = zones[r.zone]
            if not float(z.signed(np.array([cx]), np.array([cy]), np.array([1.0]))[0]) < 0:
                continue
            key = (o.person_id, r.id, "exclusion_entered")
            if i >= 0:
                d_fix = float(z.signed(x[i:i + 1], y[i:i + 1], acc[i:i + 1] + 1.0)[0])
                if d_fix < -acc[i] and any(first <= int(ts[i]) and confirm <= h.ts
                                           for first, confirm in found.get(key, [])):
                    continue  # corroborates the open GPS episode
            if video_open.get(r.id, -1) >= h.ts:
                continue
            found[key].append((h.ts, h.ts))
            # open until the next certainly-outside valid fix
            later = np.flatnonzero(ts > h.ts)
            d_later = z.signed(x[later], y[later], acc[later] + 1.0) if len(later) else np.zeros(0)
            out = later[d_later > acc[later]] if len(later) else later
            video_open[r.id] = int(ts[out[0]]) if len(out) else 2**62
        if (not separated and i >= 0 and h.ts - int(ts[i]) <= FRESH_MS
                and float(np.hypot(cx - x[i], cy - y[i])) - float(acc[i]) > SEPARATION_M):
            found[(o.person_id, "device_separation", "device_separation")].append((h.ts, h.ts))
            separated = True


def _checkins(o: Order, msgs: list[CheckIn], end_ms: int, zones: dict[str, _Zone], frame: LocalFrame,
              found: dict[tuple[str, str, str], list[tuple[int, int]]]) -> None:
    """Check-in alerts of one order (see the module docstring)."""
    rule = next((r for r in o.rules if r.type == "checkin"), None)
    if rule is None:
        return
    vf, vu = o.valid_from_ms(), o.valid_until_ms()
    first: dict[int, CheckIn] = {}
    for m in msgs:  # a repeated check-in (same phone, same ms) counts once
        if vf <= m.ts < vu and (m.face_score is not None or m.action_ok is not None):
            first.setdefault(m.ts, m)
    cs = [first[t] for t in sorted(first)]
    floor = rule.effective_min_score()

    def passed(c: CheckIn) -> bool:
        face_ok = c.face_score is None or c.face_score >= floor
        return face_ok and c.action_ok is not False and (c.face_score is not None or c.action_ok is True)

    incl = [zones[r.zone] for r in o.rules if r.type == "inclusion" and r.zone is not None]
    where: list[tuple[bool, bool]] = []  # (certainly outside one, certainly inside all)
    for c in cs:
        x, y = frame.to_xy(c.lon, c.lat)
        acc = np.array([c.accuracy_m])
        d = [float(z.signed(np.array([x]), np.array([y]), acc + 1.0)[0]) for z in incl]
        where.append((any(v > c.accuracy_m for v in d), all(v < -c.accuracy_m for v in d)))
    owed = [w for w in owed_between(o.person_id, rule, o.timezone, vf, min(vu, end_ms + 1))
            if w.opens_ms >= vf and w.due_ms <= min(end_ms, vu - 1)]
    good = [c for c in cs if passed(c)]
    steps = sorted([(c.ts, 0, i) for i, c in enumerate(cs)] + [(w.due_ms, 1, i) for i, w in enumerate(owed)])
    is_open = {"checkin_missed": False, "checkin_failed": False, "checkin_outside": False}

    def raise_(kind: str, t: int) -> None:
        if not is_open[kind]:
            is_open[kind] = True
            found[(o.person_id, rule.id, kind)].append((t, t))

    for t, step, i in steps:
        if step == 1:
            if not any(answers(owed[i], c.ts, c.request_id) for c in good):
                raise_("checkin_missed", t)
        elif not passed(cs[i]):
            raise_("checkin_failed", t)
        else:
            is_open["checkin_missed"] = is_open["checkin_failed"] = False
            out, inside = where[i]
            if out:
                raise_("checkin_outside", t)
            elif inside:
                is_open["checkin_outside"] = False


def _contact_moments(a: Any, b: Any, distance_m: float) -> list[int]:
    """Event times at which both latest valid fixes are fresh and certainly within distance."""
    ta, xa, ya, aa = a
    tb, xb, yb, ab = b
    out: list[int] = []
    times = np.union1d(ta, tb)
    ia = np.searchsorted(ta, times, side="right") - 1
    ib = np.searchsorted(tb, times, side="right") - 1
    ok = (ia >= 0) & (ib >= 0)
    ia, ib, times = ia[ok], ib[ok], times[ok]
    fresh = (times - ta[ia] <= 120_000) & (times - tb[ib] <= 120_000)
    dist = np.hypot(xa[ia] - xb[ib], ya[ia] - yb[ib]) + aa[ia] + ab[ib]
    hit = fresh & (dist < distance_m)
    prev = False
    for t, h in zip(times.tolist(), hit.tolist(), strict=True):
        if h and not prev:
            out.append(int(t))
        prev = h
    return out
