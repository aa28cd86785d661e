"""A small supervision scenario with every rule type, for the stream tests.

Two hours of event time around Nanjing with a fix every 30 s per person:
exclusion with an approach buffer, inclusion, a curfew that starts while the
person is out, a no_contact pair that meets, a signal loss, every built-in
device rule, and the three kinds of video hit; on request
(``checkins=True``) three phone-supervised persons under checkin rules too,
one of whom never sends anything (their missed check-ins come from the
deadline timers alone), and (``casework=True``) three persons under
casework: an exclusion with a window, an inclusion suspended by a leave, an
order with a positioning term.
The expected alerts are not written here: the tests compare the stream with
``replay_lines`` on the same messages, which is what the contract promises.
"""

from __future__ import annotations

import json
import random
from typing import Any

from geofence.checkin import owed_between
from geofence.model import (
    CheckIn,
    DeviceEvent,
    Fix,
    Order,
    Telemetry,
    VideoHit,
    encode,
    format_ts,
    parse_orders,
)
from geofence.zones import ZoneCatalogue

T0 = 1795181400000  # 2026-11-20T13:30:00Z = 21:30 in Asia/Shanghai
STEP = 30_000
MINUTES = 120
SCHOOL = (118.80, 32.06)
HOME3 = (118.77, 32.04)


def zones_geojson() -> dict[str, Any]:
    """District (inclusion), school (exclusion), a curfew home, a spare zone."""
    d = 0.05
    cx, cy = 118.79, 32.05
    district = [[cx - d, cy - d], [cx + d, cy - d], [cx + d, cy + d], [cx - d, cy + d],
                [cx - d, cy - d]]
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "320102", "properties": {"name": "district"},
         "geometry": {"type": "Polygon", "coordinates": [district]}},
        {"type": "Feature", "id": "school", "properties": {"radius_m": 200},
         "geometry": {"type": "Point", "coordinates": list(SCHOOL)}},
        {"type": "Feature", "id": "home-P3", "properties": {"radius_m": 100},
         "geometry": {"type": "Point", "coordinates": list(HOME3)}},
        {"type": "Feature", "id": "bar", "properties": {"radius_m": 150, "category": "venue",
                                                        "jurisdiction": "320102"},
         "geometry": {"type": "Point", "coordinates": [118.75, 32.03]}},
        # venues of a category rule (P14): one in the county, one in the next
        {"type": "Feature", "id": "club", "properties": {"radius_m": 120, "category": "venue",
                                                         "jurisdiction": "320102"},
         "geometry": {"type": "Point", "coordinates": [118.82, 32.03]}},
        {"type": "Feature", "id": "club-next-county",
         "properties": {"radius_m": 120, "category": "venue", "jurisdiction": "320104"},
         "geometry": {"type": "Point", "coordinates": [118.70, 32.00]}},
    ]}


