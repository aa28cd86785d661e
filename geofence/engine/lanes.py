"""Lanes: one person's (or camera's) steps in event time, fed, rewound and scheduled.

A lane takes its new steps in key order (:func:`feed`); a step older than
the newest one makes it :func:`rewind` from its checkpoint and release only
the difference (:mod:`geofence.engine.publish`). :func:`roll` moves the
checkpoint once it is older than the lateness horizon, :func:`schedule`
re-arms the lane's timer and, when nothing is open, hands it to the bulk
path (:func:`geofence.engine.quiet.enter_quiet`). Late data has its own lane;
:func:`handover` and :func:`late_liveness` are where the two meet.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING

import msgspec

from geofence.engine.classify import Classified, attach_codes, ensure_codes
from geofence.engine.config import (
    Key,
    ProcessResult,
)
from geofence.engine.machines import rearm_due
from geofence.engine.state import (
    Entry,
    Hist,
    Lane,
    LogItem,
    _entry_key,
    _fresh_state,
)
from geofence.model import (
    Alert,
    AlertRecord,
    Fix,
    parse_ts,
)
from geofence.rules import (
    PersonSpec,
)

if TYPE_CHECKING:
    from geofence.engine.core import Engine


def lane_for(eng: Engine, key: str, late: bool = False) -> Lane:
    table = eng._late if late else eng._lanes
    lane = table.get(key)
    if lane is None:
        spec = eng._specs.get(key)
        st = _fresh_state(spec)
        lane = Lane(key=key, late=late, state=st, ckpt=st.copy())
        table[key] = lane
        if not late and not eng._csr_dirty:
            ci = eng._q.row_of.get(key, -1)
            if ci >= 0:
                eng._q.known[ci] = True
    return lane


def spec_of(eng: Engine, lane: Lane) -> PersonSpec | None:
    return None if lane.key.startswith("camera:") else eng._specs.get(lane.key)


def feed(eng: Engine, lane: Lane, ents: list[Entry], res: ProcessResult, cls: Classified) -> None:
    """Evaluate a lane's new steps (``cls``: their batch's classifications)."""
    if len(ents) > 1:
        ents.sort(key=_entry_key)
        uniq: list[Entry] = []
        prev: Key | None = None
        for e in ents:
            if e.key == prev:
                res.duplicates += 1
                continue
            uniq.append(e)
            prev = e.key
    else:
        uniq = ents
    spec = eng._specs.get(lane.key)
    if spec is not None and spec.checkin is not None:
        for e in uniq:  # check-ins are judged against the zones in the lane
            attach_codes(e, cls)
        ensure_codes(eng._zones, spec, uniq)
    if uniq[0].key > lane.last_key:
        if (eng._quick and spec is not None and not lane.late
                and lane.state.started and lane.key not in eng._slow
                and eng._fast(lane, spec, uniq, cls)):
            eng._roll(lane)
            if lane.due < lane.heap_at:
                lane.heap_at = lane.due
                heapq.heappush(eng._heap, (lane.due, lane.key))
            if eng._bulk:
                eng._enter_quiet(lane, spec)
            return
        out: list[LogItem] = []
        st = lane.state
        tail = lane.tail
        for e in uniq:
            # a fix of this batch (no codes yet) has its nearest zones in cls
            near = cls.nearest_of(e.gi) if e.c1 is None else None
            attach_codes(e, cls)
            tail.append(e)
            eng._apply(lane, st, spec, e, out, near)
        lane.last_key = max(lane.last_key, uniq[-1].key)
        if uniq[-1].key[0] > lane.frontier:
            lane.frontier = uniq[-1].key[0]
        if out:
            eng._publish(lane, out, res.records)
    else:
        for e in uniq:
            attach_codes(e, cls)
        eng._rewind(lane, spec, uniq, res)
    eng._roll(lane)
    if not lane.late:
        eng._schedule(lane, spec)


def rewind(eng: Engine, lane: Lane, spec: PersonSpec | None, uniq: list[Entry], res: ProcessResult) -> None:
    tail = lane.tail
    keys = [x.key for x in tail]
    first: Key | None = None
    for e in uniq:
        if e.key <= lane.ckpt_key:
            res.too_late += 1
            continue
        i = bisect_left(keys, e.key)
        if i < len(keys) and keys[i] == e.key:
            res.duplicates += 1
            continue
        tail.insert(i, e)
        keys.insert(i, e.key)
        if first is None or e.key < first:
            first = e.key
        if e.key[0] > lane.frontier:
            lane.frontier = e.key[0]
    if first is None:
        return
    if lane.pend is not None and lane.pend_key < first:
        base, bkey = lane.pend, lane.pend_key
    else:
        base, bkey = lane.ckpt, lane.ckpt_key
        lane.pend = None
    st = base.copy()
    log = lane.log
    split = len(log)
    while split > 0 and log[split - 1].key > bkey:
        split -= 1
    old = log[split:]
    del log[split:]
    new: list[LogItem] = []
    last = bkey
    rerun = tail[bisect_right(keys, bkey):]
    ensure_codes(eng._zones, spec, rerun)
    for e in rerun:
        eng._apply(lane, st, spec, e, new)
        last = e.key
    if lane.adv >= 0 and (lane.adv, 1, "", 0, "") > last:
        tk = eng._catch_up(lane, st, spec, (lane.adv, 1, "", 0, ""), new)
        if tk is not None and tk > last:
            last = tk
    lane.state = st
    lane.last_key = max(last, lane.last_key) if last > bkey else lane.last_key
    eng._publish_diff(lane, old, new, res.records, first[0])


def roll(eng: Engine, lane: Lane) -> None:
    """Move the checkpoint forward once the pending snapshot is past the horizon."""
    e_time = lane.frontier if lane.late or lane.frontier > eng._wm else eng._wm
    if lane.pend is not None and lane.pend_key[0] < e_time - eng._cfg.lateness_ms:
        lane.ckpt, lane.ckpt_key = lane.pend, lane.pend_key
        lane.pend = None
        eng._prune(lane)
    # a new pending snapshot once the checkpoint is four horizons old: one
    # state copy per four horizons of event time, a tail of at most five
    if lane.pend is None and lane.last_key[0] >= lane.ckpt_key[0] + 4 * eng._cfg.lateness_ms:
        lane.pend = lane.state.copy()
        lane.pend_key = lane.last_key


def prune(lane: Lane) -> None:
    """Drop the tail and log before the checkpoint (nothing can rewind there)."""
    k = lane.ckpt_key
    tail = lane.tail
    n = bisect_right(tail, k, key=_entry_key)  # the tail is sorted by key
    if n:
        del tail[:n]
    log = lane.log
    n = 0
    while n < len(log) and log[n].key <= k:
        it = log[n].rec.alert
        if it.status == "cleared" and lane.emitted.get(it.alert_id) == it:
            del lane.emitted[it.alert_id]
        n += 1
    if n:
        del log[:n]
    if lane.hist is not None and len(lane.hist) > 64:
        del lane.hist[:-64]


def schedule(eng: Engine, lane: Lane, spec: PersonSpec | None) -> None:
    """Re-arm the lane's timer and refresh the flags the fast path reads."""
    st = lane.state
    d = eng._next_deadline(lane, st, spec)
    lane.due = d
    lane.quiet = (st.sig is None and not st.dev and st.sp is None
                  and all(c.start < 0 and c.alert is None for c in st.conds)
                  and all(c.start < 0 and c.alert is None for c in st.appr)
                  and all(c.start < 0 and c.alert is None for c in st.cconds))
    lane.cf_entered = any(c.entered for c in st.conds)
    if d < lane.heap_at:
        lane.heap_at = d
        heapq.heappush(eng._heap, (d, lane.key))
    if lane.quiet and eng._bulk and spec is not None:
        eng._enter_quiet(lane, spec)


