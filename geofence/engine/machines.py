"""The rule state machines: the only place rule logic lives.

:func:`apply_step` evaluates one step of a lane (a fix, a device event, a
video hit, a check-in, a contact probe) after :func:`catch_up` has fired
every timer before it (signal loss, curfew windows, missed check-in
deadlines, order expiry, camera quiet, a zone rule's activity beginning or
ending: :func:`activity_step`, the positioning term:
:func:`geofence.engine.casework.term_step`). Zone and contact rules go through
:func:`geofence.episodes.observe` via :func:`cond_obs`; spoofing is
:func:`implausible`, face matches :func:`face_match`, facility video
:func:`camera_hit`, check-ins :func:`checkin_step` (with
:func:`checkin_deadline` for the timer). Every alert is opened by
:func:`open_alert` and cleared by :func:`clear_alert`.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from geofence.curfew import ActivityCalendar, CurfewCalendar
from geofence.engine.casework import leaves_back, rule_active, term_due, term_step
from geofence.engine.checkins import checkin_deadline, checkin_step, place_checkins
from geofence.engine.classify import rule_zone, zone_named
from geofence.engine.config import (
    _FAR_FUTURE_MS,
    _INF,
    Key,
)
from geofence.engine.state import (
    Entry,
    Lane,
    LaneState,
    LogItem,
)
from geofence.episodes import Cond, alert_id, observe
from geofence.model import (
    Alert,
    AlertRecord,
    CheckIn,
    DeviceEvent,
    Fix,
    VideoHit,
    format_ts,
)
from geofence.rules import (
    BUILTIN_DEVICE_RULES,
    CURFEW,
    DEFAULT_SEVERITY,
    EXCLUSION,
    LEAVE_KIND,
    SPOOF_KIND,
    SPOOF_RULE,
    STICKY_DEVICE_RULES,
    TERM_RULE,
    PersonSpec,
    ZoneRule,
    in_term,
)

if TYPE_CHECKING:
    from geofence.engine.core import Engine


def _haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    # scalar great-circle distance (mean radius); metres-level accuracy suffices
    # for the 100 m - km distances of no_contact and device_separation
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(a)))


def _implied_speed(ts1: int, lon1: float, lat1: float, acc1: float,
                   ts2: int, lon2: float, lat2: float, acc2: float) -> float:
    """Speed (m/s) two fixes imply at the least: distance less both accuracies,
    over the time between them (at least 1 s)."""
    d = _haversine_m(lon1, lat1, lon2, lat2) - acc1 - acc2
    return (d if d > 0.0 else 0.0) * 1000.0 / max(abs(ts2 - ts1), 1000)


def _implied_speed_np(ts1: Any, lon1: Any, lat1: Any, acc1: Any,
                      ts2: Any, lon2: Any, lat2: Any, acc2: Any) -> Any:
    """:func:`_implied_speed` over arrays (for routing only: the bulk path sends
    anything near the threshold to the per-message path, which decides)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dl = np.radians(lon2 - lon1)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    d = 2 * 6_371_008.8 * np.arcsin(np.minimum(1.0, np.sqrt(a))) - acc1 - acc2
    return np.maximum(d, 0.0) * 1000.0 / np.maximum(np.abs(ts2 - ts1), 1000)


def entity_of(eng: Engine, lane: Lane) -> str:
    return lane.key[7:] if lane.key.startswith("camera:") else lane.key


def open_alert(
    eng: Engine, lane: Lane, spec: PersonSpec | None, key: Key, out: list[LogItem], *,
    id_rule: str, rule_id: str, kind: str, severity: str, start: int, at: int,
    lon: float | None, lat: float | None, device_id: str | None = None,
    zone: str | None = None, evidence: str | None = None, camera_id: str | None = None,
    jurisdiction: str | None = None,
) -> Alert:
    a = Alert(
        alert_id=alert_id(eng._entity(lane), id_rule, start),
        person_id=spec.person_id if spec is not None else None,
        rule_id=rule_id, kind=kind, severity=severity,  # type: ignore[arg-type]
        opened_at=format_ts(at), lat=lat, lon=lon,
        jurisdiction=spec.jurisdiction if spec is not None else jurisdiction,
        late=lane.late, device_id=device_id, zone=zone, evidence=evidence,
        camera_id=camera_id,
    )
    out.append(LogItem(key, AlertRecord("opened", a, at=a.opened_at)))
    return a


