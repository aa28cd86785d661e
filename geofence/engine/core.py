"""The rules engine: telemetry in, alert lifecycle records out, in event time.

One :class:`Engine` holds every supervised person's state. :meth:`Engine.process`
takes a batch of canonical telemetry (any order, many persons), classifies all
fixes against all of their zone rules with **one** vectorised
:meth:`~geofence.zones.ZoneCatalogue.signed_distance_m` call, then runs each
person's small state machines (:mod:`geofence.episodes`) in event-time order
and returns the lifecycle records (``opened``/``updated``/``cleared``).

Event time and the lateness horizon (see docs/rules.md for the full story)
--------------------------------------------------------------------------
Each person (and each camera) is a *lane*. A message is evaluated as soon as it
arrives, in ``(ts, device, kind, event)`` order per lane. A message that arrives
out of order but inside the lateness horizon (``ts >= E - lateness`` where
``E`` is the lane's event time: the newest message of the lane or the last
watermark given to :meth:`Engine.advance`, whichever is later) makes the lane
*rewind*: its state is restored from a checkpoint older than the horizon, the
sorted tail of messages is evaluated again and only the difference from what
was already emitted is released. Corrections are ``updated`` records (an
episode that re-opens, or changes) and ``cleared`` records with
``reason = "retracted"`` and ``cleared_at = opened_at`` for an episode that the
complete data shows never happened. So the *final* state of every alert id is
a function of the sorted input only: shuffling input within the horizon gives
the same final alerts, byte for byte, as :func:`replay_lines` shows.

A message older than the horizon is *late* (a device's offline backfill). It
is evaluated in the person's *late lane*, a second set of state machines fed
only late data; its alerts carry ``late: true``. A late episode that overlaps
an episode already reported by the live lane (same rule and kind, opened while
the live one was open) is suppressed, so backfill never re-opens or doubles a
reported episode. Late data never clears live episodes and never feeds
signal_loss or no_contact.

Everything is event time: the records carry event times only, and the same
input gives the same records and ids.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

import numpy as np

from geofence.bulk import PendingLog, QuietLanes
from geofence.engine import clock
from geofence.engine import lanes as lanes_
from geofence.engine import machines as machines_
from geofence.engine import orders as orders_
from geofence.engine import publish as publish_
from geofence.engine import quiet as quiet_
from geofence.engine import snapshot as snapshot_
from geofence.engine import steady as steady_
from geofence.engine.classify import NOTHING, RuleTable, classify_fixes, classify_video
from geofence.engine.config import (
    _INF,
    EngineConfig,
    Key,
    ProcessResult,
)
from geofence.engine.state import (
    Entry,
    Lane,
    LogItem,
)
from geofence.gc_pause import gc_paused
from geofence.model import (
    Alert,
    AlertRecord,
    CheckIn,
    DeviceEvent,
    Fix,
    Order,
    Telemetry,
    VideoHit,
)
from geofence.rules import (
    FACILITY_VIDEO_EVENTS,
    PersonSpec,
    ZoneIndex,
)


class Engine:
    """Evaluate supervision orders over telemetry, in event time.

    Parameters
    ----------
    zones : ZoneCatalogue
        The zone catalogue (anything with ``index_of``, ``__contains__`` and
        a vectorised ``signed_distance_m``).
    orders : sequence of Order
        Parsed orders (:func:`geofence.model.parse_orders`).
    config : EngineConfig
        Settings.

    Examples
    --------
    >>> from geofence.zones import ZoneCatalogue
    >>> from geofence.model import parse_orders, Fix
    >>> zones = ZoneCatalogue.from_geojson({"type": "FeatureCollection", "features": [
    ...     {"type": "Feature", "id": "school", "properties": {"radius_m": 100},
    ...      "geometry": {"type": "Point", "coordinates": [118.79, 32.05]}}]})
    >>> orders = parse_orders('[{"person_id": "P-1", "devices": ["WB-1"], '
    ...     '"jurisdiction": "320102", "rules": [{"id": "r1", "type": "exclusion", "zone": "school"}]}]')
    >>> eng = Engine(zones, orders)
    >>> fixes = [Fix(device_id="WB-1", ts=t, lat=32.05, lon=118.79) for t in (0, 40_000)]
    >>> [(r.event, r.alert.kind, r.alert.opened_at) for r in eng.process(fixes).records]
    [('opened', 'exclusion_entered', '1970-01-01T00:00:40Z')]
    """

    def __init__(
        self, zones: ZoneIndex, orders: Sequence[Order], config: EngineConfig = EngineConfig()
    ) -> None:
        self._cfg = config
        self._zones = zones
        self._orders: dict[str, Order] = {}
        self._specs: dict[str, PersonSpec] = {}
        self._dev: dict[str, str] = {}
        self._watchers: dict[str, list[str]] = {}
        self._lanes: dict[str, Lane] = {}
        self._late: dict[str, Lane] = {}
        self._recent: dict[str, list[tuple[int, float, float, float]]] = {}
        self._heap: list[tuple[int, str]] = []
        self._wm = -1
        self._far_ts = -1
        self._far_pid: str | None = None
        self._max_ts = -1
        self._csr_dirty = True  # the numbering in _q is stale (orders changed)
        self._rules = RuleTable.empty()
        self._route: dict[str, tuple[str, int, int, int]] = {}
        self._q = QuietLanes(0)  # the numbering and the quiet rows (geofence.bulk)
        self._pl = PendingLog()
        self._quick = config.paths == "fast"  # the per-lane shortcut (_fast)
        self._bulk = config.bulk and self._quick
        self._fold_every = 50_000  # pending rows between folds (amortises the O(log) pass)
        self._watchers_dirty = True
        self._slow: set[str] = set()  # no_contact or checkin rules (see _rebuild_watchers)
        with gc_paused():  # loading work: long-lived objects, no cycles
            self._install_all(list(orders))
            for pid in self._specs:  # check-ins owed from valid_from, message or not
                self._start_owed(pid)
            self._rebuild_watchers()
            self._rebuild_csr()  # here rather than in the first process()

    @property
    def event_time(self) -> int:
        """The engine's event time: the later of the arrival clock (newest
        ``ts`` seen, see ``EngineConfig.clock_jump_ms``) and the last
        watermark given to :meth:`advance`; -1 before any input."""
        return self._wm

    def persons_of(self, messages: Iterable[Telemetry]) -> list[str]:
        """The persons a batch concerns (sorted): the wearers of its devices
        under a current order and the persons its video hits name."""
        out: set[str] = set()
        for m in messages:
            if type(m) is VideoHit:
                if m.person_id is not None:
                    out.add(m.person_id)
            else:
                pid = self._dev.get(m.device_id)  # type: ignore[union-attr]
                if pid is not None:
                    out.add(pid)
        return sorted(out)

    def person_of_device(self, device_id: str) -> str | None:
        """The person whose order names ``device_id`` (or ``None``)."""
        return self._dev.get(device_id)

    def process(self, messages: Sequence[Telemetry]) -> ProcessResult:
        """Evaluate a batch of telemetry (any order, any persons).

        Returns the lifecycle records released by this batch, the messages of
        devices no order names (to dead-letter as ``unknown_device``), and
        counts of duplicates and late messages.
        """
        res = ProcessResult()
        cfg = self._cfg
        if self._csr_dirty:
            self._rebuild_csr()
        if self._watchers_dirty:
            self._rebuild_watchers()
        route = self._route
        specs = self._specs
        per_lane: dict[str, tuple[list[Entry], list[int]]] = {}
        g_p: list[int] = []
        g_lon: list[float] = []
        g_lat: list[float] = []
        g_acc: list[float] = []
        vids: list[tuple[Entry, PersonSpec]] = []
        inactive: dict[str, int] = {}
        clk = self._wm
        far_ts, far_pid = self._far_ts, self._far_pid
        jump = cfg.clock_jump_ms
        max_ts = self._max_ts
        pre = self._bulk_pass(messages) if self._bulk and messages else None
        if pre is None:
            todo: Iterable[int] = range(len(messages))
            pre_clk: list[int] | None = None
            pre_gi: list[int] = []
        else:
            todo, pre_clk, pre_gi, res.bulk, cls, clk_end = pre
        for k, j in enumerate(todo):
            m = messages[j]
            tm = type(m)
            ts = m.ts
            if tm is Fix:
                r = route.get(m.device_id)  # type: ignore[union-attr]
                if r is None or not r[2] <= ts < r[3]:
                    self._reject_unknown(m, r, res, inactive)
                    continue
                pid, ci = r[0], r[1]
                if m.valid:  # type: ignore[union-attr]
                    if pre_clk is None:
                        gi = len(g_p)
                        g_p.append(ci)
                        g_lon.append(m.lon)  # type: ignore[union-attr]
                        g_lat.append(m.lat)  # type: ignore[union-attr]
                        g_acc.append(m.accuracy_m)  # type: ignore[union-attr]
                    else:
                        gi = pre_gi[k]
                    e = Entry((ts, 1, m.device_id, 0, ""), m, None, None, None,  # type: ignore[union-attr]
                              gi)
                else:
                    e = Entry((ts, 1, m.device_id, 0, ""), m)  # type: ignore[union-attr]
            elif tm is DeviceEvent:
                r = route.get(m.device_id)  # type: ignore[union-attr]
                if r is None or not r[2] <= ts < r[3]:
                    self._reject_unknown(m, r, res, inactive)
                    continue
                pid = r[0]
                e = Entry((m.ts, 1, m.device_id, 1, m.event), m)  # type: ignore[union-attr]
            elif tm is CheckIn:
                # routed by its phone like a device event: a sign of life, and
                # the checkin rule's observation (classified in the lane's feed)
                r = route.get(m.device_id)  # type: ignore[union-attr]
                if r is None or not r[2] <= ts < r[3]:
                    self._reject_unknown(m, r, res, inactive)
                    continue
                pid = r[0]
                e = Entry((ts, 1, m.device_id, 4, ""), m)  # type: ignore[union-attr]
            else:
                hit: VideoHit = m  # type: ignore[assignment]
                if hit.event in FACILITY_VIDEO_EVENTS:
                    pid = "camera:" + hit.camera_id
                elif hit.person_id is None:
                    res.ignored += 1
                    continue
                elif hit.person_id not in specs:
                    res.unknown.append(m)
                    continue
                else:
                    pid = hit.person_id
                e = Entry((hit.ts, 1, hit.camera_id, 2, hit.event), m)
                if pid in specs and specs[pid].exclusion_rules:
                    vids.append((e, specs[pid]))
            if pre_clk is not None:
                clk = pre_clk[k]
            elif ts > clk:  # (an older ts leaves the clock as it is)
                clk, far_ts, far_pid = clock.step(clk, far_ts, far_pid, ts, pid, jump)
            if ts > max_ts:
                max_ts = ts
            v = per_lane.get(pid)
            if v is None:
                per_lane[pid] = ([e], [clk])
            else:
                v[0].append(e)
                v[1].append(clk)
        if pre_clk is not None:
            clk = clk_end
        self._far_ts, self._far_pid = far_ts, far_pid
        if max_ts > self._max_ts:
            self._max_ts = max_ts
        wm0 = self._wm

        if pre_clk is None:  # else classified by _bulk_pass
            cls = NOTHING
            if g_p:
                cls = classify_fixes(
                    self._zones, self._rules, np.array(g_p, np.int64), np.array(g_lon, np.float64),
                    np.array(g_lat, np.float64), np.array(g_acc, np.float64))[0]
        if vids:
            classify_video(self._zones, cfg.camera_accuracy_m, vids)

        # split live / late per lane, remember live fixes of watched persons
        lateness = cfg.lateness_ms
        lanes = self._lanes
        live: list[tuple[Lane, list[Entry]]] = []
        late: list[tuple[Lane, list[Entry]]] = []
        watchers = self._watchers
        slow = self._slow
        late_lanes = self._late
        probes: dict[str, list[Entry]] = {}
        for pid, (ents, clks) in per_lane.items():
            lane = lanes.get(pid)
            if lane is None:
                lane = self._lane(pid)
            fr = lane.frontier if lane.frontier > wm0 else wm0
            horizon = (fr if fr > clks[-1] else clks[-1]) - lateness
            if len(ents) == 1:
                e0 = ents[0]
                if e0.key[0] < horizon:
                    res.late += 1
                    late.append((self._lane(pid, late=True), ents))
                    ents = []
                elif (type(e0.msg) is Fix and e0.key > lane.last_key
                      and pid not in slow and pid not in late_lanes and self._quick
                      and self._fast(lane, specs[pid], ents, cls)):
                    # the common case: one in-order fix that changes nothing but
                    # liveness (a quiet lane) or opens and clears nothing (a
                    # steady one: geofence.engine.steady), applied in place
                    if lane.pend is None:
                        if e0.key[0] >= lane.ckpt_key[0] + 4 * lateness:
                            self._roll(lane)
                    elif lane.pend_key[0] < horizon:
                        self._roll(lane)
                    if lane.due < lane.heap_at:
                        lane.heap_at = lane.due
                        heapq.heappush(self._heap, (lane.due, pid))
                    if pre_clk is None and self._bulk:  # after a batch that bailed out
                        self._enter_quiet(lane, specs[pid])
                else:
                    live.append((lane, ents))
            else:
                # late = older than the horizon when it arrived: the clock of its
                # arrival, not the batch's end, so batching does not matter
                flags = [e.key[0] < (fr if fr > c else c) - lateness for e, c in zip(ents, clks, strict=True)]
                if any(flags):
                    old = [e for e, f in zip(ents, flags, strict=True) if f]
                    res.late += len(old)
                    ents = [e for e, f in zip(ents, flags, strict=True) if not f]
                    late.append((self._lane(pid, late=True), old))
                if ents:
                    live.append((lane, ents))
            if watchers and ents:
                ws = watchers.get(pid)
                if ws:
                    self._watched_fixes(lane, pid, ents, ws, probes)
        if probes:
            live_map = {id(lane): ents for lane, ents in live}
            for a, ents in probes.items():
                if a not in specs:
                    continue
                lane = self._lane(a)
                horizon = max(lane.frontier, wm0) - lateness
                ents = [e for e in ents if e.key[0] >= horizon]
                if not ents:
                    continue
                got = live_map.get(id(lane))
                if got is None:
                    live.append((lane, ents))
                    live_map[id(lane)] = ents
                else:
                    got.extend(ents)

        # late data first: an episode the backfill leaves open or streaking is
        # handed to the live lane before that lane sees its newer data
        for lane, ents in late:
            # a late message the backfill drops as a duplicate or as too late is
            # counted as that, not also as late: the counts sum to the input
            dropped = res.duplicates + res.too_late
            self._feed(lane, ents, res, cls)
            res.late -= res.duplicates + res.too_late - dropped
            self._late_liveness(lane.key, ents, res.records)
        for lane, ents in live:
            ll = late_lanes.get(lane.key) if late_lanes else None
            if ll is not None and ll.frontier >= 0:
                # live data up to the backfill's end first, then the hand-over
                lk = ll.last_key
                before = [e for e in ents if e.key <= lk]
                if before:
                    ents = [e for e in ents if e.key > lk]
                    self._feed(lane, before, res, cls)
                if ents:
                    self._handover(ll, lane, ents)
            if ents:
                self._feed(lane, ents, res, cls)
        # the arrival clock becomes the engine's event time once the batch is in
        # (lanes roll their checkpoints against the time before it, as before)
        if clk > self._wm:
            self._wm = clk
        for pid, t in inactive.items():
            # a message after the order's end is rejected but still moves that
            # person's event time: the order-expiry timer fires as it would have
            self._materialise((self._q.row_of[pid],))
            lane = lanes.get(pid)
            if lane is not None:
                self._tick(lane, t, res.records)
        return res

    @staticmethod
    def _reject_unknown(m: Telemetry, r: tuple[str, int, int, int] | None, res: ProcessResult,
                        inactive: dict[str, int]) -> None:
        """A message of a device that no *active* order names: ``unknown_device``.

        Outside its order's ``valid_from..valid_until`` a device is unknown
        (contract); after the order's end the message still tells the person's
        lane that event time has passed ``valid_until``.
        """
        res.unknown.append(m)
        if r is not None and m.ts >= r[3]:
            pid = r[0]
            if m.ts > inactive.get(pid, -1):
                inactive[pid] = m.ts

    def advance(self, watermark_ms: int) -> list[AlertRecord]:
        """Advance event time to ``watermark_ms``: fire signal-loss, curfew-window,
        check-in deadline, order-expiry and camera-quiet timers that fall
        before it (also of persons not heard from yet: a check-in schedule
        starts with the order, see :func:`~geofence.engine.orders.start_owed`).

        Timers fired here are rewound like any other step if data inside the
        lateness horizon later shows they should not have fired.
        """
        out: list[AlertRecord] = []
        if watermark_ms > self._wm:
            self._wm = watermark_ms
        upto: Key = (watermark_ms, 1, "", 0, "")
        heap = self._heap
        touched: list[tuple[Lane, PersonSpec | None]] = []
        q = self._q
        if len(q.mode):
            self._bulk_advance(watermark_ms)
        row_of = q.row_of
        while heap and heap[0][0] <= watermark_ms:
            _, lk = heapq.heappop(heap)
            lane = self._lanes.get(lk)
            if lane is None:
                continue
            lane.heap_at = _INF
            ci = row_of.get(lk, -1)
            if ci >= 0 and q.mode[ci]:
                # a quiet lane whose timer moved on: nothing fires (as _fire
                # would find); re-arm at the timer the arrays hold
                if watermark_ms > lane.adv:
                    lane.adv = watermark_ms
                d = int(q.due[ci])
                lane.heap_at = d
                heapq.heappush(heap, (d, lk))
                continue
            spec = self._spec_of(lane)
            if spec is None and not lk.startswith("camera:"):
                continue
            self._fire(lane, spec, watermark_ms, upto, out)
            touched.append((lane, spec))
        # every deadline left is at or after the watermark: re-arm after the loop
        for lane, spec in touched:
            self._schedule(lane, spec)
        return out

    def _fire(self, lane: Lane, spec: PersonSpec | None, watermark_ms: int, upto: Key,
              out: list[AlertRecord]) -> None:
        items: list[LogItem] = []
        tk = self._catch_up(lane, lane.state, spec, upto, items)
        if watermark_ms > lane.adv:
            lane.adv = watermark_ms
        if tk is not None and tk > lane.last_key:
            lane.last_key = tk
        if items:
            self._publish(lane, items, out)
        self._roll(lane)

    def _tick(self, lane: Lane, t: int, out: list[AlertRecord]) -> None:
        """Fire one lane's timers up to ``t`` (as :meth:`advance` does for all)."""
        if lane.due > t:
            return
        spec = self._spec_of(lane)
        self._fire(lane, spec, t, (t, 1, "", 0, ""), out)
        self._schedule(lane, spec)

    def flush(self) -> list[AlertRecord]:
        """End of input: fire every timer up to the newest event time seen."""
        if self._max_ts < 0:
            return []
        return self.advance(self._max_ts)

    def open_alerts(self) -> list[Alert]:
        """Every alert currently open (as last emitted), ordered by alert id."""
        out = [a for table in (self._lanes, self._late) for lane in table.values()
               for a in lane.emitted.values() if a.status == "open"]
        out.sort(key=lambda a: a.alert_id)
        return out

    # lanes: geofence.engine.lanes
    _lane = lanes_.lane_for
    _spec_of = lanes_.spec_of
    _feed = lanes_.feed
    _rewind = lanes_.rewind
    _roll = lanes_.roll
    _prune = staticmethod(lanes_.prune)
    _schedule = lanes_.schedule
    _handover = lanes_.handover
    _late_liveness = lanes_.late_liveness
    _watched_fixes = lanes_.watched_fixes

    # machines: geofence.engine.machines
    _entity = machines_.entity_of
    _open = machines_.open_alert
    _clear = staticmethod(machines_.clear_alert)
    _cond_obs = machines_.cond_obs
    _catch_up = machines_.catch_up
    _next_deadline = machines_.next_deadline
    _start = machines_.start_lane
    _apply = machines_.apply_step
    _implausible = machines_.implausible
    _latest = machines_.latest_fix
    _contact = machines_.contact_step
    _face = machines_.face_match
    _camera_hit = machines_.camera_hit

    # quiet: geofence.engine.quiet
    _bulk_pass = quiet_.bulk_pass
    _new_lanes = quiet_.new_lanes
    _bulk_advance = quiet_.bulk_advance
    _enter_windows = quiet_.enter_windows
    _bail = quiet_.bail
    _bulk_apply = quiet_.bulk_apply
    _enter_quiet = quiet_.enter_quiet
    _materialise = quiet_.materialise
    _materialise_all = quiet_.materialise_all
    _fast = steady_.settle
    _fast_quiet = quiet_.fast_many

    # publish: geofence.engine.publish
    _publish = publish_.publish
    _track = publish_.track
    _suppress = publish_.suppress
    _publish_diff = publish_.publish_diff

    # orders: geofence.engine.orders
    _install_all = orders_.install_all
    _install = orders_.install
    _rebuild_watchers = orders_.rebuild_watchers
    _rebuild_csr = orders_.rebuild_csr
    _rebase = orders_.rebase
    _start_owed = orders_.start_owed
    upsert_order = orders_.upsert_order
    remove_order = orders_.remove_order
    set_zones = orders_.set_zones

    # snapshot: geofence.engine.snapshot
    snapshot = snapshot_.snapshot
    _quiet_snapshot = snapshot_.quiet_snapshot
    restore = snapshot_.restore
    _restore_quiet = snapshot_.restore_quiet