def handover(eng: Engine, late: Lane, lane: Lane, ents: list[Entry]) -> None:
    """Continue the late lane's unfinished zone episodes in the live lane.

    Backfill that reaches up to the present (a device reconnecting in the
    middle of a breach) leaves an episode open, or a streak under way, in
    the late lane. When the live lane has seen nothing newer than that
    backfill and is itself quiet on the same condition, the condition's
    state moves over: the live data that follows confirms or clears the
    *same* episode (its alert keeps ``late: true``) instead of opening a
    second one. Both lanes restart their rewind checkpoint here.
    """
    spec = eng._specs.get(lane.key)
    if spec is None or late.frontier < 0 or lane.state.last_msg > late.frontier:
        return
    if min(e.key for e in ents) <= late.last_key:
        return
    lst, st = late.state, lane.state
    moved: list[Alert] = []
    any_moved = False
    for i, zr in enumerate(spec.zone_rules):
        if zr.calendar is not None:  # a rule with an activity keeps its own episodes
            continue
        for lc, cc in ((lst.conds[i], st.conds[i]), (lst.appr[i], st.appr[i])):
            if (lc.start < 0 and lc.alert is None) or cc.start >= 0 or cc.alert is not None:
                continue
            cc.start, cc.n, cc.last_viol, cc.alert = lc.start, lc.n, lc.last_viol, lc.alert
            if lc.alert is not None:
                moved.append(lc.alert)
            lc.start, lc.n, lc.alert = -1, 0, None
            any_moved = True
    if not any_moved:
        return
    lane.quiet = False
    for a in moved:
        late.emitted.pop(a.alert_id, None)
        lane.emitted[a.alert_id] = a
        if lane.hist is None:
            lane.hist = []
        lane.hist.append(Hist(a.alert_id, a.kind, a.rule_id, parse_ts(a.opened_at)))
    for ln in (late, lane):
        ln.ckpt, ln.ckpt_key, ln.pend = ln.state.copy(), ln.last_key, None
        ln.tail, ln.log = [], []