def clear_alert(a: Alert, key: Key, at: int, out: list[LogItem], reason: str | None = None) -> None:
    c = msgspec.structs.replace(a, status="cleared", cleared_at=format_ts(at), reason=reason)
    out.append(LogItem(key, AlertRecord("cleared", c, at=c.cleared_at)))


def cond_obs(
    eng: Engine, lane: Lane, spec: PersonSpec, cond: Cond, code: int, t: int, key: Key,
    out: list[LogItem], id_rule: str, rule_id: str, kind: str, severity: str, dwell: int,
    lon: float, lat: float, device_id: str | None, zone: str | Callable[[], str] | None,
) -> None:
    """One observation of a condition; ``zone`` may be a function naming the
    alert's zone (a category rule's nearest zone), called only if it opens."""
    cfg = eng._cfg
    r = observe(cond, code, t, cfg.confirm_fixes, dwell, cfg.streak_gap_ms)
    if r == 1:
        cond.alert = eng._open(
            lane, spec, key, out, id_rule=id_rule, rule_id=rule_id, kind=kind,
            severity=severity, start=cond.start, at=t, lon=lon, lat=lat,
            device_id=device_id, zone=zone() if callable(zone) else zone, evidence="gps",
        )
    elif r == -1 and cond.alert is not None:
        eng._clear(cond.alert, key, t, out)
        cond.alert = None


def catch_up(
    eng: Engine, lane: Lane, st: LaneState, spec: PersonSpec | None, upto: Key, out: list[LogItem]
) -> Key | None:
    """Fire, in key order, every timer whose key is below ``upto``."""
    fired: Key | None = None
    cfg = eng._cfg
    while True:
        best: Key | None = None
        what = -1
        if spec is not None:
            if (not lane.late and spec.signal_after_ms is not None and st.sig is None
                    and st.last_msg >= 0 and st.term < 2 and not st.expired):
                k: Key = (st.last_msg + spec.signal_after_ms, 2, "", 0, "")
                if k < upto:
                    best, what = k, -2
            if st.started:
                for i, zr in enumerate(spec.zone_rules):
                    if zr.calendar is None:
                        continue
                    c = st.conds[i]
                    k = (window_due(c.iv_start, c.iv_end, c.entered), 0, "", 0, "")
                    if k < upto and (best is None or k < best):
                        best, what = k, i
            if spec.term is not None and st.term < 2:
                k = (term_due(spec.term, st.term), 0, "", 0, TERM_RULE)
                if k < upto and (best is None or k < best):
                    best, what = k, -6
            end = order_end_due(spec)
            if not st.expired and end < _INF:
                k = (end, 0, "", 0, "")
                if k < upto and (best is None or k < best):
                    best, what = k, -3
            if (spec.checkin is not None and not lane.late and not st.expired
                    and 0 <= st.ck_due < _INF):
                # (placed at the first step, or before it by the order's install:
                # geofence.engine.orders.start_owed)
                # after the messages of its ms: a check-in at the deadline is in time
                k = (st.ck_due, 2, "", 0, "checkin")
                if k < upto and (best is None or k < best):
                    best, what = k, -5
        else:
            for ev, last in st.cam_last.items():
                k = (last + cfg.camera_quiet_ms, 2, "", 0, ev)
                if k < upto and (best is None or k < best):
                    best, what = k, -4
        if best is None:
            return fired
        fired = best
        t = best[0]
        if what == -2:
            assert spec is not None
            if spec.active_at(t) and in_term(spec, t):
                st.sig = eng._open(
                    lane, spec, best, out, id_rule=spec.signal_rule_id or "signal_loss",
                    rule_id=spec.signal_rule_id or "signal_loss", kind="signal_lost",
                    severity=spec.signal_severity, start=t, at=t,
                    lon=st.lf_lon if st.lf_ts >= 0 else None,
                    lat=st.lf_lat if st.lf_ts >= 0 else None,
                )
            else:
                # outside validity: nothing to raise; re-arm from here
                st.last_msg = t
        elif what == -3:
            assert spec is not None
            st.expired = True
            for c in (*st.conds, *st.appr, *st.cconds):
                if c.alert is not None:
                    eng._clear(c.alert, best, t, out, "order_expired")
                    c.alert = None
                c.start, c.n = -1, 0
            if st.sig is not None:
                eng._clear(st.sig, best, t, out, "order_expired")
                st.sig = None
            for name in [n for n in st.dev if n not in STICKY_DEVICE_RULES
                         and n != "device_separation" and n != SPOOF_KIND]:
                eng._clear(st.dev.pop(name), best, t, out, "order_expired")
        elif what == -5:
            assert spec is not None
            checkin_deadline(eng, lane, st, spec, best, out)
        elif what == -6:
            assert spec is not None
            term_step(eng, lane, st, spec, best, out)
        elif what == -4:
            ev = best[4]
            del st.cam_last[ev]
            a = st.dev.pop("video:" + ev, None)
            if a is not None:
                eng._clear(a, best, t, out, "quiet")
        else:
            assert spec is not None
            activity_step(eng, lane, st, spec, what, best, out)


