"""Phone-supervised persons: identity check-ins instead of a wristband.

Most persons under community corrections carry no wristband: the county
supervises them through an app on their phone, which asks for a face (and
often a liveness action) in scheduled windows and at random requests. This
module adds such persons to a simulated day, after the wristband persons and
from a random stream of its own, so the wristband persons of a seed are the
same whether or not phones are simulated.

Each phone person has one phone (``PH-000123``), an order with an inclusion
rule (their district) and a ``checkin`` rule, and one behaviour:

``on_time``
    every owed check-in answered in time, from inside the district.
``missed``
    one owed check-in never answered.
``impostor``
    someone else faces the camera (face score below ``min_score``); half of
    them are followed by the real person in time, the others not at all.
``action_failed``
    the liveness action fails (``action_ok`` false); retried like impostors.
``late_answer``
    one owed check-in answered 2-20 minutes after its deadline.
``outside``
    one check-in made from another district.
``late_arrival``
    one check-in made seconds before its deadline reaches the system 20-75 s
    later (after the deadline's timer could have fired, inside the 120 s
    lateness horizon).

What is owed comes from :func:`geofence.checkin.owed_between` (the one home
of the schedule); which alerts open when is worked out here from the
planned check-ins by :func:`checkin_alerts`, which follows the product's
check-in rules independently of the engine. Margins keep every answer
unambiguous: check-ins inside the district are in its core (800 m from the
boundary), check-ins outside are in another district's core, accuracy is at
most 60 m and the position error below it; no check-in shares its
millisecond with a deadline; every deadline falls before 22:00 local, long
before the day's last message, and the orders start at the day's midnight,
so nothing is owed before the first telemetry.

Each phone also sends a heartbeat when the app wakes in the morning (06:00
to 07:00 local), before anything is owed, as the app does. The truth does
not depend on it: the orders carry a ``valid_from`` (the day's midnight), so
check-ins are owed from then on whether or not the phone ever sends
anything (docs/rules.md, "Check-ins"), and the tests replay the same day
without the heartbeats to the same alerts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from geofence.checkin import Owed, answers, owed_between
from geofence.model import format_ts, parse_order
from simulators.caseconfig import SimConfig
from simulators.city import City
from simulators.people import sample_in

PHONE_BEHAVIOURS: tuple[str, ...] = (
    "on_time", "missed", "impostor", "action_failed", "late_answer", "outside", "late_arrival",
)
_CYCLE: tuple[str, ...] = (
    "on_time", "missed", "impostor", "late_answer", "on_time", "action_failed", "outside",
    "late_arrival", "on_time", "missed", "outside", "impostor",
)
"""Behaviours in the order phone persons receive them (a quarter answer everything)."""

CHECKIN_RULE_ID = "checkin"
LATENESS_MS = 120_000
"""The engine's default lateness horizon: late arrivals stay well inside it."""
_SEQ0 = 1 << 40
"""Tie-break sequence of check-in lines among the day's irregular lines (after all others)."""


def _variant(k: int) -> dict[str, Any]:
    """The k-th check-in rule shape: windows, random requests or both."""
    v = k % 4
    rule: dict[str, Any] = {"id": CHECKIN_RULE_ID, "type": "checkin"}
    if v == 0:
        rule["windows"] = [{"days": "daily", "start": "08:00", "end": "10:00"}]
    elif v == 1:
        rule["random"] = {"per_day": 2, "start": "09:00", "end": "20:00", "answer_within_s": 900}
    elif v == 2:
        rule["windows"] = [{"days": "daily", "start": "07:30", "end": "09:00"},
                           {"days": "daily", "start": "19:00", "end": "21:00"}]
        rule["random"] = {"per_day": 1, "start": "10:00", "end": "18:00", "answer_within_s": 1800}
        rule["min_score"] = 0.85
    else:
        rule["windows"] = [{"days": "mon,tue,wed,thu,fri", "start": "12:00", "end": "14:00"}]
        rule["random"] = {"per_day": 3, "start": "09:00", "end": "21:00", "answer_within_s": 600}
        rule["min_score"] = 0.75
    return rule


