"""The steady path: fixes that keep every open episode of a lane as it is.

A person inside a forbidden place, or out of the county, sends a fix a
minute until an officer acts; each of them only confirms what the lane
already reports. :func:`steady_many` takes that decision for a lane object
with open zone episodes and applies such fixes in place, as the quiet path
(:func:`~geofence.engine.quiet.fast_many`) does for a lane with none: the
same state as :func:`~geofence.engine.machines.apply_step` would leave,
without its general machinery. Anything else (a streak under way, a clear,
a timer due, an implausible jump, casework, contact rules, device alerts)
takes the per-message path. ``EngineConfig(paths="reference")`` never uses
it, and the differential tests compare the two (tests/geofence/test_worlds.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geofence.engine.classify import Classified
from geofence.engine.machines import _implied_speed, rearm_due
from geofence.engine.quiet import quiet_fix, too_fast, within_signal
from geofence.engine.state import Entry, Lane
from geofence.model import Fix
from geofence.rules import CURFEW, PersonSpec

if TYPE_CHECKING:
    from geofence.engine.core import Engine


def keeps(alert_open: bool, code: int) -> bool:
    """Whether an observation leaves a condition with no streak as it is:
    an open episode is kept by anything but a certain "not violating"
    (``-1`` clears it), a closed one by anything but a certain violation
    (``1`` starts a streak)."""
    return code != -1 if alert_open else code != 1


def steady_many(eng: Engine, lane: Lane, spec: PersonSpec, ents: list[Entry],
                cls: Classified) -> bool:
    """Apply in-order fixes that change nothing but liveness and the open
    episodes' latest violation, in place; ``False`` (and nothing changed)
    when any of them may change more.

    The lane must have no streak under way and no alert but zone episodes
    (no signal loss, device or spoofing alert, nothing pending from an
    implausible fix), its order no casework, check-ins or contact rules.
    Each fix must come after the lane's last step and before its timer,
    within signal, plausible, during the order's validity, and keep every
    condition (:func:`keeps`) by its codes ``c1``, ``c2`` of the batch.
    """
    st = lane.state
    if (not st.started or st.expired or lane.late or st.sig is not None or st.dev
            or st.sp is not None or spec.casework or spec.checkin is not None
            or spec.contact_rules):
        return False
    conds, appr = st.conds, st.appr
    for c in conds:
        if c.start >= 0 and c.alert is None:
            return False
    for c in appr:
        if c.start >= 0 and c.alert is None:
            return False
    rules = spec.zone_rules
    nr = len(rules)
    codes, approach, ends = cls.codes, cls.approach, cls.ends
    last, due = lane.last_key[0], lane.due
    prev = st.last_msg
    after = -1 if spec.signal_after_ms is None else spec.signal_after_ms
    vmax = eng._cfg.spoof_speed_mps
    a_ts, a_lon, a_lat, a_acc = st.lf_ts, st.lf_lon, st.lf_lat, st.lf_acc
    for e in ents:
        m = e.msg
        if type(m) is not Fix:
            return False
        t = e.key[0]
        if not quiet_fix(t, last, due, 0, False, False) or not spec.active_at(t):
            return False
        if prev >= 0 and not within_signal(prev, t, after):
            return False
        if m.valid:
            gi = e.gi
            if gi < 0 or (a_ts >= 0 and too_fast(
                    _implied_speed(a_ts, a_lon, a_lat, a_acc, t, m.lon, m.lat, m.accuracy_m),
                    vmax)):
                return False
            s = ends[gi - 1] if gi else 0
            for i in range(nr):
                c = conds[i]
                if rules[i].kind == CURFEW:
                    if (c.entered and c.iv_start <= t < c.iv_end
                            and not keeps(c.alert is not None, codes[s + i])):
                        return False
                    continue
                if not keeps(c.alert is not None, codes[s + i]):
                    return False
                if rules[i].buffer_m > 0 and not keeps(appr[i].alert is not None,
                                                       approach[s + i]):
                    return False
            a_ts, a_lon, a_lat, a_acc = t, m.lon, m.lat, m.accuracy_m
        last = prev = t
    # every fix keeps the lane as it is: apply them
    for e in ents:
        m = e.msg
        t = e.key[0]
        if t > st.last_msg:
            st.last_msg = t
        if not m.valid:  # type: ignore[union-attr]
            continue
        st.lf_ts, st.lf_lon, st.lf_lat, st.lf_acc = (
            t, m.lon, m.lat, m.accuracy_m)  # type: ignore[union-attr]
        gi = e.gi
        s = ends[gi - 1] if gi else 0
        e.c1 = c1 = tuple(codes[s:s + nr])
        e.c2 = c2 = tuple(approach[s:s + nr])
        for i in range(nr):
            c = conds[i]
            if rules[i].kind == CURFEW:
                if c1[i] == 1 and c.alert is not None and c.entered and c.iv_start <= t < c.iv_end:
                    c.last_viol = t
                c.last_code = c1[i]
                continue
            if c1[i] == 1 and c.alert is not None:
                c.last_viol = t
            if c2[i] == 1 and appr[i].alert is not None:
                appr[i].last_viol = t
    lane.tail.extend(ents)
    lane.last_key = ents[-1].key
    if last > lane.frontier:
        lane.frontier = last
    if spec.signal_after_ms is not None:
        lane.due = rearm_due(lane.static_due, st.last_msg, spec.signal_after_ms)
    return True


def settle(eng: Engine, lane: Lane, spec: PersonSpec, ents: list[Entry],
           cls: Classified) -> bool:
    """The quiet path for a quiet lane, else the steady path: ``True`` when
    one of them applied ``ents``."""
    if lane.quiet:
        return eng._fast_quiet(lane, spec, ents, cls)
    return steady_many(eng, lane, spec, ents, cls)