def next_deadline(eng: Engine, lane: Lane, st: LaneState, spec: PersonSpec | None) -> int:
    best = _INF
    if spec is not None:
        if st.started:
            for i, zr in enumerate(spec.zone_rules):
                if zr.calendar is not None:
                    c = st.conds[i]
                    best = min(best, window_due(c.iv_start, c.iv_end, c.entered))
            if spec.term is not None and st.term < 2:
                best = min(best, term_due(spec.term, st.term))
        if spec.checkin is not None and not st.expired and 0 <= st.ck_due < best:
            best = st.ck_due  # (armed before the first step too: start_owed)
        if not st.expired:
            best = min(best, order_end_due(spec))
        lane.static_due = best
        if (spec.signal_after_ms is not None and st.sig is None and st.last_msg >= 0
                and st.term < 2 and not st.expired):  # an ended order loses no signal
            best = rearm_due(best, st.last_msg, spec.signal_after_ms)
    else:
        for last in st.cam_last.values():
            best = min(best, last + eng._cfg.camera_quiet_ms)
    return best


def activity_step(eng: Engine, lane: Lane, st: LaneState, spec: PersonSpec, i: int, key: Key,
                  out: list[LogItem]) -> None:
    """A zone rule's activity begins or ends (its timer, :func:`window_due`).

    At a start the rule's last code is taken as observed at that instant
    (:func:`window_begins`: a person already violating is in breach from
    there, opening per confirm and dwell), and so is the approach
    warning's; a leave ending with the person still violating a rule it
    suspended opens ``leave_overdue``. At an end every open episode of
    the rule clears with the reason the calendar gives (``window_ended``,
    ``exempted``, ``positioning_ended``) and streaks restart.
    """
    zr = spec.zone_rules[i]
    c = st.conds[i]
    t = key[0]
    if not c.entered:
        c.entered = True  # its timer: window_due, now the activity's end
        if not spec.active_at(t) or st.expired:
            return
        viol_at = window_begins(c.iv_start, c.iv_end, c.last_code)[1]  # t or -1
        if viol_at >= 0 and c.alert is None:
            # already violating as the rule begins to apply: in breach from here
            eng._cond_obs(lane, spec, c, 1, t, key, out, zr.rule_id, zr.rule_id,
                           zone_kind(zr), zr.severity, zr.dwell_ms,
                           st.lf_lon, st.lf_lat, None, zr.zone_id)
        if zr.buffer_m > 0:
            ac = st.appr[i]
            if window_begins(c.iv_start, c.iv_end, ac.last_code)[1] >= 0 and ac.alert is None:
                eng._cond_obs(lane, spec, ac, 1, t, key, out, zr.rule_id + ":approach",
                               zr.rule_id, "exclusion_approach", zr.approach_severity,
                               zr.dwell_ms, st.lf_lon, st.lf_lat, None, zr.zone_id)
        if viol_at >= 0:
            for lv in spec.leaves:
                name = LEAVE_KIND + ":" + lv.leave_id
                if lv.until == t and i in lv.rules and name not in st.dev:
                    st.dev[name] = eng._open(
                        lane, spec, key, out, id_rule=name, rule_id=lv.leave_id, kind=LEAVE_KIND,
                        severity=DEFAULT_SEVERITY[LEAVE_KIND], start=t, at=t,
                        lon=st.lf_lon if st.lf_ts >= 0 else None,
                        lat=st.lf_lat if st.lf_ts >= 0 else None, zone=zr.zone_id)
    else:
        assert zr.calendar is not None
        why = zr.calendar.end_reason(c.iv_end)
        for cc in (c, st.appr[i]):
            if cc.alert is not None:
                eng._clear(cc.alert, key, t, out, why)
                cc.alert = None
            cc.start, cc.n = -1, 0
        c.iv_start, c.iv_end, c.entered = window_at(zr.calendar, c.iv_end)


