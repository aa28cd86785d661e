"""The quiet path: fixes that change nothing but liveness, applied in bulk.

Most fixes only move a person's liveness (newest message, last position).
:func:`bulk_pass` decides that for a whole batch with array operations on
the lanes held in :mod:`geofence.bulk` and applies them (:func:`bulk_apply`),
:func:`bulk_advance` moves those lanes' timers; :func:`fast_many` takes the
same decision for one lane that is an object. A lane goes into the arrays
with :func:`enter_quiet` (or starts there: :func:`new_lanes`) and comes back
as an object with :func:`materialise`, whenever anything else happens to it.
The rows are :class:`~geofence.bulk.QuietLanes` (``eng._q``: what each
person's order allows, and the lanes' state; its docstring names every
field). The rules the rows share with lane objects are elementwise
functions of :mod:`~geofence.engine.machines`, called by both forms:
:func:`~geofence.engine.machines.window_begins` (a curfew window begins,
:func:`enter_windows`), ``window_due``, ``window_at`` and ``rearm_due_np``.
The records are the same as the state machines' (``EngineConfig(paths=
"reference")`` is the yardstick, tests/geofence/test_bulk.py and
test_worlds.py the comparison).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any

import numpy as np

from geofence.engine import clock
from geofence.engine.classify import NOTHING, Classified, classify_fixes
from geofence.engine.config import (
    _ACC,
    _DEV,
    _LAT,
    _LON,
    _TS,
    _VALID,
    Key,
)
from geofence.engine.machines import (
    _implied_speed,
    _implied_speed_np,
    rearm_due,
    rearm_due_np,
    window_at,
    window_begins,
    window_due,
)
from geofence.engine.state import (
    Entry,
    Lane,
    _put_liveness,
)
from geofence.episodes import observe
from geofence.model import (
    Fix,
    Telemetry,
    VideoHit,
)
from geofence.rules import (
    PersonSpec,
)

if TYPE_CHECKING:
    from geofence.engine.core import Engine


def quiet_fix(t: Any, last: Any, due: Any, flags: Any, cf_open: Any, ws: Any) -> Any:
    """Whether a fix changes nothing but its person's liveness: the quiet decision.

    Elementwise, on arrays (:func:`bulk_pass`, a row of the arrays for each
    fix) or on the scalars of one row (:func:`fast_many`, a lane object
    seen through :func:`lane_row`). The fix must come after the row's last
    step (``last``) and before its timer (``due``), unless the timer is a
    curfew window that the arrays may enter (``ws``); its classification
    ``flags`` (:func:`~geofence.engine.classify.classify_fixes`: bit 1
    certainly violating a zone rule, bit 2 certainly outside a curfew zone)
    must show no violation, and no curfew absence while a window is open
    (``cf_open``) or about to be entered.
    """
    return ((t > last) & ((t < due) | ws) & ((flags & 1) == 0)
            & (((flags & 2) == 0) | ((cf_open | ws) == 0)))


def within_signal(prev: Any, t: Any, after: Any) -> Any:
    """Whether a fix at ``t`` follows the one at ``prev`` before signal loss
    (``after`` ms, -1: no signal_loss rule) would be due in between; elementwise."""
    return (after < 0) | (t <= prev + after)


def too_fast(speed: Any, vmax: float) -> Any:
    """Whether an implied speed may be implausible: such a fix takes the
    per-message path, where :func:`~geofence.engine.machines.implausible`
    judges it (a small margin covers the rounding of the array haversine)."""
    return speed > vmax * 0.999


def lane_row(lane: Lane, k: int) -> dict[str, Any]:
    """A lane object's values as a row of the arrays (``k``: its curfew rule or -1).

    One of the two converters between the forms of a quiet lane; the
    other, back from a row, is :func:`~geofence.engine.state._put_liveness`
    (with :func:`materialise` around it). :func:`enter_quiet` writes the
    row with :func:`put_row`, :func:`fast_many` decides on it in place.
    """
    st = lane.state
    c = st.conds[k] if k >= 0 else None
    return {"last": lane.last_key[0], "front": lane.frontier, "due": lane.due,
            "sdue": lane.static_due, "cf": lane.cf_entered, "lastmsg": st.last_msg,
            "lf_ts": st.lf_ts, "lf_lon": st.lf_lon, "lf_lat": st.lf_lat, "lf_acc": st.lf_acc,
            "code": 0 if c is None else c.last_code, "cf0": c is not None and c.entered,
            "ivs": 0 if c is None else c.iv_start, "ive": 0 if c is None else c.iv_end}


def bulk_pass(eng: Engine, messages: Sequence[Telemetry]
              ) -> tuple[list[int], list[int], list[int], int, Classified, int] | None:
    """The columnar part of :meth:`Engine.process <geofence.engine.Engine.process>`.

    Computes the arrival clock of every message and classifies every
    valid fix with array operations, applies the fixes of lanes in quiet
    mode (:mod:`geofence.bulk`) that certainly change nothing but
    liveness, and materialises the quiet lanes that have any other
    message in the batch. Returns the indices of the messages left for
    the per-message path and, in the same order, their clocks and geometry
    indices, the number of fixes applied in bulk, the classifications and
    the clock after the batch; or ``None`` when the batch needs the
    per-message path throughout (video hits, or a clock jump to arbitrate).
    """
    q = eng._q
    if eng._far_pid is not None:
        eng._bail(messages)
        return None
    n = len(messages)
    try:
        dix = np.array(list(map(q.devices.get, map(_DEV, messages), repeat(-1))), np.int64)
    except AttributeError:  # a video hit: no device id
        eng._bail(messages)
        return None
    # list() then array: faster than fromiter for these (measured)
    ts = np.array(list(map(_TS, messages)), np.int64)
    if set(map(type, messages)) == {Fix}:
        isfix = np.ones(n, np.bool_)
    else:
        isfix = np.fromiter((type(m) is Fix for m in messages), np.bool_, n)
    ci = np.where(dix >= 0, q.device_row[np.maximum(dix, 0)] if len(q.device_row) else -1, -1)
    cis = np.maximum(ci, 0)
    acc_ok = (ci >= 0)
    if len(q.valid_from):
        acc_ok &= (q.valid_from[cis] <= ts) & (ts < q.valid_until[cis])
    # the arrival clock of every accepted message (no jump is pending: see above)
    clk0 = clk_end = eng._wm
    ta = ts[acc_ok]
    clk_all = np.full(n, clk0, np.int64)
    if len(ta):
        clocks = clock.run(clk0, ta, eng._cfg.clock_jump_ms)
        if clocks is None:
            eng._bail(messages)
            return None
        clk_all[acc_ok] = clocks
        clk_end = int(clocks[-1])
        mx = int(ta.max())
        if mx > eng._max_ts:
            eng._max_ts = mx
    # classification of every accepted valid fix
    fidx = np.nonzero(isfix & acc_ok)[0]
    fx = list(messages) if len(fidx) == n else [messages[j] for j in fidx.tolist()]
    valid = np.array(list(map(_VALID, fx)), np.bool_)
    lon = np.array(list(map(_LON, fx)), np.float64)
    lat = np.array(list(map(_LAT, fx)), np.float64)
    acc = np.array(list(map(_ACC, fx)), np.float64)
    cidx = fidx[valid]
    gi_all = np.full(n, -1, np.int64)
    gi_all[cidx] = np.arange(len(cidx))
    if len(cidx):
        cls, flags, c1, first = classify_fixes(eng._zones, eng._rules, ci[cidx], lon[valid],
                                               lat[valid], acc[valid])
    else:
        cls = NOTHING
        flags = np.zeros(0, np.int8)
        c1, first = np.zeros(0, np.int8), np.zeros(0, np.int64)
    # which accepted fixes are quiet steps of a lane in quiet mode
    p = ci[fidx]
    t = ts[fidx]
    if len(p):
        eng._new_lanes(p, t, ci, acc_ok & ~isfix, clk_all[fidx])
    due = q.due[p]
    # a curfew window that begins before the fix, with nothing else due and
    # the person not certainly outside at its start: entered in bulk
    cfk = q.curfew_rule[p]
    vg = fidx[valid]  # the fix's own curfew code (0: none or invalid)
    fcode = np.zeros(len(fidx), np.int8)
    if len(vg):
        # only fixes of persons with a curfew rule index c1: a person without
        # zone rules has no pairs, and its "first pair" is past the end
        kk = cfk[valid]
        hc = kk >= 0
        codes = np.zeros(len(vg), np.int8)
        if hc.any():
            codes[hc] = c1[first[gi_all[vg[hc]]] + kk[hc]]
        fcode[valid] = codes
    # out at the window's start: entered in bulk only with this fix certainly home
    ws = (q.mode[p] & window_begins_alone(eng, p, t)
          & ((q.code[p] != 1) | (q.streak_waits[p] & (fcode == -1))))
    f = np.zeros(len(fidx), np.int8)
    f[valid] = flags
    hz = np.maximum(np.maximum(q.front[p], eng._wm), clk_all[fidx]) - eng._cfg.lateness_ms
    ok = q.mode[p] & quiet_fix(t, q.last[p], due, f, q.cf[p], ws) & (t >= hz)
    # a person goes in bulk only with all of its messages, strictly in order
    chosen = np.zeros(n, np.bool_)
    chosen[fidx[ok]] = True
    bad = ci[acc_ok & ~chosen]
    sel = np.nonzero(ok)[0]
    if len(sel):
        if len(bad):
            sel = sel[~np.isin(p[sel], bad)]
        order = np.argsort(p[sel], kind="stable")
        sel = sel[order]
        ps, tss = p[sel], t[sel]
        same = ps[1:] == ps[:-1]
        dis = same & (tss[1:] <= tss[:-1])
        # a silence longer than signal_loss allows between two fixes of the
        # batch: the timer is due in between (the check against q.due only
        # covers the first fix, and a new lane has no timer yet)
        dis |= same & ~within_signal(tss[:-1], tss[1:], q.after[ps[1:]])
        # a window entered in bulk: only for a person with that one fix
        wsel = ws[sel]
        if wsel.any():
            dis = dis | (same & (wsel[1:] | wsel[:-1]))
        worse = ps[1:][dis]
        # a fix implausibly far from the one before it (spoofing, see
        # _implausible): that person goes through the per-message path
        vs = valid[sel]
        if vs.any():
            ix = np.arange(len(sel))
            lastv = np.maximum.accumulate(np.where(vs, ix, -1))
            prevv = np.concatenate(([-1], lastv[:-1]))
            gs = np.maximum.accumulate(np.where(np.concatenate(([True], ~same)), ix, 0))
            inb = prevv >= gs
            pv = np.maximum(prevv, 0)
            slon, slat, sacc = lon[sel], lat[sel], acc[sel]
            a_ts = np.where(inb, tss[pv], q.lf_ts[ps])
            spd = _implied_speed_np(
                a_ts, np.where(inb, slon[pv], q.lf_lon[ps]), np.where(inb, slat[pv], q.lf_lat[ps]),
                np.where(inb, sacc[pv], q.lf_acc[ps]), tss, slon, slat, sacc)
            sus = vs & (a_ts >= 0) & too_fast(spd, eng._cfg.spoof_speed_mps)
            if sus.any():
                worse = np.concatenate((worse, ps[sus]))
        pst = q.pst[ps]
        if pst.any():  # a pending streak: the next fix must be certainly home
            lead = np.concatenate(([True], ~same))
            nogo = pst & lead & ~(valid[sel] & (fcode[sel] == -1))
            worse = np.concatenate((worse, ps[nogo]))
        if len(worse):
            keep = ~np.isin(ps, worse)
            sel, ps, tss = sel[keep], ps[keep], tss[keep]
            same = ps[1:] == ps[:-1]
            bad = np.concatenate((bad, worse))
        wsp = ps[ws[sel]]
    if len(bad):
        eng._materialise(np.unique(bad[q.mode[bad]]).tolist())
    slow = np.ones(n, np.bool_)
    if len(sel):
        if len(wsp):
            eng._enter_windows(wsp)
        eng._bulk_apply(fidx, sel, ps, tss, same, valid, lon, lat, acc, c1, first,
                         gi_all, dix, fx)  # type: ignore[arg-type]
        slow[fidx[sel]] = False
    rest = np.nonzero(slow)[0]
    return (rest.tolist(), clk_all[rest].tolist(), gi_all[rest].tolist(), len(sel), cls,
            clk_end)


def new_lanes(eng: Engine, p: Any, t: Any, ci: Any, nonfix: Any, clk: Any) -> None:
    """Start the lanes of persons seen for the first time, straight into quiet mode.

    Only for a person whose messages in the batch are all fixes, none
    late: the lane starts as the per-message path would start it at the
    first of them (curfew windows placed from that time), and the fixes
    then take the bulk path like any other. The lane is *virtual*: its
    values live in the arrays only, and its ``Lane`` object is built
    from them (and ``QuietLanes.t0``) when it is materialised.
    """
    q = eng._q
    new = ~q.known[p]
    if not new.any():
        return
    pn, tn = p[new], t[new]
    order = np.lexsort((tn, pn))
    pn, tn = pn[order], tn[order]
    head = np.concatenate(([True], pn[1:] != pn[:-1]))
    cand, t0 = pn[head], tn[head]
    lateness = eng._cfg.lateness_ms
    too_old = p[new & (t < np.maximum(clk, eng._wm) - lateness)]
    drop = np.concatenate((too_old, ci[nonfix]))
    late, watched = eng._late, eng._watchers
    if late or watched:
        row_of = q.row_of
        drop = np.concatenate((drop, np.array(
            [row_of.get(k, -1) for k in (*late, *watched)], np.int64)))
    keep = q.bulk_ok_a[cand]
    if len(drop):
        keep &= ~np.isin(cand, drop)
    cand, t0 = cand[keep], t0[keep]
    if not len(cand):
        return
    # the lane starts at its first fix (start_lane), its first timer is the
    # earlier of the order's end and its curfew window's boundary
    # (next_deadline), and it enters the arrays as enter_quiet would put it
    due = q.end_due[cand]
    cfk = q.curfew_rule[cand]
    ent = np.zeros(len(cand), np.bool_)
    ivs = np.zeros(len(cand), np.int64)
    ive = np.zeros(len(cand), np.int64)
    h = np.nonzero(cfk >= 0)[0]
    if len(h):
        names, specs = q.names, eng._specs
        iv = [window_at(specs[names[c]].zone_rules[k].calendar, tf)
              for c, k, tf in zip(cand[h].tolist(), cfk[h].tolist(), t0[h].tolist(), strict=True)]
        w = np.array(iv, np.int64).reshape(-1, 3)  # start, end, begun
        ivs[h], ive[h], ent[h] = w[:, 0], w[:, 1], w[:, 2] != 0
        due[h] = np.minimum(due[h], window_due(w[:, 0], w[:, 1], w[:, 2]))
    q.known[cand] = True
    q.t0[cand] = t0
    put_row(eng, cand, last=-1, front=-1, due=due, sdue=due, cf=ent, lastmsg=-1, lf_ts=-1,
            lf_lon=0.0, lf_lat=0.0, lf_acc=0.0, code=0, cf0=ent, ivs=ivs, ive=ive)


def put_row(eng: Engine, ci: Any, *, last: Any, front: Any, due: Any, sdue: Any, cf: Any,
            lastmsg: Any, lf_ts: Any, lf_lon: Any, lf_lat: Any, lf_acc: Any, code: Any,
            cf0: Any, ivs: Any, ive: Any) -> None:
    """Put lanes' values in the arrays and switch the rows to quiet mode.

    The one way into the arrays (:func:`materialise` is the way back):
    ``ci`` is one row (:func:`enter_quiet`, a lane object) or an array of
    rows (:func:`new_lanes`, lanes that start there), and each value is a
    scalar or an array of the same length. The checkpoint columns take the
    same values; nothing is pending yet.
    """
    q = eng._q
    q.mode[ci] = True
    q.last[ci] = last
    q.front[ci] = front
    q.due[ci] = due
    q.sdue[ci] = sdue
    q.after[ci] = q.signal_after[ci]
    q.cf[ci] = cf
    q.lastmsg[ci] = q.ck_lastmsg[ci] = lastmsg
    q.lf_ts[ci] = q.ck_lf_ts[ci] = lf_ts
    q.lf_lon[ci] = q.ck_lf_lon[ci] = lf_lon
    q.lf_lat[ci] = q.ck_lf_lat[ci] = lf_lat
    q.lf_acc[ci] = q.ck_lf_acc[ci] = lf_acc
    q.code[ci] = q.ck_code[ci] = code
    q.cf0[ci] = cf0
    q.ivs[ci] = ivs
    q.ive[ci] = ive
    q.lv[ci] = q.tk[ci] = -1
    q.pst[ci] = q.ck_has[ci] = False


def window_begins_alone(eng: Engine, rows: Any, x: Any) -> Any:
    """Whether the one timer of quiet ``rows`` due up to ``x`` is the start of
    their curfew window (elementwise; ``x`` a fix's time or a watermark).

    The window has not begun, its start is the row's timer and is due, and
    nothing else is up to ``x``: not the window's end, not the order's
    end, not signal loss. Such a row enters the window in the arrays
    (:func:`enter_windows`), as :func:`~geofence.engine.machines.catch_up`
    would enter it for a lane object; every other due timer is fired by
    ``catch_up`` after :func:`materialise`.
    """
    q = eng._q
    due = q.due[rows]
    return ((x >= due) & (due == q.sdue[rows]) & (q.curfew_rule[rows] >= 0) & ~q.cf[rows]
            & (q.ivs[rows] == due) & (x < q.ive[rows]) & (x < q.valid_until[rows])
            & within_signal(q.lastmsg[rows], x, q.after[rows]))


def bulk_advance(eng: Engine, wm: int) -> None:
    """Timers of quiet lanes up to ``wm``: curfew windows that begin with the
    person not certainly outside are entered in bulk; every other lane
    with a timer due is materialised (and fires in :meth:`Engine.advance
    <geofence.engine.Engine.advance>`)."""
    q = eng._q
    c = np.nonzero(q.mode & (q.due <= wm))[0]
    if not len(c):
        return
    # out at the window's start: a streak that cannot open at once stays pending
    ws = window_begins_alone(eng, c, wm) & ((q.code[c] != 1) | q.streak_waits[c])
    w = c[ws]
    if len(w):
        out = eng._enter_windows(w)
        q.pst[w[out]] = True  # out at the start, no fix yet: the streak is still on
        q.due[w] = rearm_due_np(q.sdue[w], q.lastmsg[w], q.after[w])
        q.tk[w] = q.ivs[w]
        q.last[w] = np.maximum(q.last[w], q.ivs[w] - 1)  # a fix before the timer rewinds
    eng._materialise(c[~ws].tolist())


def enter_windows(eng: Engine, w: Any) -> Any:
    """Quiet rows ``w`` enter their curfew window, as
    :func:`~geofence.engine.machines.window_begins` says; returns which of
    them were certainly outside as it began (see ``QuietLanes.lv``)."""
    q = eng._q
    due, viol_at = window_begins(q.ivs[w], q.ive[w], q.code[w])
    out = viol_at >= 0
    q.lv[w[out]] = viol_at[out]
    q.cf[w] = True
    q.sdue[w] = np.minimum(due, q.end_due[w])  # the static timers: with the order's end
    return out


def bail(eng: Engine, messages: Sequence[Telemetry]) -> None:
    """The batch goes through the per-message path: materialise its persons' lanes."""
    q = eng._q
    if not q.mode.any():
        return
    cis: set[int] = set()
    route, row_of = eng._route, q.row_of
    for m in messages:
        if type(m) is VideoHit:
            ci = row_of.get(m.person_id or "", -1)
        else:
            r = route.get(m.device_id)  # type: ignore[union-attr]
            ci = -1 if r is None else r[1]
        if ci >= 0:
            cis.add(ci)
    eng._materialise(sorted(cis))


def bulk_apply(eng: Engine, fidx: Any, sel: Any, ps: Any, tss: Any, same: Any, valid: Any,
                lon: Any, lat: Any, acc: Any, c1: Any, first: Any, gi_all: Any, dix: Any,
                fx: list[Fix]) -> None:
    """Apply quiet fixes (grouped by person, in order) to the arrays and the pending log."""
    q = eng._q
    pl = eng._pl
    wm0 = eng._wm
    # fold once the rows added since the last fold outnumber the rows that
    # were alive then (and fold_every): each fold's O(log) pass is paid
    # for by as many new rows, and the log stays about one horizon long
    if pl.since_fold > max(eng._fold_every, len(pl) - pl.since_fold):
        pl.fold(q, wm0 - eng._cfg.lateness_ms)
    ends = np.concatenate((~same, [True]))
    up, tl = ps[ends], tss[ends]
    q.last[up] = tl
    q.pst[up] = False  # checked by _bulk_pass: the first fix ended the streak
    q.front[up] = np.maximum(q.front[up], tl)
    lm = np.maximum(q.lastmsg[up], tl)
    q.lastmsg[up] = lm
    q.due[up] = rearm_due_np(q.sdue[up], lm, q.after[up])
    v = valid[sel]
    code = np.zeros(len(sel), np.int8)
    cfk = q.curfew_rule[ps]
    gi = gi_all[fidx[sel]]
    has = v & (cfk >= 0)
    if has.any():
        code[has] = c1[first[gi[has]] + cfk[has]]
    if v.any():
        vr = np.nonzero(v)[0]
        vp = ps[vr]
        vend = np.concatenate((vp[1:] != vp[:-1], [True]))
        lv, uv = sel[vr[vend]], vp[vend]
        q.lf_ts[uv] = tss[vr[vend]]
        q.lf_lon[uv] = lon[lv]
        q.lf_lat[uv] = lat[lv]
        q.lf_acc[uv] = acc[lv]
        cf = q.curfew_rule[uv] >= 0
        q.code[uv[cf]] = code[vr[vend]][cf]
    pl.append(q, fx, sel, {
        "person": ps, "ts": tss, "dev": dix[fidx[sel]], "valid": v,
        "lon": lon[sel], "lat": lat[sel], "acc": acc[sel], "code": code})


def enter_quiet(eng: Engine, lane: Lane, spec: PersonSpec) -> None:
    """Hand a quiet lane's liveness to the arrays of :mod:`geofence.bulk`."""
    q = eng._q
    st = lane.state
    if (lane.late or not lane.quiet or not st.started or st.expired or eng._csr_dirty
            or eng._watchers_dirty):
        return
    key = lane.key
    ci = q.row_of.get(key, -1)
    if ci < 0 or not q.bulk_ok[ci] or key in eng._late or key in eng._watchers:
        return
    put_row(eng, ci, **lane_row(lane, int(q.curfew_rule[ci])))


def materialise(eng: Engine, cis: Any) -> None:
    """Give lanes in quiet mode their state back as ``Lane`` objects.

    The checkpoint becomes the folded values (when rows were folded), the
    pending rows become tail entries, and the state takes the newest
    liveness values; then the lane is an ordinary lane again.
    """
    q, pl = eng._q, eng._pl
    cols = pl.cols
    batches = pl.batches
    names = q.names
    for ci in cis:
        ci = int(ci)
        if not q.mode[ci]:
            continue
        q.mode[ci] = False
        key = names[ci]
        lane = eng._lanes.get(key)  # type: ignore[assignment]
        if lane is None:  # a virtual lane (see _new_lanes): started at its first fix
            lane = eng._lane(key)
            eng._start(lane.state, eng._specs[key], int(q.t0[ci]))
            lane.quiet = True
            lane.cf_entered = bool(q.cf0[ci])
        st = lane.state
        k = int(q.curfew_rule[ci])
        last_key: Key | None = None
        entered = bool(q.cf[ci] and not q.cf0[ci])  # a window entered in bulk
        if q.ck_has[ci]:
            ck = st.copy()
            _put_liveness(ck, k, int(q.ck_lastmsg[ci]), int(q.ck_lf_ts[ci]),
                          float(q.ck_lf_lon[ci]), float(q.ck_lf_lat[ci]),
                          float(q.ck_lf_acc[ci]), int(q.ck_code[ci]),
                          entered and q.ck_ts[ci] >= q.ivs[ci],  # it began before that row
                          int(q.lv[ci]))
            last_key = (int(q.ck_ts[ci]), 1, q.device_names[int(q.ck_dev[ci])], 0, "")
            lane.ckpt, lane.ckpt_key, lane.pend = ck, last_key, None
            lane.tail = []
            eng._prune(lane)
            q.ck_has[ci] = False
        rows = pl.rows_of(q, ci)
        if rows:
            bids = cols["bid"][rows].tolist()
            rws = cols["row"][rows].tolist()
            ents = []
            for b, r in zip(bids, rws, strict=True):
                m = batches[b][r]
                ents.append(Entry((m.ts, 1, m.device_id, 0, ""), m))
            lane.tail.extend(ents)
            last_key = ents[-1].key
        _put_liveness(st, k, int(q.lastmsg[ci]), int(q.lf_ts[ci]), float(q.lf_lon[ci]),
                      float(q.lf_lat[ci]), float(q.lf_acc[ci]), int(q.code[ci]), entered,
                      int(q.lv[ci]))
        if k >= 0 and entered:
            lane.cf_entered = True
            if q.pst[ci]:  # the streak begun at the window's start is still on
                cfg = eng._cfg
                observe(st.conds[k], 1, int(q.lv[ci]), cfg.confirm_fixes,
                        eng._specs[key].zone_rules[k].dwell_ms, cfg.streak_gap_ms)
                lane.quiet = False
                q.pst[ci] = False
        lane.static_due = int(q.sdue[ci])
        if q.tk[ci] >= 0:
            tk: Key = (int(q.tk[ci]), 0, "", 0, "")
            if last_key is None or tk > last_key:
                last_key = tk
        if last_key is not None and last_key > lane.last_key:
            lane.last_key = last_key
        fr = int(q.front[ci])
        if fr > lane.frontier:
            lane.frontier = fr
        lane.due = int(q.due[ci])
        if lane.due < lane.heap_at:
            lane.heap_at = lane.due
            heapq.heappush(eng._heap, (lane.due, key))
        eng._roll(lane)


def materialise_all(eng: Engine, reenter: bool = False) -> None:
    q = eng._q
    if len(q.mode):
        cis = np.nonzero(q.mode)[0].tolist()
        eng._materialise(cis)
        if reenter:  # still quiet: back to bulk mode (a snapshot changes nothing)
            names, specs = q.names, eng._specs
            for ci in cis:
                lane = eng._lanes[names[ci]]
                if lane.quiet:
                    eng._enter_quiet(lane, specs[lane.key])


def fast_many(eng: Engine, lane: Lane, spec: PersonSpec, ents: list[Entry],
              cls: Classified) -> bool:
    """Apply in-order fixes that certainly change nothing but liveness, in
    place; ``False`` (and nothing changed) when they may change more.

    The decision :func:`bulk_pass` takes for the rows of the arrays, taken
    on one lane object's row (:func:`lane_row`): :func:`quiet_fix` for each
    fix, :func:`within_signal` and :func:`too_fast` between consecutive
    fixes. A lane that is quiet (no streak, no open alert), with at most one
    curfew rule (the one a row holds) qualifies; its new liveness goes back
    with :func:`~geofence.engine.state._put_liveness`, as from a row.
    """
    if not lane.state.started or len(spec.curfew_idx) > 1 or spec.casework:
        return False  # (casework: every fix may matter to a rule's activity)
    k = spec.curfew_idx[0] if spec.curfew_idx else -1
    row = lane_row(lane, k)
    last, due, cf_open = row["last"], row["due"], row["cf"]
    after = -1 if spec.signal_after_ms is None else spec.signal_after_ms
    flags = cls.flags
    vmax = eng._cfg.spoof_speed_mps
    a_ts, a_lon, a_lat, a_acc = row["lf_ts"], row["lf_lon"], row["lf_lat"], row["lf_acc"]
    prev = row["lastmsg"]
    last_valid: Entry | None = None
    for e in ents:
        m = e.msg
        if type(m) is not Fix:
            return False
        t = e.key[0]
        gi = e.gi
        if not quiet_fix(t, last, due, int(flags[gi]) if gi >= 0 else 0, cf_open, False):
            return False
        if prev >= 0 and not within_signal(prev, t, after):
            return False
        if m.valid:
            if a_ts >= 0 and too_fast(_implied_speed(a_ts, a_lon, a_lat, a_acc, t, m.lon, m.lat,
                                                     m.accuracy_m), vmax):
                return False  # implausible: the per-message path judges it
            a_ts, a_lon, a_lat, a_acc = t, m.lon, m.lat, m.accuracy_m
            last_valid = e
        last = prev = t
    st = lane.state
    code = row["code"]
    if (k >= 0 and last_valid is not None and last_valid.gi >= 0 and not st.expired
            and spec.active_at(a_ts)):
        code = cls.curfew_code(last_valid.gi, k)
    lf_ts = row["lf_ts"] if last_valid is None else last_valid.msg.ts  # type: ignore[union-attr]
    _put_liveness(st, k, max(row["lastmsg"], last), lf_ts, a_lon, a_lat, a_acc, code, False, -1)
    lane.tail.extend(ents)
    lane.last_key = ents[-1].key
    if last > lane.frontier:
        lane.frontier = last
    if spec.signal_after_ms is not None and st.sig is None:
        lane.due = rearm_due(lane.static_due, st.last_msg, spec.signal_after_ms)
    return True
