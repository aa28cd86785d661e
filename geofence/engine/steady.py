"""The steady path: fixes that open and clear nothing on a lane with something open.

A person inside a forbidden place, or out of the county, sends a fix a
minute until an officer acts; each of them only confirms what the lane
already reports. One walking along a boundary keeps starting and ending
streaks that never reach an alert. :func:`steady_many` takes that decision
for a lane object with open zone episodes or streaks under way and applies
such fixes in place, as the quiet path
(:func:`~geofence.engine.quiet.fast_many`) does for a lane with nothing
open: the same state as :func:`~geofence.engine.machines.apply_step` would
leave, through the same :func:`~geofence.episodes.observe`, without the
per-message machinery. Anything else (an episode that opens or clears, a
timer due, an implausible jump, casework, contact rules, device alerts)
takes the per-message path. ``EngineConfig(paths="reference")`` never uses
it, and the differential tests compare the two (tests/geofence/test_bulk.py,
test_worlds.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geofence.engine.classify import Classified
from geofence.engine.machines import _implied_speed, rearm_due
from geofence.engine.quiet import quiet_fix, too_fast, within_signal
from geofence.engine.state import Entry, Lane
from geofence.episodes import Cond, observe
from geofence.model import Fix
from geofence.rules import CURFEW, PersonSpec

if TYPE_CHECKING:
    from geofence.engine.core import Engine


def steady_many(eng: Engine, lane: Lane, spec: PersonSpec, ents: list[Entry],
                cls: Classified) -> bool:
    """Apply in-order fixes that open and clear nothing, in place; ``False``
    (and nothing changed) when any of them may do more.

    The lane must have no alert but zone episodes (no signal loss, device or
    spoofing alert, nothing pending from an implausible fix), its order no
    casework, check-ins or contact rules. Each fix must come after the
    lane's last step and before its timer, within signal, plausible and
    during the order's validity; its codes ``c1``, ``c2`` of the batch are
    observed (:func:`~geofence.episodes.observe`, on copies until every fix
    has passed) where the per-message path observes them, and none may open
    or clear an episode. Streaks may grow, restart or end on the way.
    """
    st = lane.state
    if (not st.started or st.expired or lane.late or st.sig is not None or st.dev
            or st.sp is not None or spec.casework or spec.checkin is not None
            or spec.contact_rules):
        return False
    conds, appr = st.conds, st.appr
    rules = spec.zone_rules
    nr = len(rules)
    codes, approach, ends = cls.codes, cls.approach, cls.ends
    cfg = eng._cfg
    confirm, gap = cfg.confirm_fixes, cfg.streak_gap_ms
    last, due = lane.last_key[0], lane.due
    prev = st.last_msg
    after = -1 if spec.signal_after_ms is None else spec.signal_after_ms
    vmax = cfg.spoof_speed_mps
    a_ts, a_lon, a_lat, a_acc = st.lf_ts, st.lf_lon, st.lf_lat, st.lf_acc
    seen: dict[int, Cond] = {}  # conditions observed so far, as copies (approach: -1 - i)
    viol: dict[int, int] = {}  # open episodes seen violating again, not copied: the time
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
                zr = rules[i]
                code = codes[s + i]
                if zr.kind == CURFEW:
                    w = conds[i]
                    if not (w.entered and w.iv_start <= t < w.iv_end):
                        continue  # outside its window a curfew observes nothing
                elif zr.buffer_m > 0 and approach[s + i] != 0:
                    ac = seen.get(-1 - i)
                    if ac is None:
                        ac = seen[-1 - i] = appr[i].copy()
                    if observe(ac, approach[s + i], t, confirm, zr.dwell_ms, gap):
                        return False
                if code != 0:
                    c = seen.get(i)
                    if c is None:
                        if code == 1 and conds[i].alert is not None:
                            viol[i] = t  # the common case: all observe would do
                            continue
                        c = seen[i] = conds[i].copy()
                        if i in viol:
                            c.last_viol = viol.pop(i)
                    if observe(c, code, t, confirm, zr.dwell_ms, gap):
                        return False
            a_ts, a_lon, a_lat, a_acc = t, m.lon, m.lat, m.accuracy_m
        last = prev = t
    # no fix opens or clears anything: apply them
    for j, c in seen.items():
        into = conds[j] if j >= 0 else appr[-1 - j]
        into.start, into.n, into.last_viol = c.start, c.n, c.last_viol
    for j, tv in viol.items():
        conds[j].last_viol = tv
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
        e.c1 = tuple(codes[s:s + nr])
        e.c2 = tuple(approach[s:s + nr])
        for k in spec.curfew_idx:
            conds[k].last_code = e.c1[k]
    lane.tail.extend(ents)
    lane.last_key = ents[-1].key
    if last > lane.frontier:
        lane.frontier = last
    if all(c.start < 0 and c.alert is None for c in (*conds, *appr)):
        eng._schedule(lane, spec)  # nothing open any more: the lane is quiet again
    elif spec.signal_after_ms is not None:
        lane.due = rearm_due(lane.static_due, st.last_msg, spec.signal_after_ms)
    return True


def settle(eng: Engine, lane: Lane, spec: PersonSpec, ents: list[Entry],
           cls: Classified) -> bool:
    """The quiet path for a quiet lane, else the steady path: ``True`` when
    one of them applied ``ents``."""
    if lane.quiet:
        return eng._fast_quiet(lane, spec, ents, cls)
    return steady_many(eng, lane, spec, ents, cls)