def zone_kind(zr: ZoneRule) -> str:
    """The alert kind of a zone rule's main condition."""
    return ("exclusion_entered" if zr.kind == EXCLUSION
            else "curfew_violated" if zr.kind == CURFEW else "inclusion_left")


def window_at(calendar: CurfewCalendar | ActivityCalendar | None,
              t: int) -> tuple[int, int, bool]:
    """The curfew window in force at ``t``, or the next one: (start, end, begun)."""
    assert calendar is not None
    s, e = calendar.interval_at_or_after(t)
    return s, e, s <= t


def window_due(start: Any, end: Any, begun: Any) -> Any:
    """A curfew rule's timer: its window's end once begun, else its start
    (elementwise: one rule's values or arrays of them)."""
    return start + begun * (end - start)


def window_begins(start: Any, end: Any, last_code: Any) -> tuple[Any, Any]:
    """A curfew window begins: what its rule's state becomes (the rule is then
    *entered*; the window ends are :func:`catch_up`'s alone).

    Parameters
    ----------
    start, end : int or ndarray of int64
        The window (epoch ms); its start is the time it begins.
    last_code : int or ndarray of int8
        The rule's last certain code before the window: 1 certainly
        outside the zone, -1 certainly inside, 0 neither.

    Returns
    -------
    due : int or ndarray of int64
        The rule's timer from now on: the window's end (:func:`window_due`
        of a begun window).
    viol_at : int or ndarray of int64
        The time of a violation observed as the window begins: ``start``
        for a person last seen certainly outside (in breach from the
        window's start), else -1. The caller observes it where the rule
        may (the order in force, no alert open): :func:`catch_up` on a
        lane object, :func:`geofence.engine.quiet.enter_windows` on rows
        of the quiet arrays (``QuietLanes.lv``).

    Notes
    -----
    Elementwise: the values of one rule, or arrays of rules' values.

    Examples
    --------
    >>> window_begins(1_000, 5_000, 1)
    (5000, 1000)
    >>> due, viol_at = window_begins(np.array([1_000, 2_000]), np.array([5_000, 6_000]),
    ...                              np.array([1, -1], np.int8))
    >>> due.tolist(), viol_at.tolist()
    ([5000, 6000], [1000, -1])
    """
    return window_due(start, end, True), (last_code == 1) * (start + 1) - 1