@dataclass
class CheckinPlan:
    """One check-in a phone sends: when, from where, with which results."""

    ts: int                        # event time, epoch ms
    x: float
    y: float
    acc: float
    face_score: float | None
    action_ok: bool | None
    method: str
    request_id: str | None
    outside: bool                  # certainly outside the person's district
    delay_ms: int = 1500           # delivery after ts
    resent_ms: int | None = None   # the app sends it again this long after the first delivery

    def verified(self, min_score: float) -> bool:
        """The product's rule: at least one result, and none failed."""
        if self.face_score is None and self.action_ok is None:
            return False
        return ((self.face_score is None or self.face_score >= min_score)
                and self.action_ok is not False
                and (self.face_score is not None or self.action_ok is True))


@dataclass
class PhonePerson:
    """A phone-supervised person, their order's check-in rule and their day."""

    person_id: str
    device_id: str
    district: str
    behaviour: str
    rule: dict[str, Any]
    min_score: float
    owed: list[Owed] = field(default_factory=list)
    checkins: list[CheckinPlan] = field(default_factory=list)
    expected: list[dict[str, Any]] = field(default_factory=list)
    wake_ms: int | None = None     # the app's morning heartbeat (before anything is due)


def checkin_alerts(owed: Sequence[Owed], checkins: Sequence[CheckinPlan],
                   min_score: float) -> list[tuple[str, int]]:
    """The check-in alerts a correct engine opens, as ``(kind, opened_at ms)``.

    Event time order; a check-in at a deadline's very millisecond comes
    before the deadline. ``checkin_missed`` opens at the deadline of an owed
    check-in that no verified check-in answers (:func:`geofence.checkin.answers`)
    unless one is open already; ``checkin_failed`` at a check-in that is not
    verified; ``checkin_outside`` at a verified check-in outside the
    district. A verified check-in clears the missed and failed episodes, and
    the outside one when it is made inside. Repeated check-ins (same
    millisecond) count once.
    """
    seen: set[int] = set()
    cs = []
    for c in sorted(checkins, key=lambda c: c.ts):
        if c.ts not in seen:
            seen.add(c.ts)
            cs.append(c)
    good = [c for c in cs if c.verified(min_score)]
    events: list[tuple[int, int, int]] = [(c.ts, 0, i) for i, c in enumerate(cs)]
    events += [(o.due_ms, 1, i) for i, o in enumerate(owed)]
    events.sort()
    open_: dict[str, bool] = {"checkin_missed": False, "checkin_failed": False,
                              "checkin_outside": False}
    out: list[tuple[str, int]] = []

    def opens(kind: str, t: int) -> None:
        if not open_[kind]:
            open_[kind] = True
            out.append((kind, t))

    for t, what, i in events:
        if what == 1:
            o = owed[i]
            if not any(answers(o, c.ts, c.request_id) for c in good):
                opens("checkin_missed", t)
            continue
        c = cs[i]
        if not c.verified(min_score):
            opens("checkin_failed", t)
            continue
        open_["checkin_missed"] = open_["checkin_failed"] = False
        if c.outside:
            opens("checkin_outside", t)
        else:
            open_["checkin_outside"] = False
    return out


