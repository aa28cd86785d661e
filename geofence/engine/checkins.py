"""The checkin rule's state machine: what is owed, check-ins and deadlines.

Part of the rule state machines (:mod:`geofence.engine.machines`): a
check-in of a person under a checkin rule (:func:`checkin_step`) and the
timer at a check-in deadline (:func:`checkin_deadline`), with what is owed
taken from :mod:`geofence.checkin`, the one home of the schedule. See
docs/rules.md, "Check-ins".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from geofence.checkin import (
    INSIDE,
    OUTSIDE,
    Owed,
    answers,
    checkin_verified,
    owed_between,
    placement,
)
from geofence.engine.classify import rule_zone
from geofence.engine.config import _INF, Key
from geofence.engine.state import Entry, Lane, LaneState, LogItem
from geofence.model import CheckIn
from geofence.rules import INCLUSION, PersonSpec

if TYPE_CHECKING:
    from geofence.engine.core import Engine

_DAY_MS = 86_400_000
_CHECKIN_LOOKAHEAD_MS = 8 * _DAY_MS
"""How far ahead the next check-in deadline is looked for: every window and
request repeats within a week, so a span of eight days without one has none."""


def checkin_owed(spec: PersonSpec, start_ms: int, end_ms: int) -> list[Owed]:
    """:func:`geofence.checkin.owed_between` of the person's checkin rule over
    ``[start_ms, end_ms)``, keeping only the check-ins wholly inside the
    order's validity: outside it nothing is owed."""
    ck = spec.checkin
    assert ck is not None
    return [o for o in owed_between(spec.person_id, ck.rule, ck.timezone, start_ms, end_ms)
            if spec.valid_from <= o.opens_ms and o.due_ms < spec.valid_until]


def checkin_next_due(spec: PersonSpec, after: int) -> int:
    """The first deadline of an owed check-in after ``after`` (``_INF``: none).
    The next day first (cheaper): a deadline found due inside it is the first,
    as an earlier one would have opened inside it too."""
    start = after + 1
    for span in (_DAY_MS, _CHECKIN_LOOKAHEAD_MS):
        owed = checkin_owed(spec, start, start + span)
        if owed and (owed[0].due_ms <= start + span or span == _CHECKIN_LOOKAHEAD_MS):
            return owed[0].due_ms  # (sorted by deadline, each at or after start)
    return _INF


def place_checkins(st: LaneState, spec: PersonSpec, t: int) -> None:
    """Start the check-in schedule at ``t``: what is due from ``t`` on is owed."""
    st.ck_done = t - 1
    st.ck_paid = ()
    st.ck_due = checkin_next_due(spec, t - 1)


def arm_checkins(st: LaneState, t: int) -> None:
    """:func:`place_checkins` at ``t`` with the first deadline looked for later.

    The schedule's timer is set at ``t`` itself: :func:`checkin_deadline`
    then settles what is due at ``t`` (a check-in at ``t`` comes first, as
    at any deadline) and arms the first real deadline. The same schedule,
    without working out every person's next deadline when orders are
    installed (most engines are built only to take a snapshot's state).
    """
    st.ck_done = t - 1
    st.ck_paid = ()
    st.ck_due = t


def owed_from(spec: PersonSpec, event_time: int) -> int | None:
    """When the check-ins of an order being installed become owed.

    An order with a ``valid_from`` owes its check-ins from then on whether
    or not the phone ever sends anything (a phone thrown away misses its
    first deadline), but never from before the engine's ``event_time`` at
    the install: an order added or changed while the engine runs starts
    owing at that moment, so no deadline already passed is raised. An
    order without ``valid_from`` has no known start: its schedule begins at
    the person's first message (:func:`geofence.engine.machines.start_lane`).

    Parameters
    ----------
    spec : PersonSpec
        The compiled order.
    event_time : int
        The engine's event time at the install (epoch ms; -1 before any input).

    Returns
    -------
    int or None
        The start (epoch ms) for :func:`arm_checkins`; ``None`` when
        nothing is owed before a message: no checkin rule, no
        ``valid_from``, or an order already over by then.
    """
    if spec.checkin is None or spec.order.valid_from is None:
        return None
    t = max(spec.valid_from, event_time)
    return t if t < spec.valid_until else None