def rearm_due(static_due: int, last_msg: int, after: int | None) -> int:
    """A lane's timer: its static timers (``static_due``: curfew windows,
    the order's end), or signal loss ``after`` ms after its last message
    (``last_msg``), whichever comes first.

    ``after`` is ``None`` (or negative, as the quiet arrays write it) when
    the person has no signal_loss rule: the static timers alone. The
    callers decide whether the signal-loss timer is armed at all (no
    ``signal_lost`` open, a message seen); :func:`rearm_due_np` is the same
    rule on arrays.
    """
    if after is None or after < 0:
        return static_due
    d = last_msg + after
    return d if d < static_due else static_due


def rearm_due_np(static_due: Any, last_msg: Any, after: Any) -> Any:
    """:func:`rearm_due` elementwise, on arrays of lanes (``after`` -1: no
    signal_loss rule)."""
    return np.where(after >= 0, np.minimum(static_due, last_msg + after), static_due)


def order_end_due(spec: PersonSpec) -> int:
    """The timer of the order's end (``_INF``: the order has no end)."""
    return spec.valid_until if spec.valid_until < _FAR_FUTURE_MS else _INF


def start_lane(eng: Engine, st: LaneState, spec: PersonSpec, t: int) -> None:
    """A person's lane starts at its first step ``t``: curfew windows placed from there.

    A lane that starts in the bulk arrays (:func:`geofence.engine.quiet.new_lanes`)
    places its window with the same :func:`window_at`.
    """
    st.started = True
    for i, zr in enumerate(spec.zone_rules):
        if zr.calendar is not None:
            c = st.conds[i]
            c.iv_start, c.iv_end, c.entered = window_at(zr.calendar, t)
    if spec.checkin is not None and st.ck_due < 0:
        place_checkins(st, spec, t)


