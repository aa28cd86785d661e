"""Casework timers and checks: the positioning term and the end of leave.

:func:`term_step` is the term's timer (its reminder, its end; due at
:func:`term_due`), :func:`leaves_back` clears ``leave_overdue`` once the
person is certainly back. A rule's activity itself (windows, suspensions,
the term) is :func:`geofence.engine.machines.activity_step`'s, which also
opens ``leave_overdue``. See docs/rules.md, "Leave and suspensions" and
"Positioning terms".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geofence.curfew import POSITIONING_ENDED
from geofence.engine.config import Key
from geofence.engine.state import Lane, LaneState, LogItem
from geofence.rules import DEFAULT_SEVERITY, LEAVE_KIND, TERM_KIND, TERM_RULE, PersonSpec

if TYPE_CHECKING:
    from geofence.engine.core import Engine


def term_due(term: tuple[int, int, int], stage: int) -> int:
    """The positioning term's timer: its reminder (``stage`` 0), then its end (1)."""
    return max(term[1] - term[2], term[0]) if stage == 0 else term[1]


def term_step(eng: Engine, lane: Lane, st: LaneState, spec: PersonSpec, key: Key,
              out: list[LogItem]) -> None:
    """The positioning term's reminder opens, or the term ends.

    At ``until - remind_days`` a blue ``positioning_term_ending`` opens
    (the order in force then); at ``until`` it clears, and so do
    ``signal_lost`` and no_contact episodes, with reason
    ``positioning_ended`` (zone rules end by their activity).
    """
    assert spec.term is not None
    t = key[0]
    if st.term == 0:
        st.term = 1
        if (spec.active_at(t) and not st.expired and t < spec.term[1] and not lane.late
                and TERM_KIND not in st.dev):
            st.dev[TERM_KIND] = eng._open(
                lane, spec, key, out, id_rule=TERM_RULE, rule_id=TERM_RULE, kind=TERM_KIND,
                severity=DEFAULT_SEVERITY[TERM_KIND], start=t, at=t,
                lon=st.lf_lon if st.lf_ts >= 0 else None,
                lat=st.lf_lat if st.lf_ts >= 0 else None)
        return
    st.term = 2
    a = st.dev.pop(TERM_KIND, None)
    if a is not None:
        eng._clear(a, key, t, out, POSITIONING_ENDED)
    if st.sig is not None:
        eng._clear(st.sig, key, t, out, POSITIONING_ENDED)
        st.sig = None
    for c in st.cconds:
        if c.alert is not None:
            eng._clear(c.alert, key, t, out, POSITIONING_ENDED)
            c.alert = None
        c.start, c.n = -1, 0


def leaves_back(eng: Engine, st: LaneState, spec: PersonSpec, key: Key, c1: tuple[int, ...],
                out: list[LogItem]) -> None:
    """Clear the ``leave_overdue`` alerts of a person now certainly back: no
    rule the leave suspended is violated (each certainly not, or inactive)."""
    t = key[0]
    for lv in spec.leaves:
        name = LEAVE_KIND + ":" + lv.leave_id
        if name not in st.dev:
            continue
        if all(c1[i] == -1 or not rule_active(st, i, t) for i in lv.rules):
            eng._clear(st.dev.pop(name), key, t, out)


def rule_active(st: LaneState, i: int, t: int) -> bool:
    """Whether zone rule ``i`` (one with an activity) applies at ``t``."""
    c = st.conds[i]
    return c.entered and c.iv_start <= t < c.iv_end