def checkin_step(eng: Engine, lane: Lane, st: LaneState, spec: PersonSpec, e: Entry,
                 out: list[LogItem]) -> None:
    """A check-in of a person under a checkin rule (inside the order's validity).

    A check-in that is not verified opens ``checkin_failed`` and answers
    nothing. A verified one clears ``checkin_missed`` and
    ``checkin_failed``, answers what it owes (:func:`geofence.checkin.answers`:
    settled at each deadline by :func:`checkin_deadline`), and its position
    is judged against the inclusion zones as a fix's is (``c1`` codes):
    certainly outside one opens ``checkin_outside``, certainly inside all of
    them clears it. See docs/rules.md, "Check-ins".
    """
    ck = spec.checkin
    assert ck is not None
    m: CheckIn = e.msg  # type: ignore[assignment]
    key = e.key
    t = key[0]
    dev = st.dev
    if not checkin_verified(m, ck.min_score):
        if "checkin_failed" not in dev:
            evidence = msgspec.json.encode({"face_score": m.face_score, "action_ok": m.action_ok,
                                            "method": m.method, "min_score": ck.min_score})
            dev["checkin_failed"] = eng._open(
                lane, spec, key, out, id_rule=ck.rule_id + ":failed", rule_id=ck.rule_id,
                kind="checkin_failed", severity=ck.failed, start=t, at=t, lon=m.lon, lat=m.lat,
                device_id=m.device_id, evidence=evidence.decode())
        return
    for name in ("checkin_missed", "checkin_failed"):
        a = dev.pop(name, None)
        if a is not None:
            eng._clear(a, key, t, out)
            if name == "checkin_missed" and st.ck_due == _INF and not lane.late:
                place_checkins(st, spec, t)  # the schedule resumes (see checkin_deadline)
    if not lane.late:  # (late data has no deadlines to meet: see catch_up)
        paid = set(st.ck_paid)
        for o in checkin_owed(spec, t, t + 1):
            if o.due_ms > st.ck_done and answers(o, t, m.request_id):
                paid.add((o.due_ms, o.key))
        if len(paid) > len(st.ck_paid):
            st.ck_paid = tuple(sorted(paid))
    c1 = e.c1
    if c1 is None:
        return
    incl = [i for i, zr in enumerate(spec.zone_rules) if zr.kind == INCLUSION]
    where = placement([c1[i] for i in incl])
    if where == OUTSIDE:
        zr = next(spec.zone_rules[i] for i in incl if c1[i] == 1)
        outside = rule_zone(eng._zones, zr, m.lon, m.lat, m.accuracy_m)
        if "checkin_outside" not in dev:
            dev["checkin_outside"] = eng._open(
                lane, spec, key, out, id_rule=ck.rule_id + ":outside", rule_id=ck.rule_id,
                kind="checkin_outside", severity=ck.outside, start=t, at=t, lon=m.lon,
                lat=m.lat, device_id=m.device_id, zone=outside, evidence="checkin")
    elif where == INSIDE and "checkin_outside" in dev:
        eng._clear(dev.pop("checkin_outside"), key, t, out)


def checkin_deadline(eng: Engine, lane: Lane, st: LaneState, spec: PersonSpec, key: Key,
                     out: list[LogItem]) -> None:
    """The timer at a check-in deadline ``st.ck_due``: an owed check-in due then
    that no verified check-in answered opens ``checkin_missed`` (one episode
    while it is open); then the next deadline is armed, unless the episode
    is open (the schedule waits for the check-in that clears it)."""
    ck = spec.checkin
    assert ck is not None
    due = st.ck_due
    paid = {k for d, k in st.ck_paid if d == due}
    missed = [o.key for o in checkin_owed(spec, due, due + 1)
              if o.due_ms == due and o.key not in paid]
    if missed and "checkin_missed" not in st.dev and spec.active_at(due):
        st.dev["checkin_missed"] = eng._open(
            lane, spec, key, out, id_rule=ck.rule_id + ":missed", rule_id=ck.rule_id,
            kind="checkin_missed", severity=ck.missed, start=due, at=due,
            lon=st.lf_lon if st.lf_ts >= 0 else None, lat=st.lf_lat if st.lf_ts >= 0 else None,
            evidence=msgspec.json.encode({"missed": missed}).decode())
    st.ck_done = due
    st.ck_paid = tuple(p for p in st.ck_paid if p[0] > due)
    if "checkin_missed" in st.dev:
        # while the episode is open no deadline changes anything: none is
        # looked for until the verified check-in that clears it places the
        # schedule again (checkin_step), so a person silent for months costs
        # one deadline, not one per day
        st.ck_due = _INF
    else:
        st.ck_due = checkin_next_due(spec, due)