def apply_step(
    eng: Engine, lane: Lane, st: LaneState, spec: PersonSpec | None, e: Entry, out: list[LogItem],
    near: tuple[int, ...] | None = None,
) -> None:
    """One step of a lane: its timers due before it, then the message.

    ``near``: a fix's nearest zone per rule from its batch's classification
    (:meth:`~geofence.engine.classify.Classified.nearest_of`), the zone a
    category rule's alert names; without it :func:`rule_zone` measures the
    same zone again.
    """
    key = e.key
    t = key[0]
    if spec is not None and not st.started:
        eng._start(st, spec, t)
    elif spec is not None and spec.checkin is not None and st.ck_due < 0:
        place_checkins(st, spec, t)  # a state from before the rule (a restored snapshot)
    eng._catch_up(lane, st, spec, key, out)
    m = e.msg
    if spec is None:
        eng._camera_hit(lane, st, m, key, out)  # type: ignore[arg-type]
        return
    if e.other is not None:
        if not lane.late and spec.active_at(t) and not st.expired and in_term(spec, t):
            eng._contact(lane, st, spec, key, out, e.other)
        return
    tm = type(m)
    if tm is VideoHit:
        if spec.active_at(t):
            eng._face(lane, st, spec, m, e, out)  # type: ignore[arg-type]
        return
    # a message from one of the person's devices: a sign of life
    dev_id: str = m.device_id  # type: ignore[union-attr]
    if not lane.late:
        if t > st.last_msg:
            st.last_msg = t
        if st.sig is not None:
            eng._clear(st.sig, key, t, out)
            st.sig = None
    active = spec.active_at(t)
    po = st.dev.get("power_off")
    if po is not None and po.device_id == dev_id and not (
        tm is DeviceEvent and m.event == "power_off"  # type: ignore[union-attr]
    ):
        eng._clear(st.dev.pop("power_off"), key, t, out)
    if tm is Fix:
        fix: Fix = m  # type: ignore[assignment]
        bl = st.dev.get("battery_low")
        if (bl is not None and bl.device_id == dev_id and fix.battery_pct is not None
                and fix.battery_pct >= eng._cfg.battery_clear_pct):
            eng._clear(st.dev.pop("battery_low"), key, t, out)
        if not fix.valid:
            return
        # an implausible fix is one-sided: it may show a violation, never the
        # absence of one (code -1 is dropped), so it cannot clear or break a streak
        one_sided = st.lf_ts >= 0 and eng._implausible(lane, st, spec, fix, key, active, out)
        st.lf_ts, st.lf_lon, st.lf_lat, st.lf_acc = t, fix.lon, fix.lat, fix.accuracy_m
        if not active or st.expired:
            return
        c1, c2 = e.c1, e.c2
        if c1 is not None and c2 is not None:
            conds = st.conds
            for i, zr in enumerate(spec.zone_rules):
                code = c1[i]
                cond = conds[i]
                if one_sided and code == -1:
                    if zr.kind == CURFEW:
                        continue  # nor is it a reason to believe the person home
                    code = 0
                if zr.kind == CURFEW:
                    if cond.entered and cond.iv_start <= t < cond.iv_end and (
                            code != 0 or cond.alert is not None or cond.start >= 0):
                        eng._cond_obs(lane, spec, cond, code, t, key, out, zr.rule_id,
                                       zr.rule_id, "curfew_violated", zr.severity,
                                       zr.dwell_ms, fix.lon, fix.lat, dev_id, zr.zone_id)
                    cond.last_code = code
                    continue
                if zr.calendar is not None:
                    # a rule with an activity: its codes are remembered for the
                    # activity's start, and count only inside it
                    cond.last_code = code
                    if zr.buffer_m > 0:
                        st.appr[i].last_code = c2[i] if not one_sided or c2[i] != -1 else 0
                    if not (cond.entered and cond.iv_start <= t < cond.iv_end):
                        continue
                if code != 0 and (code == 1 or cond.alert is not None or cond.start >= 0):
                    eng._cond_obs(
                        lane, spec, cond, code, t, key, out, zr.rule_id, zr.rule_id,
                        "exclusion_entered" if zr.kind == EXCLUSION else "inclusion_left",
                        zr.severity, zr.dwell_ms, fix.lon, fix.lat, dev_id,
                        zr.zone_id if zr.zone_idx >= 0 or code != 1 else zone_named(
                            eng._zones, zr, fix, near, i),
                    )
                if zr.buffer_m > 0:
                    code2 = c2[i] if not one_sided or c2[i] != -1 else 0
                    ac = st.appr[i]
                    if code2 != 0 and (code2 == 1 or ac.alert is not None or ac.start >= 0):
                        eng._cond_obs(lane, spec, ac, code2, t, key, out,
                                       zr.rule_id + ":approach", zr.rule_id,
                                       "exclusion_approach", zr.approach_severity,
                                       zr.dwell_ms, fix.lon, fix.lat, dev_id,
                                       zr.zone_id if zr.zone_idx >= 0 or code2 != 1 else zone_named(
                                           eng._zones, zr, fix, near, i))
            if spec.leaves and st.dev and not one_sided:
                leaves_back(eng, st, spec, key, c1, out)
        if spec.contact_rules and not lane.late and in_term(spec, t):
            eng._contact(lane, st, spec, key, out, None, one_sided)
        return
    if not active or st.expired:
        return
    if tm is CheckIn:
        if spec.checkin is not None:
            checkin_step(eng, lane, st, spec, e, out)
        return
    # device event
    ev: str = m.event  # type: ignore[union-attr]
    if ev in BUILTIN_DEVICE_RULES:
        if ev not in st.dev:
            st.dev[ev] = eng._open(
                lane, spec, key, out, id_rule=ev, rule_id=ev, kind=ev,
                severity=DEFAULT_SEVERITY[ev], start=t, at=t,
                lon=st.lf_lon if st.lf_ts >= 0 else None,
                lat=st.lf_lat if st.lf_ts >= 0 else None, device_id=dev_id,
            )
    elif ev == "charging":
        bl = st.dev.get("battery_low")
        if bl is not None and bl.device_id == dev_id:
            eng._clear(st.dev.pop("battery_low"), key, t, out)