def _answer_time(rng: np.random.Generator, o: Owed) -> int:
    """A time a diligent person answers ``o``: requests within minutes, windows anywhere inside.

    Away from both ends by a margin (a minute for a window, 20 s after a request
    and 30 s before its deadline), shrunk to a quarter of ``o`` where ``o`` is short.
    """
    span = o.due_ms - o.opens_ms
    if o.requested:
        hi = min(o.due_ms - min(30_000, span // 4), o.opens_ms + 8 * 60_000)
        return int(rng.integers(o.opens_ms + min(20_000, span // 4), hi))
    margin = min(60_000, span // 4)
    return int(rng.integers(o.opens_ms + margin, o.due_ms - margin))


def _results(rng: np.random.Generator, min_score: float, k: int) -> tuple[float | None, bool | None, str]:
    """Passing results by one of the three methods; some face scores exactly at ``min_score``."""
    method = ("face_action", "face", "action", "face_action")[k % 4]
    if method == "action":
        return None, True, method
    score = min_score if rng.random() < 0.1 else round(float(rng.uniform(min_score + 0.02, 0.99)), 3)
    return score, (True if method == "face_action" else None), method


def plan_day(rng: np.random.Generator, p: PhonePerson, inside: list[tuple[float, float]],
             outside_pt: tuple[float, float]) -> None:
    """Check-ins answering every owed one, then the person's behaviour applied to one of them."""
    def make(t: int, o: Owed | None, k: int) -> CheckinPlan:
        x, y = inside[k % len(inside)]
        face, action, method = _results(rng, p.min_score, k)
        acc = float(np.clip(rng.lognormal(math.log(14.0), 0.5), 3.0, 60.0))
        return CheckinPlan(t, x, y, round(acc, 1), face, action, method,
                           o.key if o is not None and o.requested else None, False,
                           int(rng.integers(300, 4000)))

    planned: list[tuple[Owed, CheckinPlan]] = []
    for k, o in enumerate(p.owed):
        for _ in range(20):  # a window's check-in away from requests it would also answer
            t = _answer_time(rng, o)
            if o.requested or not any(q.requested and q.opens_ms - 60_000 <= t <= q.due_ms + 60_000
                                      for q in p.owed):
                break
        planned.append((o, make(t, o, k)))
    sole = [i for i, (o, c) in enumerate(planned)
            if not any(answers(o, c2.ts, c2.request_id) for j, (_, c2) in enumerate(planned) if j != i)]
    b = p.behaviour
    if b != "on_time" and sole:
        i = sole[int(rng.integers(len(sole)))]
        o, c = planned[i]
        if b == "missed":
            planned.pop(i)
        elif b in ("impostor", "action_failed"):
            if b == "impostor":
                c.face_score = round(float(rng.uniform(0.05, p.min_score - 0.15)), 3)
                c.action_ok = True if c.method == "face_action" else None
                c.method = "face" if c.method == "action" else c.method
            else:
                c.action_ok = False
                if c.method == "face":
                    c.method = "face_action"
            retry = c.ts + int(rng.integers(90_000, 300_000))
            if rng.random() < 0.5 and retry < o.due_ms - 10_000:
                planned.append((o, make(retry, o, i + 1)))
        elif b == "late_answer":
            c.ts = o.due_ms + int(rng.integers(120_000, 1_200_000))
        elif b == "outside":
            c.x, c.y, c.outside = outside_pt[0], outside_pt[1], True
        elif b == "late_arrival":
            c.ts = o.due_ms - int(rng.integers(3_000, 15_000))
            c.delay_ms = int(rng.integers(20_000, 75_000))
    elif b != "on_time":
        p.behaviour = "on_time"  # every owed check-in is answered twice over: nothing to stage
    cs = [c for _, c in planned]
    # the app re-sends now and then (a lost acknowledgement): a duplicate of the same check-in
    for c in cs:
        if rng.random() < 0.1 and c.delay_ms < 5000:
            c.resent_ms = int(rng.integers(5_000, 30_000))
    deadlines = {o.due_ms for o in p.owed}
    for c in cs:  # a check-in never shares its millisecond with a deadline
        while c.ts in deadlines:
            c.ts -= 1
    p.checkins = sorted(cs, key=lambda c: c.ts)


def outside_point(rng: np.random.Generator, city: City, code: str,
                  home: tuple[float, float]) -> tuple[float, float]:
    """A point in the core of the district whose centre is nearest ``home`` among the
    others (800 m inside it, so well outside ``code``): a trip to the next county."""
    others = [d for d in city.districts if d.code != code]
    dist = [math.hypot(c.x - home[0], c.y - home[1]) for c in (d.geom.centroid for d in others)]
    return sample_in(rng, others[int(np.argmin(dist))].core, 1)[0]


def phone_rng(cfg: SimConfig) -> np.random.Generator:
    """The phone persons' random stream, apart from the wristband persons' one."""
    return np.random.default_rng([cfg.seed, 0x70686F6E65])  # "phone"


def phone_persons(rng: np.random.Generator, cfg: SimConfig, city: City, day0: int,
                  first_index: int, count: int) -> list[PhonePerson]:
    """``count`` phone persons numbered after ``first_index`` wristband persons, with their day."""
    weights = np.array([d.core.area for d in city.districts])
    weights /= weights.sum()
    day_end = day0 + 86_400_000
    out: list[PhonePerson] = []
    for k in range(count):
        n = first_index + k + 1
        d = city.districts[int(rng.choice(len(weights), p=weights))]
        home = sample_in(rng, d.core, 1)[0]
        inside = [home, *sample_in(rng, d.core, 2, home, 300.0, 3000.0)]
        rule = _variant(k)
        behaviour = _CYCLE[k % len(_CYCLE)]
        p = PhonePerson(f"P-{n:05d}", f"PH-{n:06d}", d.code, behaviour, rule,
                        float(rule.get("min_score", 0.8)))
        parsed = parse_order({"person_id": p.person_id, "devices": [p.device_id],
                              "jurisdiction": d.code, "timezone": cfg.timezone, "rules": [rule]})
        p.owed = owed_between(p.person_id, parsed.rules[0], cfg.timezone, day0, day_end)
        plan_day(rng, p, inside, outside_point(rng, city, d.code, home))
        wake = p.wake_ms = day0 + int(rng.integers(6 * 3_600_000, 7 * 3_600_000))
        for kind, t in checkin_alerts(p.owed, p.checkins, p.min_score):
            p.expected.append({"person_id": p.person_id, "rule_id": CHECKIN_RULE_ID, "kind": kind,
                               "opened_at": [format_ts(t), format_ts(t)], "late": False,
                               "scenario": f"checkin_{p.behaviour}"})
        assert all(wake < o.opens_ms and o.due_ms < day0 + 22 * 3_600_000 for o in p.owed)
        out.append(p)
    return out


def phone_orders(cfg: SimConfig, phones: Sequence[PhonePerson], day0: int) -> list[dict[str, Any]]:
    """The phone persons' orders: in force from the day's midnight, an inclusion and a check-in rule."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(cfg.timezone)

    def iso(ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, tz).isoformat()

    return [{"person_id": p.person_id, "devices": [p.device_id], "jurisdiction": p.district,
             "timezone": cfg.timezone, "valid_from": iso(day0),
             "valid_until": iso(day0 + 90 * 86_400_000),
             "rules": [{"id": "incl", "type": "inclusion", "zone": p.district}, p.rule]}
            for p in phones]


_ENC = msgspec.json.Encoder()


def checkin_lines(rng: np.random.Generator, city: City,
                  phones: Sequence[PhonePerson]) -> list[tuple[int, int, bytes]]:
    """Every phone message as ``(delivery ms, sequence, JSON line)``: the morning
    heartbeat (when the person has one), then the check-ins, re-sends included.

    The reported position is the planned one plus an error below the reported accuracy.
    """
    out: list[tuple[int, int, bytes]] = []
    seq = _SEQ0
    for p in phones:
        if p.wake_ms is not None:
            hb = b'{"kind":"device_event","device_id":"%s","ts":%d,"event":"heartbeat"}' % (
                p.device_id.encode(), p.wake_ms)
            out.append((p.wake_ms + 1000, seq, hb))
            seq += 1
        for c in p.checkins:
            frac = min(float(rng.rayleigh(0.45)), 0.95)
            ang = float(rng.uniform(0, 2 * math.pi))
            lon, lat = city.frame.to_lonlat(c.x + c.acc * frac * math.cos(ang),
                                            c.y + c.acc * frac * math.sin(ang))
            msg: dict[str, Any] = {"kind": "checkin", "device_id": p.device_id, "ts": c.ts,
                                   "lat": round(float(lat), 6), "lon": round(float(lon), 6),
                                   "accuracy_m": c.acc}
            if c.face_score is not None:
                msg["face_score"] = c.face_score
            if c.action_ok is not None:
                msg["action_ok"] = c.action_ok
            msg["method"] = c.method
            if c.request_id is not None:
                msg["request_id"] = c.request_id
            line = _ENC.encode(msg)
            out.append((c.ts + c.delay_ms, seq, line))
            seq += 1
            if c.resent_ms is not None:
                out.append((c.ts + c.delay_ms + c.resent_ms, seq, line))
                seq += 1
    return out
