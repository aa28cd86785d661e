"""Phone-supervised persons of ``wardstream demo``, their check-ins staged from the start.

The simulator's phone persons (:mod:`simulators.phones`) check in at the
local hours their orders fix (morning windows, daytime requests), so a demo
started in the evening would show none of their alerts for hours. The demo
adds a few phone persons of its own whose ``checkin`` rules are set from
the moment the demo starts (a one-minute window opening within the next
minute or two, random requests in the following quarter of an hour), and lets the
simulator plan their check-ins with its own behaviours (an impostor, a
failed liveness action, a check-in from another district, a missed window,
a late answer, a diligent person) and render them as the phone app sends
them. The live feed posts each one to the gateway's ``POST /checkin`` with
the phone's key, at its time.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from geofence.checkin import owed_between
from geofence.model import parse_order
from simulators.caseload import Caseload
from simulators.people import sample_in
from simulators.phones import (
    CheckinPlan,
    PhonePerson,
    checkin_alerts,
    checkin_lines,
    outside_point,
    plan_day,
)

MINUTE_MS = 60_000
DEMO_PHONES: tuple[tuple[str, bool, bool], ...] = (
    # behaviour, scheduled window, random requests
    ("impostor", True, False),
    ("outside", True, False),
    ("missed", True, False),
    ("action_failed", True, True),
    ("late_answer", False, True),
    ("on_time", True, True),
)
"""The demo's phone persons: what each does and what its check-in rule asks."""
ENROL_BEFORE_MS = 20_000
"""Each demo phone's enrolment check-in comes this long before its first window opens."""
WINDOW_MIN = 1
"""Minutes of the scheduled window that opens as the demo starts."""
RANDOM_MIN = (WINDOW_MIN + 1, WINDOW_MIN + 16)
"""Minutes after the window opens between which random requests fall."""


@dataclass
class DemoPhones:
    """The demo's phone persons: orders, check-ins (``(delivery ms, message)``), expected alerts."""

    orders: list[dict[str, Any]]
    checkins: list[tuple[int, dict[str, Any]]]
    expected: list[dict[str, Any]]


def _hhmm(ms: int, tz: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz).strftime("%H:%M")


def _rule(opens_ms: int, tz: ZoneInfo, window: bool, random: bool) -> dict[str, Any]:
    """A check-in rule whose window opens at ``opens_ms`` (a whole minute) and whose
    random requests follow it; no random part where it would cross local midnight."""
    rule: dict[str, Any] = {"id": "checkin", "type": "checkin"}
    if window:
        rule["windows"] = [{"days": "daily", "start": _hhmm(opens_ms, tz),
                            "end": _hhmm(opens_ms + WINDOW_MIN * MINUTE_MS, tz)}]
    first = opens_ms + RANDOM_MIN[0] * MINUTE_MS
    last = opens_ms + RANDOM_MIN[1] * MINUTE_MS
    same_day = (dt.datetime.fromtimestamp(first / 1000, tz).date()
                == dt.datetime.fromtimestamp(last / 1000, tz).date())
    if random and same_day:
        rule["random"] = {"per_day": 2, "start": _hhmm(first, tz), "end": _hhmm(last, tz),
                          "answer_within_s": 240}
    if "windows" not in rule and "random" not in rule:  # a demo started just before midnight
        rule["windows"] = [{"days": "daily", "start": _hhmm(opens_ms, tz),
                            "end": _hhmm(opens_ms + WINDOW_MIN * MINUTE_MS, tz)}]
    return rule


def demo_phones(caseload: Caseload, start_ms: int, lead_ms: int = 30_000,
                seed: int = 11) -> DemoPhones:
    """Phone persons numbered after the caseload's persons, with rules set from ``start_ms``.

    Their first window opens at the first whole minute at least ``lead_ms``
    after ``start_ms`` (the time the demo's parts need to start); each phone
    checks in once, on enrolment, ``ENROL_BEFORE_MS`` before it. Their
    check-ins cover what they owe in the next hour.
    """
    cfg, city = caseload.config, caseload.city
    tz = ZoneInfo(cfg.timezone)
    opens = -(-(start_ms + lead_ms) // MINUTE_MS) * MINUTE_MS
    rng = np.random.default_rng([seed, start_ms // MINUTE_MS])
    weights = np.array([d.core.area for d in city.districts])
    weights /= weights.sum()
    first = len(caseload.persons)
    phones: list[PhonePerson] = []
    orders: list[dict[str, Any]] = []
    for k, (behaviour, window, random) in enumerate(DEMO_PHONES):
        n = first + k + 1
        d = city.districts[int(rng.choice(len(weights), p=weights))]
        home = sample_in(rng, d.core, 1)[0]
        inside = [home, *sample_in(rng, d.core, 2, home, 300.0, 3000.0)]
        rule = _rule(opens, tz, window, random)
        person, phone = f"P-{n:05d}", f"PH-{n:06d}"
        order: dict[str, Any] = {
            "person_id": person, "devices": [phone], "jurisdiction": d.code,
            "timezone": cfg.timezone,
            "rules": [{"id": "incl", "type": "inclusion", "zone": d.code}, rule]}
        p = PhonePerson(person, phone, d.code, behaviour, rule, float(rule.get("min_score", 0.8)))
        parsed = parse_order(order)
        p.owed = owed_between(p.person_id, parsed.rules[1], cfg.timezone, start_ms,
                              opens + 60 * MINUTE_MS)
        plan_day(rng, p, inside, outside_point(rng, city, d.code, home))
        # the app checks in once when the phone is enrolled, before anything is owed:
        # these orders carry no valid_from, so check-ins are owed from the first message
        enrolled = opens - ENROL_BEFORE_MS
        p.checkins.insert(0, CheckinPlan(enrolled, home[0], home[1], 12.0, 0.95, True,
                                         "face_action", None, False))
        for kind, t in checkin_alerts(p.owed, p.checkins, p.min_score):
            p.expected.append({"person_id": p.person_id, "kind": kind, "opened_at": t})
        phones.append(p)
        orders.append(order)
    lines = sorted(checkin_lines(rng, city, phones))
    return DemoPhones(orders, [(at, json.loads(line)) for at, _, line in lines],
                      [e for p in phones for e in p.expected])


def write_checkins(path: Path, checkins: list[tuple[int, dict[str, Any]]]) -> None:
    """The check-ins as JSON lines ``{"deliver_ms": ..., "message": {...}}`` in delivery order
    (what ``wardstream simulate live --checkins`` reads)."""
    with path.open("w", encoding="utf-8") as fh:
        for at, msg in checkins:
            fh.write(json.dumps({"deliver_ms": at, "message": msg}) + "\n")