def orders_json() -> list[dict[str, Any]]:
    """Seven persons, one per rule family."""
    def order(pid: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        return {"person_id": pid, "devices": [f"WB-{pid}"], "jurisdiction": "320102",
                "rules": rules}
    return [
        order("P1", [{"id": "r1", "type": "exclusion", "zone": "school", "buffer_m": 300}]),
        order("P2", [{"id": "r2", "type": "inclusion", "zone": "320102"}]),
        order("P3", [{"id": "r3", "type": "curfew", "zone": "home-P3",
                      "windows": [{"days": "daily", "start": "22:00", "end": "06:00"}]}]),
        order("P4", [{"id": "r4", "type": "no_contact", "person": "P5", "distance_m": 200}]),
        order("P5", []),
        order("P6", [{"id": "r6", "type": "signal_loss", "after_s": 300}]),
        order("P7", []),
    ]


def checkin_orders_json() -> list[dict[str, Any]]:
    """Three persons supervised by phone: windows and random requests (P8, who
    must stay in the district), a window and signal loss (P9), and a window
    and random requests under an order valid since before the scenario whose
    phone stays silent throughout (P10)."""
    return [
        {"person_id": "P8", "devices": ["PH-P8"], "jurisdiction": "320102", "rules": [
            {"id": "r8", "type": "inclusion", "zone": "320102"},
            {"id": "c8", "type": "checkin", "windows": [{"start": "22:00", "end": "22:30"}],
             "random": {"per_day": 3, "start": "21:30", "end": "23:10",
                        "answer_within_s": 600}}]},
        {"person_id": "P9", "devices": ["PH-P9"], "jurisdiction": "320102", "rules": [
            {"id": "c9", "type": "checkin", "windows": [{"start": "22:00", "end": "22:20"}],
             "severity": "red"},
            {"id": "s9", "type": "signal_loss", "after_s": 1200}]},
        {"person_id": "P10", "devices": ["PH-P10"], "jurisdiction": "320102",
         "valid_from": "2026-11-20T21:00:00+08:00", "rules": [
             {"id": "c10", "type": "checkin", "windows": [{"start": "22:00", "end": "22:15"}],
              "random": {"per_day": 2, "start": "21:30", "end": "23:00",
                         "answer_within_s": 600}}]},
    ]


def casework_orders_json() -> list[dict[str, Any]]:
    """P13: an exclusion from the bar only 22:00-23:00 (in the bar from 21:30);
    P11: the district suspended by a leave from 21:50 to 22:30 (away 21:40 to
    22:50: in breach, exempted, overdue, back); P12: a positioning term ending
    at 23:00 (away from 22:40; silent from 23:10); P14: an exclusion from every
    venue of the county (the club at 21:50, the next county's club at 22:20,
    the bar at 22:30)."""
    def ts(minute: int) -> str:
        return format_ts(T0 + minute * 60_000)

    return [
        {"person_id": "P13", "devices": ["WB-P13"], "jurisdiction": "320102", "rules": [
            {"id": "r13", "type": "exclusion", "zone": "bar", "buffer_m": 100,
             "windows": [{"start": "22:00", "end": "23:00"}]}]},
        {"person_id": "P11", "devices": ["WB-P11"], "jurisdiction": "320102", "rules": [
            {"id": "r11", "type": "inclusion", "zone": "320102"}],
         "exemptions": [{"id": "L-11", "from": ts(20), "until": ts(60), "rules": ["r11"],
                         "temporary_rules": [{"id": "L-11/t1", "type": "exclusion",
                                              "zone": "school"}],
                         "reason": "medical", "requested_by": "officer-li",
                         "approved_by": "chief-wang", "level": "office"}]},
        {"person_id": "P12", "devices": ["WB-P12"], "jurisdiction": "320102", "rules": [
            {"id": "r12", "type": "inclusion", "zone": "320102"},
            {"id": "s12", "type": "signal_loss", "after_s": 300}],
         "positioning": {"grounds": "failed_to_report", "from": ts(-30 * 24 * 60),
                         "until": ts(90), "approved_by": "chief-wang", "remind_days": 0}},
        {"person_id": "P14", "devices": ["WB-P14"], "jurisdiction": "320102", "rules": [
            {"id": "r14", "type": "exclusion", "category": "venue", "area": "county",
             "buffer_m": 100}]},
    ]


def zones() -> ZoneCatalogue:
    return ZoneCatalogue.from_geojson(zones_geojson())


def orders(checkins: bool = False, casework: bool = False) -> list[Order]:
    return parse_orders(json.dumps(orders_json() + (checkin_orders_json() if checkins else [])
                                   + (casework_orders_json() if casework else [])))


def checkin_messages() -> list[Telemetry]:
    """The phone persons' check-ins: P8 answers its window from outside the
    district, fails once, answers the first random request (by its id) and
    misses the others; P9 misses its window while silent, then fails; P10
    sends nothing at all."""
    p8 = next(o for o in orders(checkins=True) if o.person_id == "P8")
    rule = next(r for r in p8.rules if r.type == "checkin")
    requests = [w for w in owed_between("P8", rule, p8.timezone, T0, T0 + MINUTES * 60_000)
                if w.requested]
    home, away = (118.79, 32.05), (118.86, 32.05)

    def ci(dev: str, minute: float, pos: tuple[float, float] = home, **kw: Any) -> CheckIn:
        kw.setdefault("face_score", 0.93)
        return CheckIn(device_id=dev, ts=T0 + int(minute * 60_000), lat=pos[1], lon=pos[0],
                       accuracy_m=20.0, method="face", **kw)

    first = requests[0]
    out: list[Telemetry] = [
        ci("PH-P8", 5), ci("PH-P8", 20, face_score=0.41), ci("PH-P8", 22, action_ok=True),
        ci("PH-P8", 45, away), ci("PH-P8", 45, away), ci("PH-P8", 75),
        CheckIn(device_id="PH-P8", ts=first.opens_ms + 90_000, lat=home[1], lon=home[0],
                face_score=0.97, request_id=first.key),
        ci("PH-P9", 2), ci("PH-P9", 70), ci("PH-P9", 90, action_ok=False),
    ]
    out.sort(key=lambda m: m.ts)
    return out


def _lerp(a: tuple[float, float], b: tuple[float, float], f: float) -> tuple[float, float]:
    return (a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f)


def _pos(pid: str, minute: float) -> tuple[float, float] | None:
    """Where a person is at a minute of the scenario (``None``: silent)."""
    if pid == "P1":  # approaches the school, goes in, leaves
        far = (118.83, 32.08)
        near = (SCHOOL[0] + 0.0035, SCHOOL[1])  # ~330 m east: inside the 300 m buffer? no
        edge = (SCHOOL[0] + 0.0030, SCHOOL[1])  # ~283 m: within buffer, outside zone
        if minute < 15:
            return _lerp(far, near, minute / 15)
        if minute < 30:
            return edge
        if minute < 50:
            return SCHOOL
        return far
    if pid == "P2":  # leaves the district for twenty minutes
        return (118.86, 32.05) if 40 <= minute < 60 else (118.79, 32.05)
    if pid == "P3":  # out when the 22:00 window starts, home at 22:40
        return (118.78, 32.045) if 20 <= minute < 70 else HOME3
    if pid == "P4":
        return (118.76, 32.07)
    if pid == "P5":  # meets P4 between minutes 60 and 80
        return (118.7605, 32.0702) if 60 <= minute < 80 else (118.81, 32.03)
    if pid == "P6":  # silent from minute 30 to 60
        return None if 30 <= minute < 60 else (118.79, 32.05)
    away = (118.86, 32.05)
    if pid == "P13":  # in the bar until minute 100 (its window: minutes 30 to 90)
        return (118.75, 32.03) if minute < 100 else (118.79, 32.05)
    if pid == "P11":  # away from minute 10 to 80, by the school at 30 to 35
        if 30 <= minute < 35:
            return SCHOOL
        return away if 10 <= minute < 80 else (118.79, 32.05)
    if pid == "P12":  # away from minute 70, silent from 100
        return None if minute >= 100 else away if minute >= 70 else (118.79, 32.05)
    if pid == "P14":  # the club, then the next county's club, then the bar
        stops = ((20, 35, (118.82, 32.03)), (50, 60, (118.70, 32.00)), (60, 75, (118.75, 32.03)))
        return next((at for lo, hi, at in stops if lo <= minute < hi), (118.795, 32.045))
    return (118.795, 32.055)


def messages(seed: int = 7, checkins: bool = False, casework: bool = False) -> list[Telemetry]:
    """Every message of the scenario in event-time order (with ``checkins``,
    the phone persons' check-ins as well; with ``casework``, the fixes of
    P11 to P13, drawn after the others so the rest stays the same)."""
    rng = random.Random(seed)
    out: list[Telemetry] = []
    for k in range(MINUTES * 60_000 // STEP):
        ts = T0 + k * STEP
        minute = k * STEP / 60_000
        for pid in ("P1", "P2", "P3", "P4", "P5", "P6", "P7"):
            pos = _pos(pid, minute)
            if pos is None:
                continue
            jitter = rng.uniform(-1e-5, 1e-5)
            out.append(Fix(device_id=f"WB-{pid}", ts=ts + rng.randint(0, 900), lat=pos[1] + jitter,
                           lon=pos[0] - jitter, accuracy_m=8.0))
    events = [(10, "tamper"), (15, "sos"), (20, "battery_low"), (25, "power_off"),
              (35, "removed")]
    for minute, ev in events:
        out.append(DeviceEvent(device_id="WB-P7", ts=T0 + minute * 60_000 + 1000, event=ev))
    out.append(VideoHit(camera_id="CAM-1", ts=T0 + 32 * 60_000 + 500, event="face_match",
                        lat=SCHOOL[1], lon=SCHOOL[0], person_id="P1", confidence=0.95))
    out.append(VideoHit(camera_id="CAM-2", ts=T0 + 10 * 60_000 + 500, event="face_match",
                        lat=32.07, lon=118.79, person_id="P2", confidence=0.9))
    out.append(VideoHit(camera_id="CAM-3", ts=T0 + 50 * 60_000 + 500, event="fight",
                        lat=32.05, lon=118.79, jurisdiction="320102"))
    if checkins:
        out.extend(checkin_messages())
    if casework:
        for k in range(MINUTES * 60_000 // STEP):
            minute = k * STEP / 60_000
            for pid in ("P13", "P11", "P12"):
                pos = _pos(pid, minute)
                if pos is not None:
                    out.append(Fix(device_id=f"WB-{pid}", ts=T0 + k * STEP + rng.randint(0, 900),
                                   lat=pos[1], lon=pos[0], accuracy_m=8.0))
        for k in range(MINUTES * 60_000 // STEP):  # drawn last: the others stay the same
            pos = _pos("P14", k * STEP / 60_000)
            assert pos is not None
            out.append(Fix(device_id="WB-P14", ts=T0 + k * STEP + rng.randint(0, 900),
                           lat=pos[1], lon=pos[0], accuracy_m=8.0))
    out.sort(key=lambda m: m.ts)
    return out


def final_heartbeats(checkins: bool = False, casework: bool = False) -> list[Telemetry]:
    """One heartbeat per person after the end, so the stream's watermark reaches
    the same event time as replay's flush (but none from P10's silent phone:
    the others on its partition move its event time)."""
    end = T0 + MINUTES * 60_000 + 1000
    phones = ["PH-P8", "PH-P9"] if checkins else []
    more = ["WB-P13", "WB-P11", "WB-P12", "WB-P14"] if casework else []
    return [DeviceEvent(device_id=d, ts=end, event="heartbeat")
            for d in [*(f"WB-P{i}" for i in range(1, 8)), *phones, *more]]


def as_lines(msgs: list[Telemetry]) -> list[bytes]:
    """JSONL lines (one message each) for ``replay_lines``."""
    return [encode(m) for m in msgs]


def shuffled_within(msgs: list[Telemetry], window_ms: int, seed: int = 3) -> list[Telemetry]:
    """Reorder messages inside consecutive windows shorter than the lateness horizon."""
    rng = random.Random(seed)
    out: list[Telemetry] = []
    chunk: list[Telemetry] = []
    start = msgs[0].ts if msgs else 0
    for m in msgs:
        if m.ts - start >= window_ms:
            rng.shuffle(chunk)
            out.extend(chunk)
            chunk, start = [], m.ts
        chunk.append(m)
    rng.shuffle(chunk)
    out.extend(chunk)
    return out