def implausible(eng: Engine, lane: Lane, st: LaneState, spec: PersonSpec, fix: Fix, key: Key,
                 active: bool, out: list[LogItem]) -> bool:
    """Judge a valid fix against the last accepted one; ``True``: it is
    implausible (its observations are one-sided, see :func:`apply_step`).

    Implausible fixes of one second stream that alternate with accepted
    ones (``spoof_confirm`` of them) open ``spoofing_suspected``, which
    only an operator resolves. See docs/rules.md, "Spoofing".
    """
    cfg = eng._cfg
    t = key[0]
    sp = st.sp
    if sp is None:
        a_ts, a_lon, a_lat, a_acc = st.lf_ts, st.lf_lon, st.lf_lat, st.lf_acc
    else:
        a_ts, a_lon, a_lat, a_acc = sp[8], sp[9], sp[10], sp[11]
    v = _implied_speed(a_ts, a_lon, a_lat, a_acc, t, fix.lon, fix.lat, fix.accuracy_m)
    if v <= cfg.spoof_speed_mps:
        if sp is not None:
            if t - sp[0] > cfg.streak_gap_ms:
                st.sp = None  # long past: the reference is the last fix again
            else:
                st.sp = (sp[0], 1, 0, -1, sp[4], sp[5], sp[6], sp[7],
                         t, fix.lon, fix.lat, fix.accuracy_m)
        return False
    # one stream with the previous implausible fix: plausible from it, soon after
    same = (sp is not None and t - sp[0] <= cfg.streak_gap_ms and _implied_speed(
        sp[0], sp[4], sp[5], sp[6], t, fix.lon, fix.lat, fix.accuracy_m) <= cfg.spoof_speed_mps)
    if same and sp is not None and sp[2] > 0:
        n, t0 = sp[2] + 1, sp[3]
    else:
        n, t0 = 1, t
    if n >= 3 and t - t0 >= cfg.spoof_reanchor_ms:
        st.sp = None  # the person really is elsewhere: this fix is the new reference
        return False
    alts = sp[7] + 1 if same and sp is not None and sp[1] == 1 else 0
    if (alts + 1 >= cfg.spoof_confirm and active and not st.expired
            and SPOOF_KIND not in st.dev):
        evidence = msgspec.json.encode({
            "accepted": {"ts": format_ts(a_ts), "lon": a_lon, "lat": a_lat,
                         "accuracy_m": a_acc},
            "implausible": {"ts": format_ts(t), "lon": fix.lon, "lat": fix.lat,
                            "accuracy_m": fix.accuracy_m, "device_id": fix.device_id},
            "implied_speed_mps": round(v, 1)}).decode()
        st.dev[SPOOF_KIND] = eng._open(
            lane, spec, key, out, id_rule=SPOOF_RULE, rule_id=SPOOF_RULE, kind=SPOOF_KIND,
            severity=DEFAULT_SEVERITY[SPOOF_KIND], start=t, at=t, lon=fix.lon, lat=fix.lat,
            device_id=fix.device_id, evidence=evidence)
    st.sp = (t, 0, n, t0, fix.lon, fix.lat, fix.accuracy_m, alts, a_ts, a_lon, a_lat, a_acc)
    return True


def latest_fix(eng: Engine, pid: str, t: int) -> tuple[int, float, float, float] | None:
    rec = eng._recent.get(pid)
    if not rec:
        return None
    i = bisect_right(rec, (t, math.inf, math.inf, math.inf))
    return rec[i - 1] if i else None