def late_liveness(eng: Engine, key: str, ents: list[Entry], out: list[AlertRecord]) -> None:
    """Late data is a sign of life for ``signal_loss`` too (contract: any message).

    A delayed message beyond the lateness horizon goes to the late lane, but
    it still shows the person was not silent: the live lane's last message
    moves on to it (in its checkpoints too, so a rewind keeps it), its
    timer re-arms from there, and a ``signal_lost`` already opened by the
    clock whose gap that message falls in is retracted, exactly as a rewind
    retracts an episode the full data denies.
    """
    lane = eng._lanes.get(key)
    spec = eng._specs.get(key)
    if lane is None or spec is None or spec.signal_after_ms is None:
        return
    st = lane.state
    newest = max(e.key[0] for e in ents)
    sig = st.sig
    if sig is not None:
        opened = parse_ts(sig.opened_at)
        if not any(opened - spec.signal_after_ms < e.key[0] < opened for e in ents):
            return  # the gap really happened; live data will clear it
        gone = msgspec.structs.replace(
            sig, status="cleared", cleared_at=sig.opened_at, reason="retracted")
        out.append(AlertRecord("cleared", gone, at=sig.opened_at))
        lane.emitted[sig.alert_id] = gone
        st.sig = None
        lane.ckpt, lane.ckpt_key, lane.pend = st.copy(), lane.last_key, None
        lane.tail, lane.log = [], []
    if newest <= st.last_msg:
        return
    for state in (st, lane.ckpt, lane.pend):
        if state is not None and state.last_msg < newest:
            state.last_msg = newest
    lane.due = rearm_due(lane.static_due, st.last_msg, spec.signal_after_ms)
    if lane.due < lane.heap_at:  # a lane that had no timer (only late data so far)
        lane.heap_at = lane.due
        heapq.heappush(eng._heap, (lane.due, key))


def watched_fixes(eng: Engine, lane: Lane, pid: str, ents: list[Entry], ws: list[str],
                   probes: dict[str, list[Entry]]) -> None:
    """Keep the recent valid fixes of a person others must not meet; queue probes."""
    rec = eng._recent.setdefault(pid, [])
    for e in ents:
        m = e.msg
        if type(m) is Fix and m.valid:
            item = (m.ts, m.lon, m.lat, m.accuracy_m)
            if rec and rec[-1] >= item:
                i = bisect_left(rec, item)
                if i < len(rec) and rec[i] == item:
                    continue
                rec.insert(i, item)
            else:
                rec.append(item)
            for a in ws:
                probes.setdefault(a, []).append(
                    Entry((m.ts, 1, "\x7fprobe:" + pid, 3, ""), None, pid)
                )
    # keep what any watcher's rewind may still look at: fixes back to the
    # oldest checkpoint (or first tail step) of the watchers' lanes
    cfg = eng._cfg
    cut = max(lane.frontier, eng._wm) - 6 * cfg.lateness_ms
    for a in ws:
        al = eng._lanes.get(a)
        if al is None:
            continue
        if al.ckpt_key[0] >= 0:
            base = al.ckpt_key[0]
        elif al.tail:
            base = al.tail[0].key[0]
        else:
            continue
        cut = min(cut, base)
    cut -= cfg.contact_max_age_ms
    if rec and rec[0][0] < cut:
        del rec[: bisect_left(rec, (cut,))]
