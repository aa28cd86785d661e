"""Orders and zones: installing, compiling to arrays, and reloading them live.

:func:`install_all` compiles orders (:func:`geofence.rules.compile_orders`),
:func:`rebuild_csr` numbers persons and devices and builds the per-person
arrays (:class:`~geofence.bulk.QuietLanes`). :func:`upsert_order`,
:func:`remove_order` and :func:`set_zones` change them while lanes run;
:func:`rebase` carries each lane's state over and clears what no longer
applies. :func:`start_owed` starts the check-in schedule of an order with a
``valid_from`` as it is installed, before any message of the person.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from geofence.bulk import PendingLog, QuietLanes
from geofence.engine.checkins import arm_checkins, owed_from
from geofence.engine.classify import RuleTable
from geofence.engine.config import (
    Key,
)
from geofence.engine.machines import order_end_due, window_at
from geofence.engine.state import (
    Lane,
    LogItem,
    _fresh_state,
)
from geofence.episodes import Cond, observe
from geofence.gc_pause import gc_paused
from geofence.model import (
    AlertRecord,
    Order,
)
from geofence.rules import (
    CHECKIN_KINDS,
    LEAVE_KIND,
    TERM_KIND,
    PersonSpec,
    ZoneIndex,
    compile_order,
    compile_orders,
)

if TYPE_CHECKING:
    from geofence.engine.core import Engine


def install_all(eng: Engine, orders: list[Order]) -> None:
    """Install many orders, compiled in one batch (repeated rules compiled once, shared)."""
    specs = compile_orders(orders, eng._zones, eng._cfg.default_dwell_s)
    for o, spec in zip(orders, specs, strict=True):
        eng._install(o, spec)


def install(eng: Engine, order: Order, spec: PersonSpec | None = None) -> PersonSpec:
    old = eng._orders.get(order.person_id)
    if old is not None:
        for d in old.devices:
            if eng._dev.get(d) == order.person_id:
                del eng._dev[d]
    if spec is None:
        spec = compile_order(order, eng._zones, eng._cfg.default_dwell_s)
    eng._orders[order.person_id] = order
    eng._specs[order.person_id] = spec
    for d in order.devices:
        eng._dev[d] = order.person_id
    eng._csr_dirty = True
    return spec


def start_owed(eng: Engine, person_id: str) -> None:
    """Start an installed order's check-in schedule without waiting for a message.

    For an order under a checkin rule with a ``valid_from``, check-ins are
    owed from :func:`~geofence.engine.checkins.owed_from` (``valid_from``,
    or the engine's event time when later): the person's lane is created
    if they have none yet and its deadline timer armed, so a phone that
    never sends anything still misses its check-ins as event time passes
    (:meth:`Engine.advance`). A schedule already running is left as it is;
    every state a rewind may start from (checkpoints) gets the same start.
    """
    spec = eng._specs.get(person_id)
    if spec is None:
        return
    t = owed_from(spec, eng._wm)
    if t is None:
        return
    lane = eng._lanes.get(person_id)
    if lane is None:
        lane = eng._lane(person_id)
    elif lane.state.ck_due >= 0:
        return
    for st in (lane.state, lane.ckpt, lane.pend):
        if st is not None and st.ck_due < 0:
            arm_checkins(st, t)
    eng._schedule(lane, spec)


def rebuild_watchers(eng: Engine) -> None:
    # lanes that never take the in-place fast path: cameras (no spec),
    # persons with no_contact rules (each fix is a contact observation) and
    # persons with a checkin rule (deadlines, check-ins)
    eng._watchers_dirty = False
    eng._slow = {p for p, s in eng._specs.items() if s.contact_rules or s.checkin is not None}
    w: dict[str, list[str]] = {}
    for pid, spec in eng._specs.items():
        for cr in spec.contact_rules:
            lst = w.setdefault(cr.other, [])
            if pid not in lst:
                lst.append(pid)
    eng._watchers = w


def rebuild_csr(eng: Engine) -> None:
    """Number the persons and devices and compile the orders into arrays.

    Persons are numbered in order of installation (``ci``, "compiled
    index"). The engine keeps the zone rules of every person
    (``_rules``, a :class:`~.classify.RuleTable`) and each device's route
    (``_route``: device id -> person id, ``ci``, order start, order end);
    the numbering itself and what the quiet path needs of each order go
    to a new :class:`~geofence.bulk.QuietLanes` (``_q``; its docstring
    names every field) with an empty pending log (``_pl``): every lane is
    materialised before the numbering changes, so no row is in quiet mode.
    """
    pids = list(eng._specs)
    row_of = {p: i for i, p in enumerate(pids)}
    specs = [eng._specs[p] for p in pids]
    n = len(specs)
    counts = np.fromiter((len(s.zone_idx) for s in specs), np.int64, n)
    starts = np.zeros(n, np.int64)
    if n:
        starts[1:] = np.cumsum(counts)[:-1]

    def cat(arrs: list[Any], dtype: Any) -> Any:
        return np.concatenate(arrs).astype(dtype) if arrs else np.zeros(0, dtype)

    eng._rules = RuleTable(starts, counts, cat([s.zone_idx for s in specs], np.int64),
                           cat([s.buffer_m for s in specs], np.float64),
                           cat([s.kinds for s in specs], np.int8))
    eng._route = {d: (p, row_of[p], eng._specs[p].valid_from, eng._specs[p].valid_until)
                   for d, p in eng._dev.items()}
    q = QuietLanes(n)
    q.names = pids
    q.row_of = row_of
    q.devices = {d: k for k, d in enumerate(eng._dev)}
    q.device_names = list(eng._dev)
    q.device_row = np.fromiter((row_of[p] for p in eng._dev.values()), np.int64,
                               len(eng._dev))
    q.valid_from = np.fromiter((s.valid_from for s in specs), np.int64, n)
    q.valid_until = np.fromiter((s.valid_until for s in specs), np.int64, n)
    q.curfew_rule = np.fromiter((s.curfew_idx[0] if len(s.curfew_idx) == 1 else -1
                                 for s in specs), np.int64, n)
    q.bulk_ok = [not s.contact_rules and s.checkin is None and len(s.curfew_idx) <= 1
                 and not s.casework for s in specs]
    q.bulk_ok_a = np.array(q.bulk_ok, np.bool_)
    q.end_due = np.fromiter((order_end_due(s) for s in specs), np.int64, n)
    q.signal_after = np.fromiter(
        (-1 if s.signal_after_ms is None else s.signal_after_ms for s in specs), np.int64, n)
    # a curfew streak begun at the window's start cannot open at once: the
    # state machine, shown one violating observation, does not open
    cfg = eng._cfg

    def opens_at_once(dwell_ms: int) -> bool:
        return observe(Cond(), 1, 0, cfg.confirm_fixes, dwell_ms, cfg.streak_gap_ms) == 1

    q.streak_waits = np.fromiter(
        (len(s.curfew_idx) == 1 and not opens_at_once(s.zone_rules[s.curfew_idx[0]].dwell_ms)
         for s in specs), np.bool_, n)
    for key in eng._lanes:  # persons that have a lane already
        ci = row_of.get(key, -1)
        if ci >= 0:
            q.known[ci] = True
    eng._q = q
    eng._pl = PendingLog()
    eng._csr_dirty = False


def rebase(eng: Engine, lane: Lane, old: PersonSpec | None, new: PersonSpec | None, reason: str,
            out: list[AlertRecord]) -> None:
    """Carry a lane's state over to a changed order or zone set."""
    st = lane.state
    at = max(lane.frontier, 0)
    items: list[LogItem] = []
    key: Key = (at, 1, "\x7freload", 0, "")
    if new is None:
        for a in st.open_alerts():
            eng._clear(a, key, at, items, reason)
        lane.state = _fresh_state(None)
    else:
        fresh = _fresh_state(new)
        conds, appr, cconds = list(fresh.conds), list(fresh.appr), list(fresh.cconds)
        if old is not None:
            # same rule on the same zone id keeps its state (a reloaded
            # catalogue may renumber zones; a changed geometry applies from now)
            by_rule = {(z.rule_id, z.kind, z.zone_id): i for i, z in enumerate(old.zone_rules)}
            used: set[int] = set()
            for i, z in enumerate(new.zone_rules):
                j = by_rule.get((z.rule_id, z.kind, z.zone_id))
                if j is not None:
                    conds[i], appr[i] = st.conds[j], st.appr[j]
                    used.add(j)
                    if z.calendar is not old.zone_rules[j].calendar and st.started:
                        replace_activity(eng, old.zone_rules[j].calendar, z.calendar,
                                         conds[i], appr[i], key, at, items)
                elif z.calendar is not None and st.started:
                    c = conds[i]  # a new rule: its activity from the reload on
                    c.iv_start, c.iv_end, c.entered = window_at(z.calendar, at)
            for j in range(len(old.zone_rules)):
                if j not in used:
                    for c in (st.conds[j], st.appr[j]):
                        if c.alert is not None:
                            eng._clear(c.alert, key, at, items, reason)
            by_c = {(c.rule_id, c.other): j for j, c in enumerate(old.contact_rules)}
            usedc: set[int] = set()
            for i, cr in enumerate(new.contact_rules):
                j = by_c.get((cr.rule_id, cr.other))
                if j is not None:
                    cconds[i] = st.cconds[j]
                    usedc.add(j)
            for j, c in enumerate(st.cconds):
                if j not in usedc and c.alert is not None:
                    eng._clear(c.alert, key, at, items, reason)
        fresh.conds, fresh.appr, fresh.cconds = tuple(conds), tuple(appr), tuple(cconds)
        fresh.last_msg, fresh.lf_ts, fresh.lf_lon, fresh.lf_lat, fresh.lf_acc = (
            st.last_msg, st.lf_ts, st.lf_lon, st.lf_lat, st.lf_acc)
        fresh.dev = dict(st.dev)
        oc = old.checkin if old is not None else None
        if oc is not None and oc == new.checkin:  # the same schedule: it goes on
            fresh.ck_done, fresh.ck_due, fresh.ck_paid = st.ck_done, st.ck_due, st.ck_paid
        # (otherwise placed afresh: by start_owed after the reload when the order
        # has a valid_from, else at the lane's next step, start_lane)
        if oc is not None and (new.checkin is None or new.checkin.rule_id != oc.rule_id):
            for name in CHECKIN_KINDS:
                if name in fresh.dev:
                    eng._clear(fresh.dev.pop(name), key, at, items, reason)
        carry_casework(eng, st, fresh, old, new, key, at, items)
        # the lane goes on: kept rules keep their activity (a window or leave
        # beginning after the reload begins as it would have without it)
        fresh.started = st.started and old is not None
        fresh.sp = st.sp
        fresh.sig = st.sig
        if fresh.sig is not None and new.signal_after_ms is None:
            eng._clear(fresh.sig, key, at, items, reason)
            fresh.sig = None
        lane.state = fresh
    # no rewind across a reload: the checkpoint restarts here
    lane.ckpt = lane.state.copy()
    lane.ckpt_key = lane.last_key
    lane.pend = None
    lane.tail = []
    lane.log = []
    if items:
        eng._publish(lane, items, out)
        lane.log = []
    for it in items:
        if it.rec.alert.status == "cleared":
            lane.emitted.pop(it.rec.alert.alert_id, None)
    if not lane.late:
        eng._schedule(lane, new)


def replace_activity(eng: Engine, was: Any, cal: Any, c: Cond, ac: Cond, key: Key, at: int,
                     items: list[LogItem]) -> None:
    """A kept zone rule whose activity changed (its windows, a leave, the
    term) at ``at``: its state follows the new activity from there. An
    activity that stops now clears the rule's episodes (``exempted`` for a
    leave added, ...); one that starts now begins at ``at`` (the rule's
    last code observed then, :func:`~geofence.engine.machines.activity_step`)."""
    active = was is None or (c.entered and c.iv_start <= at < c.iv_end)
    if cal is None:
        c.iv_start, c.iv_end, c.entered = 0, 0, False
        return
    s, e, begun = window_at(cal, at)
    if begun and not active:
        c.iv_start, c.iv_end, c.entered = at, e, False  # begins at the reload
        return
    if not begun and active:
        why = cal.why_inactive(at)
        for cc in (c, ac):
            if cc.alert is not None:
                eng._clear(cc.alert, key, at, items, why)
                cc.alert = None
            cc.start, cc.n = -1, 0
    c.iv_start, c.iv_end, c.entered = s, e, begun


def carry_casework(eng: Engine, st: Any, fresh: Any, old: PersonSpec | None, new: PersonSpec,
                   key: Key, at: int, items: list[LogItem]) -> None:
    """Leave and term alerts across a reload: ``leave_overdue`` clears when
    the new order removes or extends its exemption; the term reminder when
    the new order renews the term (a later ``until``) or drops it."""
    until = {lv.leave_id: lv.until for lv in new.leaves}
    for name in [n for n in fresh.dev if n.startswith(LEAVE_KIND + ":")]:
        lid = name[len(LEAVE_KIND) + 1:]
        if until.get(lid, -1) != (old_until(old, lid)):
            eng._clear(fresh.dev.pop(name), key, at, items, "exemption_changed")
    old_term = old.term if old is not None else None
    if new.term == old_term:
        fresh.term = st.term
        return
    fresh.term = 0
    if TERM_KIND in fresh.dev and (new.term is None or old_term is None
                                   or new.term[1] != old_term[1]):
        eng._clear(fresh.dev.pop(TERM_KIND), key, at, items, "positioning_renewed")
    elif TERM_KIND in fresh.dev:
        fresh.term = 1


def old_until(old: PersonSpec | None, leave_id: str) -> int:
    if old is not None:
        for lv in old.leaves:
            if lv.leave_id == leave_id:
                return lv.until
    return -2


def upsert_order(eng: Engine, order: Order) -> list[AlertRecord]:
    """Add or replace one order; rules that disappear clear their open alerts."""
    out: list[AlertRecord] = []
    eng._materialise_all()
    old = eng._specs.get(order.person_id)
    new = eng._install(order)
    eng._watchers_dirty = True  # rebuilt lazily: reloads come in bursts
    for table in (eng._lanes, eng._late):
        lane = table.get(order.person_id)
        if lane is not None:
            eng._rebase(lane, old, new, "rule_removed", out)
    start_owed(eng, order.person_id)
    return out


def remove_order(eng: Engine, person_id: str, reason: str) -> list[AlertRecord]:
    """Remove a person's order: every open alert of theirs clears with ``reason``."""
    out: list[AlertRecord] = []
    eng._materialise_all()
    old = eng._specs.pop(person_id, None)
    order = eng._orders.pop(person_id, None)
    if order is not None:
        for d in order.devices:
            if eng._dev.get(d) == person_id:
                del eng._dev[d]
    for table in (eng._lanes, eng._late):
        lane = table.pop(person_id, None)
        if lane is not None:
            eng._rebase(lane, old, None, reason, out)
    eng._recent.pop(person_id, None)
    eng._csr_dirty = True
    eng._watchers_dirty = True  # rebuilt lazily: reloads come in bursts
    return out


def set_zones(eng: Engine, zones: ZoneIndex) -> list[AlertRecord]:
    """Replace the zone catalogue; rules whose zone vanished clear their alerts."""
    out: list[AlertRecord] = []
    eng._materialise_all()
    eng._zones = zones
    olds = dict(eng._specs)
    with gc_paused():
        eng._install_all(list(eng._orders.values()))
    for pid, old in olds.items():
        new = eng._specs[pid]
        for table in (eng._lanes, eng._late):
            lane = table.get(pid)
            if lane is not None:
                eng._rebase(lane, old, new, "zone_removed", out)
        start_owed(eng, pid)
    return out