def contact_step(
    eng: Engine, lane: Lane, st: LaneState, spec: PersonSpec, key: Key, out: list[LogItem],
    only: str | None, one_sided: bool = False,
) -> None:
    t = key[0]
    max_age = eng._cfg.contact_max_age_ms
    for j, cr in enumerate(spec.contact_rules):
        if only is not None and cr.other != only:
            continue
        cond = st.cconds[j]
        other = eng._latest(cr.other, t)
        if st.lf_ts < 0 or t - st.lf_ts > max_age or other is None or t - other[0] > max_age:
            code = -1  # one of the two has no fix young enough: no contact established
        else:
            d = _haversine_m(st.lf_lon, st.lf_lat, other[1], other[2])
            slack = st.lf_acc + other[3]
            code = 1 if d + slack < cr.distance_m else (-1 if d - slack > cr.distance_m else 0)
        if code == 0 or (code == -1 and (one_sided or (cond.alert is None and cond.start < 0))):
            continue
        eng._cond_obs(lane, spec, cond, code, t, key, out, cr.rule_id, cr.rule_id, "contact",
                       cr.severity, cr.dwell_ms, st.lf_lon, st.lf_lat, None, None)


def face_match(eng: Engine, lane: Lane, st: LaneState, spec: PersonSpec, hit: VideoHit, e: Entry,
          out: list[LogItem]) -> None:
    cfg = eng._cfg
    if hit.event != "face_match" or hit.confidence is None:
        return
    if hit.confidence < cfg.face_match_min_confidence or st.expired:
        return
    t = e.key[0]
    key = e.key
    c1 = e.c1 or ()
    for i, zr in enumerate(spec.zone_rules):
        if zr.kind != EXCLUSION or i >= len(c1) or c1[i] != 1:
            continue
        if zr.calendar is not None and not rule_active(st, i, t):
            continue  # the rule does not apply now
        cond = st.conds[i]
        if cond.alert is None:
            cond.start, cond.n, cond.last_viol = t, cfg.confirm_fixes, t
            cond.alert = eng._open(
                lane, spec, key, out, id_rule=zr.rule_id, rule_id=zr.rule_id,
                kind="exclusion_entered", severity=zr.severity, start=t, at=t,
                lon=hit.lon, lat=hit.lat, evidence="video",
                zone=rule_zone(eng._zones, zr, hit.lon, hit.lat, cfg.camera_accuracy_m),
                camera_id=hit.camera_id,
            )
        elif cond.alert.evidence not in ("video", "gps+video"):
            cond.last_viol = t
            cond.alert = msgspec.structs.replace(
                cond.alert, evidence="gps+video", updated_at=format_ts(t),
                camera_id=hit.camera_id,
            )
            out.append(LogItem(key, AlertRecord("updated", cond.alert, at=format_ts(t))))
    if "device_separation" not in st.dev and st.lf_ts >= 0 and t - st.lf_ts <= cfg.contact_max_age_ms \
            and st.lf_ts <= t:
        d = _haversine_m(hit.lon, hit.lat, st.lf_lon, st.lf_lat)
        if d - st.lf_acc - cfg.camera_accuracy_m > cfg.separation_m:
            st.dev["device_separation"] = eng._open(
                lane, spec, key, out, id_rule="device_separation",
                rule_id="device_separation", kind="device_separation",
                severity=DEFAULT_SEVERITY["device_separation"], start=t, at=t,
                lon=hit.lon, lat=hit.lat, evidence="video", camera_id=hit.camera_id,
            )


def camera_hit(eng: Engine, lane: Lane, st: LaneState, hit: VideoHit, key: Key,
                out: list[LogItem]) -> None:
    t = key[0]
    ev = hit.event
    name = "video:" + ev
    if name in st.dev:
        st.cam_last[ev] = max(st.cam_last.get(ev, t), t)
        return
    st.cam_last[ev] = t
    st.dev[name] = eng._open(
        lane, None, key, out, id_rule=name, rule_id=name, kind="video_" + ev,
        severity=DEFAULT_SEVERITY["video_" + ev], start=t, at=t, lon=hit.lon, lat=hit.lat,
        evidence="video", camera_id=hit.camera_id, jurisdiction=hit.jurisdiction,
    )
