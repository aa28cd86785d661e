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

import gc
import heapq
import math
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice, repeat
from operator import attrgetter
from typing import Any, BinaryIO, Literal, Union

import msgspec
import numpy as np

from geofence.bulk import EXPORT_DTYPES, PendingLog, QuietLanes
from geofence.episodes import Cond, alert_id, observe
from geofence.errors import ValidationError
from geofence.model import (
    Alert,
    AlertRecord,
    DeviceEvent,
    Fix,
    Order,
    Telemetry,
    TelemetryDecoder,
    VideoHit,
    _gc_paused,
    format_ts,
    parse_ts,
)
from geofence.rules import (
    BUILTIN_DEVICE_RULES,
    CURFEW,
    DEFAULT_SEVERITY,
    EXCLUSION,
    FACILITY_VIDEO_EVENTS,
    SPOOF_KIND,
    SPOOF_RULE,
    STICKY_DEVICE_RULES,
    PersonSpec,
    ZoneIndex,
    compile_order,
    compile_orders,
    contact_groups,
)

__all__ = [
    "Engine",
    "EngineConfig",
    "ProcessResult",
    "ReplaySummary",
    "batch_watermark",
    "fold_records",
    "message_key",
    "partition_keys",
    "person_partition_keys",
    "replay_lines",
    "tune_gc",
]

Key = tuple[int, int, str, int, str]
"""Sort key of a step: (ts, order, source, kind, event).

``order`` 0 = window boundaries and order expiry (before messages of the same
ms), 1 = messages, 2 = silence timers (signal loss, camera quiet: after).
"""
MIN_KEY: Key = (-1, 0, "", 0, "")
_INF = 1 << 62
_FAR_FUTURE_MS = 253402300799999


@dataclass(frozen=True)
class EngineConfig:
    """Engine settings (defaults follow the contract).

    Attributes
    ----------
    lateness_ms : int
        Lateness horizon: out-of-order data younger than this is merged in
        order; older data is *late* (evaluated in the late lane, ``late: true``).
    default_dwell_s : float
        Minimum span from the first to the confirming certain observation
        when a rule gives no ``dwell_s``.
    confirm_fixes : int
        Consecutive certain violating observations needed to open.
    contact_max_age_ms : int
        no_contact and device_separation use fixes at most this old.
    separation_m : float
        A face match this far (certainly) from the wristband's fix raises
        device_separation.
    face_match_min_confidence : float
        Face matches below this confidence (or without one) raise nothing.
    streak_gap_ms : int
        Violating observations further apart than this do not confirm each other.
    camera_accuracy_m : float
        Position uncertainty of a camera (video hits are "certainly inside" a
        zone when deeper than this).
    camera_quiet_ms : int
        A facility video alert clears after this long without a new hit of
        the same event from the same camera.
    battery_clear_pct : float
        battery_low clears on ``charging`` or a fix reporting at least this.
    clock_jump_ms : int
        The engine's arrival clock (the newest ``ts`` seen, message by message
        in arrival order; it decides what is *late*) follows a message at
        most this far ahead of it on its own; a bigger jump needs a message of
        a second person to confirm it, so that one device with a clock far
        ahead cannot make everybody's data late.
    bulk : bool
        Apply fixes of quiet lanes in bulk (:mod:`geofence.bulk`). The
        records are the same either way; ``False`` exists to test that.
    paths : {"fast", "reference"}
        Which evaluation paths run. ``"fast"`` (the default) uses every fast
        path: the columnar bulk path for quiet lanes (subject to ``bulk``)
        and the per-lane shortcuts for fixes that change nothing but
        liveness. ``"reference"`` sends every message through the state
        machines one by one: slower, and the yardstick the fast path is
        tested against; the records are the same either way.
    spoof_speed_mps : float
        A valid fix whose implied speed from the person's last accepted fix
        (distance less both accuracies, over the time between them, at least
        1 s) exceeds this is *implausible*: it counts only as evidence of a
        violation, never of its absence (it cannot clear an episode or break
        a streak), and implausible fixes that alternate with accepted ones
        raise ``spoofing_suspected`` (docs/rules.md). 100 m/s is beyond any
        person, high-speed rail included.
    spoof_confirm : int
        Implausible fixes of one second stream needed to raise
        ``spoofing_suspected``: each after an accepted fix, each within
        ``streak_gap_ms`` of the one before and plausible from it. A lone
        outlier, or outliers scattered in time and place, raise nothing.
    spoof_reanchor_ms : int
        Implausible fixes that agree with each other, three or more in a row
        with no accepted fix between them and spanning at least this long,
        mean the person really is elsewhere (a flight, a long dead zone): from
        the one that completes the span they are accepted again and become
        the reference.
    """

    lateness_ms: int = 120_000
    default_dwell_s: float = 30.0
    confirm_fixes: int = 2
    contact_max_age_ms: int = 120_000
    separation_m: float = 500.0
    face_match_min_confidence: float = 0.8
    streak_gap_ms: int = 600_000
    camera_accuracy_m: float = 0.0
    camera_quiet_ms: int = 300_000
    battery_clear_pct: float = 30.0
    clock_jump_ms: int = 600_000
    bulk: bool = True
    paths: Literal["fast", "reference"] = "fast"
    spoof_speed_mps: float = 100.0
    spoof_confirm: int = 3
    spoof_reanchor_ms: int = 600_000

    def __post_init__(self) -> None:
        if self.paths not in ("fast", "reference"):
            raise ValidationError(
                "invalid_value", f"engine paths {self.paths!r} is not 'fast' or 'reference'")


@dataclass
class ProcessResult:
    """What :meth:`Engine.process` returns."""

    records: list[AlertRecord] = field(default_factory=list)
    unknown: list[Telemetry] = field(default_factory=list)
    duplicates: int = 0
    late: int = 0
    too_late: int = 0
    ignored: int = 0
    bulk: int = 0  # fixes of quiet lanes applied in bulk (geofence.bulk)


class Entry(msgspec.Struct, array_like=True, gc=False):
    """One step of a lane: a message (with its zone classifications) or a probe."""

    key: Key
    msg: Union[Fix, DeviceEvent, VideoHit, None] = None
    other: Union[str, None] = None
    c1: Union[tuple[int, ...], None] = None
    c2: Union[tuple[int, ...], None] = None
    gi: int = -1  # position in the batch's geometry arrays (meaningful inside process())


class LaneState(msgspec.Struct, gc=False, array_like=True):
    """Everything the state machines of one lane know (copied for checkpoints)."""

    conds: tuple[Cond, ...]
    appr: tuple[Cond, ...]
    cconds: tuple[Cond, ...]
    last_msg: int = -1
    lf_ts: int = -1
    lf_lon: float = 0.0
    lf_lat: float = 0.0
    lf_acc: float = 0.0
    sig: Union[Alert, None] = None
    dev: dict[str, Alert] = msgspec.field(default_factory=dict)
    cam_last: dict[str, int] = msgspec.field(default_factory=dict)
    expired: bool = False
    started: bool = False
    # implausible-fix tracking (None: nothing pending, the reference is lf_*): (ts
    # of the last implausible fix, 1 if a fix was accepted since, run length, run
    # start, its lon, lat, acc, alternations so far, and the reference: the last
    # accepted fix's ts, lon, lat, acc)
    sp: Union[tuple[int, int, int, int, float, float, float, int, int, float, float, float],
              None] = None

    def copy(self) -> LaneState:
        """Independent copy (alerts are immutable in practice)."""
        cp = Cond.__copy__  # type: ignore[attr-defined]
        return LaneState(
            tuple(map(cp, self.conds)), tuple(map(cp, self.appr)),
            tuple(map(cp, self.cconds)) if self.cconds else (), self.last_msg, self.lf_ts, self.lf_lon,
            self.lf_lat, self.lf_acc, self.sig, dict(self.dev), dict(self.cam_last),
            self.expired, self.started, self.sp,
        )

    def open_alerts(self) -> list[Alert]:
        """Alerts this state holds open."""
        out = [c.alert for c in (*self.conds, *self.appr, *self.cconds) if c.alert is not None]
        if self.sig is not None:
            out.append(self.sig)
        out.extend(self.dev.values())
        return out


class LogItem(msgspec.Struct, array_like=True, gc=False):
    """A record produced by a step, tagged with the step's key."""

    key: Key
    rec: AlertRecord


class Hist(msgspec.Struct, array_like=True, gc=False):
    """A live episode as reported (for suppressing doubles from late data)."""

    alert_id: str
    kind: str
    rule_id: str
    opened: int
    cleared: int = -1


class Lane(msgspec.Struct, gc=False, array_like=True):
    """One person's (or camera's) event-time evaluation with its rewind checkpoint."""

    key: str
    late: bool
    state: LaneState
    ckpt: LaneState
    ckpt_key: Key = MIN_KEY
    pend: Union[LaneState, None] = None
    pend_key: Key = MIN_KEY
    tail: list[Entry] = msgspec.field(default_factory=list)
    log: list[LogItem] = msgspec.field(default_factory=list)
    emitted: dict[str, Alert] = msgspec.field(default_factory=dict)
    frontier: int = -1
    last_key: Key = MIN_KEY
    adv: int = -1
    heap_at: int = _INF
    hist: Union[list[Hist], None] = None
    suppressed: Union[list[str], None] = None
    # derived flags for the fast path (refreshed by Engine._schedule)
    quiet: bool = False
    cf_entered: bool = False
    due: int = _INF
    static_due: int = _INF


SNAPSHOT_VERSION = 3
"""Format written by :meth:`Engine.snapshot`; :meth:`Engine.restore` reads 2 and 3."""


class _QuietSnapshot(msgspec.Struct):
    """The lanes in quiet mode, as arrays (format 3).

    ``persons`` and ``devices`` are the writing engine's numbering of persons
    and devices (a restoring engine with the same orders has the same, and
    otherwise maps them by name). ``rows`` (int64 bytes) are the persons in
    quiet mode, ``columns`` their :class:`~geofence.bulk.QuietLanes` arrays,
    row for row, as raw bytes; ``log`` the pending-log rows and their fixes
    (:meth:`~geofence.bulk.PendingLog.export`).
    """

    persons: list[str]
    rows: bytes
    devices: list[str]
    columns: dict[str, bytes]
    log: dict[str, bytes]
    since_fold: int = 0


class _Snapshot(msgspec.Struct):
    version: int
    wm: int
    max_ts: int
    lanes: list[Lane]
    late_lanes: list[Lane]
    recent: dict[str, list[tuple[int, float, float, float]]]
    far_ts: int = -1
    far_pid: Union[str, None] = None
    quiet: Union[_QuietSnapshot, None] = None  # format 3


def _fresh_state(spec: PersonSpec | None) -> LaneState:
    if spec is None:
        return LaneState((), (), ())
    return LaneState(
        tuple([Cond() for _ in spec.zone_rules]),
        tuple([Cond() for _ in spec.zone_rules]),
        tuple([Cond() for _ in spec.contact_rules]),
    )


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


def tune_gc(gen0_threshold: int = 50_000) -> None:
    """Garbage-collector settings for a process that hosts an :class:`Engine`.

    The engine allocates many small, short-lived containers per batch and
    keeps a large, long-lived state; CPython's default generation-0 threshold
    (700) then runs collections so often that they cost as much as the
    evaluation itself (measured in bench/bench_engine.py). This freezes what
    is alive now (zones, orders: they live for the whole run) and raises the
    generation-0 threshold. Call it once after loading, in a process you own
    (``wardstream replay`` does; the stream worker should); a library should
    not call it on its own.
    """
    gc.collect()
    gc.freeze()
    _, g1, g2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, g1, g2)


def batch_watermark(messages: Sequence[Telemetry], quantile: float = 0.99) -> int:
    """A robust event-time watermark for a batch: a high quantile of its ``ts``.

    A quantile rather than the maximum, so that one device with a clock far
    ahead cannot push every other message past the lateness horizon.
    Returns -1 for an empty batch.
    """
    if not messages:
        return -1
    ts = np.array(list(map(_TS, messages)), np.int64)
    if len(ts) < 20:
        return int(ts.max())
    return int(np.quantile(ts, quantile, method="lower"))


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
        self._csr_dirty = True
        self._csr_of: dict[str, int] = {}
        self._csr_start = np.zeros(0, np.int64)
        self._csr_count = np.zeros(0, np.int64)
        self._csr_zone = np.zeros(0, np.int64)
        self._csr_buf = np.zeros(0, np.float64)
        self._csr_kind = np.zeros(0, np.int8)
        self._route: dict[str, tuple[str, int, int, int]] = {}
        self._g_flags: list[int] = []
        self._g_l1: list[int] = []
        self._g_l2: list[int] = []
        self._g_ends: list[int] = []
        self._csr_names: list[str] = []
        self._dix: dict[str, int] = {}
        self._dix_names: list[str] = []
        self._dix_ci = np.zeros(0, np.int64)
        self._q_vf = self._q_vu = self._q_cfk = np.zeros(0, np.int64)
        self._q_ok: list[bool] = []
        self._q_oka = np.zeros(0, np.bool_)
        self._q_after = np.zeros(0, np.int64)
        self._q_ws1 = np.zeros(0, np.bool_)
        self._known = np.zeros(0, np.bool_)
        self._q = QuietLanes(0)
        self._pl = PendingLog()
        self._quick = config.paths == "fast"  # the per-lane shortcuts (_fast, _fast1)
        self._bulk = config.bulk and self._quick
        self._fold_every = 50_000  # pending rows between folds (amortises the O(log) pass)
        self._pre_clk_end = -1
        with _gc_paused():  # loading work: long-lived objects, no cycles
            self._install_all(list(orders))
            self._rebuild_watchers()
            self._rebuild_csr()  # here rather than in the first process()

    # ------------------------------------------------------------------ orders

    def _install_all(self, orders: list[Order]) -> None:
        """Install many orders, compiled in one batch (repeated rules compiled once, shared)."""
        specs = compile_orders(orders, self._zones, self._cfg.default_dwell_s)
        for o, spec in zip(orders, specs, strict=True):
            self._install(o, spec)

    def _install(self, order: Order, spec: PersonSpec | None = None) -> PersonSpec:
        old = self._orders.get(order.person_id)
        if old is not None:
            for d in old.devices:
                if self._dev.get(d) == order.person_id:
                    del self._dev[d]
        if spec is None:
            spec = compile_order(order, self._zones, self._cfg.default_dwell_s)
        self._orders[order.person_id] = order
        self._specs[order.person_id] = spec
        for d in order.devices:
            self._dev[d] = order.person_id
        self._csr_dirty = True
        return spec

    def _rebuild_watchers(self) -> None:
        # lanes that never take the in-place fast path: cameras (no spec) and
        # persons with no_contact rules (each fix is a contact observation)
        self._watchers_dirty = False
        self._slow = {p for p, s in self._specs.items() if s.contact_rules}
        w: dict[str, list[str]] = {}
        for pid, spec in self._specs.items():
            for cr in spec.contact_rules:
                lst = w.setdefault(cr.other, [])
                if pid not in lst:
                    lst.append(pid)
        self._watchers = w

    def _rebuild_csr(self) -> None:
        pids = list(self._specs)
        self._csr_of = {p: i for i, p in enumerate(pids)}
        specs = [self._specs[p] for p in pids]
        counts = np.fromiter((len(s.zone_idx) for s in specs), np.int64, len(specs))
        starts = np.zeros(len(specs), np.int64)
        if len(specs):
            starts[1:] = np.cumsum(counts)[:-1]
        self._csr_start, self._csr_count = starts, counts

        def cat(arrs: list[Any], dtype: Any) -> Any:
            return np.concatenate(arrs).astype(dtype) if arrs else np.zeros(0, dtype)

        self._csr_zone = cat([s.zone_idx for s in specs], np.int64)
        self._csr_buf = cat([s.buffer_m for s in specs], np.float64)
        self._csr_kind = cat([s.kinds for s in specs], np.int8)
        self._route = {d: (p, self._csr_of[p], self._specs[p].valid_from, self._specs[p].valid_until)
                       for d, p in self._dev.items()}
        # the columnar fast path (geofence.bulk): every lane is materialised
        # before the person numbering changes, so the arrays start empty
        self._csr_names = pids
        self._dix = {d: k for k, d in enumerate(self._dev)}
        self._dix_names = list(self._dev)
        self._dix_ci = np.fromiter((self._csr_of[p] for p in self._dev.values()), np.int64,
                                   len(self._dev))
        self._q_vf = np.fromiter((s.valid_from for s in specs), np.int64, len(specs))
        self._q_vu = np.fromiter((s.valid_until for s in specs), np.int64, len(specs))
        self._q_cfk = np.fromiter((s.curfew_idx[0] if len(s.curfew_idx) == 1 else -1 for s in specs),
                                  np.int64, len(specs))
        self._q_ok = [not s.contact_rules and len(s.curfew_idx) <= 1 for s in specs]
        self._q_oka = np.array(self._q_ok, np.bool_)
        self._q_after = np.fromiter(
            (-1 if s.signal_after_ms is None else s.signal_after_ms for s in specs), np.int64,
            len(specs))
        # a curfew streak begun at the window's start cannot open at once
        self._q_ws1 = np.fromiter(
            (len(s.curfew_idx) == 1 and (self._cfg.confirm_fixes >= 2
                                         or s.zone_rules[s.curfew_idx[0]].dwell_ms > 0)
             for s in specs), np.bool_, len(specs))
        self._q = QuietLanes(len(specs))
        self._pl = PendingLog()
        self._known = np.zeros(len(specs), np.bool_)  # has a live lane
        for key in self._lanes:
            ci = self._csr_of.get(key, -1)
            if ci >= 0:
                self._known[ci] = True
        self._csr_dirty = False

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

    # ------------------------------------------------------------------ lanes

    def _lane(self, key: str, late: bool = False) -> Lane:
        table = self._late if late else self._lanes
        lane = table.get(key)
        if lane is None:
            spec = self._specs.get(key)
            st = _fresh_state(spec)
            lane = Lane(key=key, late=late, state=st, ckpt=st.copy())
            table[key] = lane
            if not late and not self._csr_dirty:
                ci = self._csr_of.get(key, -1)
                if ci >= 0:
                    self._known[ci] = True
        return lane

    def _spec_of(self, lane: Lane) -> PersonSpec | None:
        return None if lane.key.startswith("camera:") else self._specs.get(lane.key)

    # ------------------------------------------------------------------ batch

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
            todo, pre_clk, pre_gi, res.bulk = pre
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
            elif ts > clk:
                if clk < 0 or ts <= clk + jump:
                    clk = ts
                    if far_pid is not None and far_ts <= clk:
                        far_pid = None
                elif far_pid is None:
                    far_ts, far_pid = ts, pid
                elif far_pid != pid:  # a second person confirms the jump
                    clk = ts if ts < far_ts else far_ts
                    far_pid = None
            if ts > max_ts:
                max_ts = ts
            v = per_lane.get(pid)
            if v is None:
                per_lane[pid] = ([e], [clk])
            else:
                v[0].append(e)
                v[1].append(clk)
        if pre_clk is not None:
            clk = self._pre_clk_end
        self._far_ts, self._far_pid = far_ts, far_pid
        if max_ts > self._max_ts:
            self._max_ts = max_ts
        wm0 = self._wm

        if pre_clk is not None:
            pass  # classified by _bulk_pass
        elif g_p:
            self._classify(np.array(g_p, np.int64), np.array(g_lon, np.float64),
                           np.array(g_lat, np.float64), np.array(g_acc, np.float64))
        else:
            self._g_flags = []
        if vids:
            self._classify_video(vids)

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
                elif (lane.quiet and type(e0.msg) is Fix and e0.key > lane.last_key
                      and pid not in slow and pid not in late_lanes and self._quick
                      and self._fast1(lane, specs[pid], e0)):
                    # the common case: one quiet in-order fix, applied in place
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
            self._feed(lane, ents, res)
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
                    self._feed(lane, before, res)
                if ents:
                    self._handover(ll, lane, ents)
            if ents:
                self._feed(lane, ents, res)
        # the arrival clock becomes the engine's event time once the batch is in
        # (lanes roll their checkpoints against the time before it, as before)
        if clk > self._wm:
            self._wm = clk
        for pid, t in inactive.items():
            # a message after the order's end is rejected but still moves that
            # person's event time: the order-expiry timer fires as it would have
            self._materialise((self._csr_of[pid],))
            lane = lanes.get(pid)
            if lane is not None:
                self._tick(lane, t, res.records)
        self._g_flags = []
        self._g_l1 = []
        self._g_l2 = []
        self._g_ends = []
        return res

    def _bulk_pass(self, messages: Sequence[Telemetry]
                   ) -> tuple[list[int], list[int], list[int], int] | None:
        """The columnar part of :meth:`process`.

        Computes the arrival clock of every message and classifies every
        valid fix with array operations, applies the fixes of lanes in quiet
        mode (:mod:`geofence.bulk`) that certainly change nothing but
        liveness, and materialises the quiet lanes that have any other
        message in the batch. Returns the indices of the messages left for
        the per-message path and, in the same order, their clocks and geometry indices,
        and the number of fixes applied in bulk; or ``None`` when the batch needs the per-message path throughout
        (video hits, or a clock jump to arbitrate).
        """
        if self._far_pid is not None:
            self._bail(messages)
            return None
        n = len(messages)
        try:
            dix = np.array(list(map(self._dix.get, map(_DEV, messages), repeat(-1))), np.int64)
        except AttributeError:  # a video hit: no device id
            self._bail(messages)
            return None
        # list() then array: faster than fromiter for these (measured)
        ts = np.array(list(map(_TS, messages)), np.int64)
        if set(map(type, messages)) == {Fix}:
            isfix = np.ones(n, np.bool_)
        else:
            isfix = np.fromiter((type(m) is Fix for m in messages), np.bool_, n)
        ci = np.where(dix >= 0, self._dix_ci[np.maximum(dix, 0)] if len(self._dix_ci) else -1, -1)
        cis = np.maximum(ci, 0)
        acc_ok = (ci >= 0)
        if len(self._q_vf):
            acc_ok &= (self._q_vf[cis] <= ts) & (ts < self._q_vu[cis])
        # the arrival clock: a running maximum unless a jump needs arbitration
        clk0 = self._wm
        ta = ts[acc_ok]
        clk_all = np.full(n, clk0, np.int64)
        if len(ta):
            run = np.maximum.accumulate(np.concatenate(([clk0], ta)))
            prev = run[:-1]
            if bool(((ta > prev) & (prev >= 0) & (ta > prev + self._cfg.clock_jump_ms)).any()):
                self._bail(messages)
                return None
            clk_all[acc_ok] = run[1:]
            self._pre_clk_end = int(run[-1])
            mx = int(ta.max())
            if mx > self._max_ts:
                self._max_ts = mx
        else:
            self._pre_clk_end = clk0
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
            flags, c1, first = self._classify(ci[cidx], lon[valid], lat[valid], acc[valid])
        else:
            self._g_flags = []
            flags = np.zeros(0, np.int8)
            c1, first = np.zeros(0, np.int8), np.zeros(0, np.int64)
        # which accepted fixes are quiet steps of a lane in quiet mode
        q = self._q
        p = ci[fidx]
        t = ts[fidx]
        if len(p):
            self._new_lanes(p, t, ci, acc_ok & ~isfix, clk_all[fidx])
        due = q.due[p]
        # a curfew window that begins before the fix, with nothing else due and
        # the person not certainly outside at its start: entered in bulk
        aft = q.after[p]
        cfk = self._q_cfk[p]
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
        ws = (q.mode[p] & (t >= due) & (due == q.sdue[p]) & (cfk >= 0) & ~q.cf[p]
              & (q.ivs[p] == due) & (t < q.ive[p]) & (t < self._q_vu[p])
              & ((q.code[p] != 1) | (self._q_ws1[p] & (fcode == -1)))
              & ((aft < 0) | (t <= q.lastmsg[p] + aft)))
        ok = q.mode[p] & (t > q.last[p]) & ((t < due) | ws)
        hz = np.maximum(np.maximum(q.front[p], self._wm), clk_all[fidx]) - self._cfg.lateness_ms
        ok &= t >= hz
        f = np.zeros(len(fidx), np.int8)
        f[valid] = flags
        ok &= ((f & 1) == 0) & (((f & 2) == 0) | ~(q.cf[p] | ws))
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
            aftp = q.after[ps[1:]]
            dis |= same & (aftp >= 0) & (tss[1:] > tss[:-1] + aftp)
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
                sus = vs & (a_ts >= 0) & (spd > self._cfg.spoof_speed_mps * 0.999)
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
            self._materialise(np.unique(bad[q.mode[bad]]).tolist())
        slow = np.ones(n, np.bool_)
        if len(sel):
            if len(wsp):
                self._enter_windows(wsp)
            self._bulk_apply(fidx, sel, ps, tss, same, valid, lon, lat, acc, c1, first,
                             gi_all, dix, fx)  # type: ignore[arg-type]
            slow[fidx[sel]] = False
        rest = np.nonzero(slow)[0]
        return rest.tolist(), clk_all[rest].tolist(), gi_all[rest].tolist(), len(sel)

    def _new_lanes(self, p: Any, t: Any, ci: Any, nonfix: Any, clk: Any) -> None:
        """Start the lanes of persons seen for the first time, straight into quiet mode.

        Only for a person whose messages in the batch are all fixes, none
        late: the lane starts as the per-message path would start it at the
        first of them (curfew windows placed from that time), and the fixes
        then take the bulk path like any other. The lane is *virtual*: its
        values live in the arrays only, and its ``Lane`` object is built
        from them (and ``QuietLanes.t0``) when it is materialised.
        """
        new = ~self._known[p]
        if not new.any():
            return
        pn, tn = p[new], t[new]
        order = np.lexsort((tn, pn))
        pn, tn = pn[order], tn[order]
        head = np.concatenate(([True], pn[1:] != pn[:-1]))
        cand, t0 = pn[head], tn[head]
        lateness = self._cfg.lateness_ms
        too_old = p[new & (t < np.maximum(clk, self._wm) - lateness)]
        drop = np.concatenate((too_old, ci[nonfix]))
        late, watched = self._late, self._watchers
        if late or watched:
            csr_of = self._csr_of
            drop = np.concatenate((drop, np.array(
                [csr_of.get(k, -1) for k in (*late, *watched)], np.int64)))
        keep = self._q_oka[cand]
        if len(drop):
            keep &= ~np.isin(cand, drop)
        cand, t0 = cand[keep], t0[keep]
        if not len(cand):
            return
        q = self._q
        # what _start, _schedule and _enter_quiet would do for a fresh lane
        vu = self._q_vu[cand]
        due = np.where(vu < _FAR_FUTURE_MS, vu, _INF)
        cfk = self._q_cfk[cand]
        ent = np.zeros(len(cand), np.bool_)
        ivs = np.zeros(len(cand), np.int64)
        ive = np.zeros(len(cand), np.int64)
        h = np.nonzero(cfk >= 0)[0]
        if len(h):
            names, specs = self._csr_names, self._specs
            iv = [specs[names[c]].zone_rules[k].calendar.interval_at_or_after(tf)  # type: ignore[union-attr]
                  for c, k, tf in zip(cand[h].tolist(), cfk[h].tolist(), t0[h].tolist(), strict=True)]
            s0 = np.array([x[0] for x in iv], np.int64)
            e0 = np.array([x[1] for x in iv], np.int64)
            en = s0 <= t0[h]
            ent[h], ivs[h], ive[h] = en, s0, e0
            due[h] = np.minimum(due[h], np.where(en, e0, s0))
        self._known[cand] = True
        q.t0[cand] = t0
        q.mode[cand] = True
        for arr in (q.last, q.front, q.lastmsg, q.ck_lastmsg, q.lf_ts, q.ck_lf_ts, q.lv, q.tk):
            arr[cand] = -1
        for farr in (q.lf_lon, q.lf_lat, q.lf_acc, q.ck_lf_lon, q.ck_lf_lat, q.ck_lf_acc):
            farr[cand] = 0.0
        q.code[cand] = q.ck_code[cand] = 0
        q.due[cand] = q.sdue[cand] = due
        q.after[cand] = self._q_after[cand]
        q.cf[cand] = q.cf0[cand] = ent
        q.ivs[cand] = ivs
        q.ive[cand] = ive
        q.pst[cand] = q.ck_has[cand] = False

    def _bulk_advance(self, wm: int) -> None:
        """Timers of quiet lanes up to ``wm``: curfew windows that begin with the
        person not certainly outside are entered in bulk; every other lane
        with a timer due is materialised (and fires in :meth:`advance`)."""
        q = self._q
        c = np.nonzero(q.mode & (q.due <= wm))[0]
        if not len(c):
            return
        aft, due, cfk, vu = q.after[c], q.due[c], self._q_cfk[c], self._q_vu[c]
        ws = ((due == q.sdue[c]) & (cfk >= 0) & ~q.cf[c] & (q.ivs[c] == due)
              & ((q.code[c] != 1) | self._q_ws1[c])
              & (q.ive[c] > wm) & (vu > wm) & ((aft < 0) | (q.lastmsg[c] + aft >= wm)))
        w = c[ws]
        if len(w):
            q.pst[w[q.code[w] == 1]] = True  # no fix yet: the streak is still on
            self._enter_windows(w)
            sd = q.sdue[w]
            a = aft[ws]
            q.due[w] = np.where(a >= 0, np.minimum(sd, q.lastmsg[w] + a), sd)
            q.tk[w] = q.ivs[w]
            q.last[w] = np.maximum(q.last[w], q.ivs[w] - 1)  # a fix before the timer rewinds
        self._materialise(c[~ws].tolist())

    def _enter_windows(self, w: Any) -> None:
        """Quiet lanes ``w`` enter their curfew window (see ``QuietLanes.cf0``)."""
        q = self._q
        out1 = w[q.code[w] == 1]  # certainly outside at the start: see QuietLanes.lv
        q.lv[out1] = q.ivs[out1]
        q.cf[w] = True
        vu = self._q_vu[w]
        q.sdue[w] = np.minimum(q.ive[w], np.where(vu < _FAR_FUTURE_MS, vu, _INF))

    def _bail(self, messages: Sequence[Telemetry]) -> None:
        """The batch goes through the per-message path: materialise its persons' lanes."""
        if not self._q.mode.any():
            return
        cis: set[int] = set()
        route, csr_of = self._route, self._csr_of
        for m in messages:
            if type(m) is VideoHit:
                ci = csr_of.get(m.person_id or "", -1)
            else:
                r = route.get(m.device_id)  # type: ignore[union-attr]
                ci = -1 if r is None else r[1]
            if ci >= 0:
                cis.add(ci)
        self._materialise(sorted(cis))

    def _bulk_apply(self, fidx: Any, sel: Any, ps: Any, tss: Any, same: Any, valid: Any,
                    lon: Any, lat: Any, acc: Any, c1: Any, first: Any, gi_all: Any, dix: Any,
                    fx: list[Fix]) -> None:
        """Apply quiet fixes (grouped by person, in order) to the arrays and the pending log."""
        q = self._q
        pl = self._pl
        wm0 = self._wm
        # fold once the rows added since the last fold outnumber the rows that
        # were alive then (and fold_every): each fold's O(log) pass is paid
        # for by as many new rows, and the log stays about one horizon long
        if pl.since_fold > max(self._fold_every, len(pl) - pl.since_fold):
            pl.fold(q, wm0 - self._cfg.lateness_ms)
        ends = np.concatenate((~same, [True]))
        up, tl = ps[ends], tss[ends]
        q.last[up] = tl
        q.pst[up] = False  # checked by _bulk_pass: the first fix ended the streak
        q.front[up] = np.maximum(q.front[up], tl)
        lm = np.maximum(q.lastmsg[up], tl)
        q.lastmsg[up] = lm
        aft = q.after[up]
        q.due[up] = np.where(aft >= 0, np.minimum(q.sdue[up], lm + aft), q.sdue[up])
        v = valid[sel]
        code = np.zeros(len(sel), np.int8)
        cfk = self._q_cfk[ps]
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
            cf = self._q_cfk[uv] >= 0
            q.code[uv[cf]] = code[vr[vend]][cf]
        pl.append(q, fx, sel, {
            "person": ps, "ts": tss, "dev": dix[fidx[sel]], "valid": v,
            "lon": lon[sel], "lat": lat[sel], "acc": acc[sel], "code": code})

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

    def _handover(self, late: Lane, lane: Lane, ents: list[Entry]) -> None:
        """Continue the late lane's unfinished zone episodes in the live lane.

        Backfill that reaches up to the present (a device reconnecting in the
        middle of a breach) leaves an episode open, or a streak under way, in
        the late lane. When the live lane has seen nothing newer than that
        backfill and is itself quiet on the same condition, the condition's
        state moves over: the live data that follows confirms or clears the
        *same* episode (its alert keeps ``late: true``) instead of opening a
        second one. Both lanes restart their rewind checkpoint here.
        """
        spec = self._specs.get(lane.key)
        if spec is None or late.frontier < 0 or lane.state.last_msg > late.frontier:
            return
        if min(e.key for e in ents) <= late.last_key:
            return
        lst, st = late.state, lane.state
        moved: list[Alert] = []
        any_moved = False
        for i, zr in enumerate(spec.zone_rules):
            if zr.kind == CURFEW:
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

    def _late_liveness(self, key: str, ents: list[Entry], out: list[AlertRecord]) -> None:
        """Late data is a sign of life for ``signal_loss`` too (contract: any message).

        A delayed message beyond the lateness horizon goes to the late lane, but
        it still shows the person was not silent: the live lane's last message
        moves on to it (in its checkpoints too, so a rewind keeps it), its
        timer re-arms from there, and a ``signal_lost`` already opened by the
        clock whose gap that message falls in is retracted, exactly as a rewind
        retracts an episode the full data denies.
        """
        lane = self._lanes.get(key)
        spec = self._specs.get(key)
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
        d = st.last_msg + spec.signal_after_ms
        lane.due = d if d < lane.static_due else lane.static_due
        if lane.due < lane.heap_at:  # a lane that had no timer (only late data so far)
            lane.heap_at = lane.due
            heapq.heappush(self._heap, (lane.due, key))

    def _watched_fixes(self, lane: Lane, pid: str, ents: list[Entry], ws: list[str],
                       probes: dict[str, list[Entry]]) -> None:
        """Keep the recent valid fixes of a person others must not meet; queue probes."""
        rec = self._recent.setdefault(pid, [])
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
        cfg = self._cfg
        cut = max(lane.frontier, self._wm) - 6 * cfg.lateness_ms
        for a in ws:
            al = self._lanes.get(a)
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

    def _classify(self, pidx: Any, lon: Any, lat: Any, acc: Any) -> tuple[Any, Any, Any]:
        """Classify every (fix, zone rule) pair of the batch in one vectorised pass.

        Leaves per-fix flags (bit 0: some non-curfew condition certainly
        violated; bit 1: certainly outside a curfew zone) and the per-pair
        codes for :meth:`_attach`; returns the flags, the per-pair ``c1``
        codes and each fix's first pair, as arrays.
        """
        n = len(pidx)
        counts = self._csr_count[pidx]
        total = int(counts.sum())
        ends = np.cumsum(counts)
        if total == 0:
            self._g_flags = [0] * n
            self._g_l1, self._g_l2, self._g_ends = [], [], [0] * n
            return np.zeros(n, np.int8), np.zeros(0, np.int8), np.zeros(n, np.int64)
        rep = np.repeat(np.arange(n), counts)
        offs = np.arange(total) - np.repeat(ends - counts, counts)
        pos = self._csr_start[pidx][rep] + offs
        zone = self._csr_zone[pos]
        buf = self._csr_buf[pos]
        curfew = self._csr_kind[pos] == CURFEW
        a = acc[rep]
        d = self._zones.signed_distance_m(zone, lon[rep], lat[rep], a + buf)
        inside = (d < -a).astype(np.int8) - (d > a).astype(np.int8)  # 1 in, -1 out, 0 unsure
        c1 = np.where(self._csr_kind[pos] == EXCLUSION, inside, -inside)
        appr = np.where((d > a) & (d < buf - a), 1, np.where((d > buf + a) | (d < -a), -1, 0))
        viol = ((c1 == 1) & ~curfew) | (appr == 1)
        cf_out = (c1 == 1) & curfew
        flags = (np.bincount(rep, weights=viol, minlength=n) > 0).astype(np.int8) | (
            (np.bincount(rep, weights=cf_out, minlength=n) > 0).astype(np.int8) << 1)
        self._g_flags = flags.tolist()
        self._g_l1 = c1.tolist()
        self._g_l2 = appr.tolist()
        self._g_ends = ends.tolist()
        return flags, c1, ends - counts

    def _attach(self, e: Entry) -> None:
        """Give a fix of this batch its per-rule codes (``c1``, ``c2``)."""
        gi = e.gi
        if gi < 0 or e.c1 is not None:
            return
        t = self._g_ends[gi]
        s = self._g_ends[gi - 1] if gi else 0
        e.c1 = tuple(self._g_l1[s:t])
        e.c2 = tuple(self._g_l2[s:t])

    def _ensure_codes(self, spec: PersonSpec | None, ents: Sequence[Entry]) -> None:
        """Classify fixes that have no codes yet (entries re-run by a rewind)."""
        if spec is None or not spec.zone_rules:
            return
        todo = [e for e in ents if e.c1 is None and type(e.msg) is Fix and e.msg.valid]
        if not todo:
            return
        k = len(spec.zone_rules)
        n = len(todo)
        lon = np.repeat(np.array([e.msg.lon for e in todo]), k)  # type: ignore[union-attr]
        lat = np.repeat(np.array([e.msg.lat for e in todo]), k)  # type: ignore[union-attr]
        a = np.repeat(np.array([e.msg.accuracy_m for e in todo]), k)  # type: ignore[union-attr]
        zone = np.tile(spec.zone_idx, n)
        buf = np.tile(spec.buffer_m, n)
        kind = np.tile(spec.kinds, n)
        d = self._zones.signed_distance_m(zone, lon, lat, a + buf)
        inside = (d < -a).astype(np.int8) - (d > a).astype(np.int8)
        c1 = np.where(kind == EXCLUSION, inside, -inside).tolist()
        c2 = np.where((d > a) & (d < buf - a), 1,
                      np.where((d > buf + a) | (d < -a), -1, 0)).tolist()
        for i, e in enumerate(todo):
            e.c1 = tuple(c1[i * k:(i + 1) * k])
            e.c2 = tuple(c2[i * k:(i + 1) * k])

    def _classify_video(self, vids: list[tuple[Entry, PersonSpec]]) -> None:
        zi: list[int] = []
        lo: list[float] = []
        la: list[float] = []
        spans: list[tuple[Entry, int, int]] = []
        for e, spec in vids:
            h: VideoHit = e.msg  # type: ignore[assignment]
            s = len(zi)
            for zr in spec.zone_rules:
                zi.append(zr.zone_idx)
                lo.append(h.lon)
                la.append(h.lat)
            spans.append((e, s, len(zi)))
        ca = self._cfg.camera_accuracy_m
        d = self._zones.signed_distance_m(
            np.array(zi, np.int64), np.array(lo), np.array(la), np.full(len(zi), ca + 1.0)
        )
        inside = (d < -ca).astype(np.int8).tolist()
        for e, s, t in spans:
            e.c1 = tuple(inside[s:t])

    # ------------------------------------------------------------------ lane feeding

    def _fast1(self, lane: Lane, spec: PersonSpec, e: Entry) -> bool:
        """:meth:`_fast` for a single fix (the common case), without the loop."""
        key = e.key
        t = key[0]
        if lane.due <= t:
            return False
        st = lane.state
        if not st.started:
            return False
        gi = e.gi
        if gi >= 0:
            f = self._g_flags[gi]
            if f & 1 or (f & 2 and lane.cf_entered):
                return False
        m: Fix = e.msg  # type: ignore[assignment]
        if m.valid and st.lf_ts >= 0 and _implied_speed(
                st.lf_ts, st.lf_lon, st.lf_lat, st.lf_acc, t, m.lon, m.lat,
                m.accuracy_m) > self._cfg.spoof_speed_mps:
            return False  # implausible: the per-message path judges it
        if t > st.last_msg:
            st.last_msg = t
        if m.valid:
            st.lf_ts, st.lf_lon, st.lf_lat, st.lf_acc = t, m.lon, m.lat, m.accuracy_m
            if (gi >= 0 and spec.curfew_idx and not st.expired
                    and spec.valid_from <= t < spec.valid_until):
                base = self._g_ends[gi - 1] if gi else 0
                l1 = self._g_l1
                for i in spec.curfew_idx:
                    st.conds[i].last_code = l1[base + i]
        lane.tail.append(e)
        lane.last_key = key
        if t > lane.frontier:
            lane.frontier = t
        if spec.signal_after_ms is not None and st.sig is None:
            d = st.last_msg + spec.signal_after_ms
            lane.due = d if d < lane.static_due else lane.static_due
        return True

    def _fast(self, lane: Lane, spec: PersonSpec, ents: list[Entry]) -> bool:
        """Apply in-order fixes that certainly change nothing but liveness.

        Holds when the lane is quiet (no streak, no open alert), no timer is
        due up to the last fix, and no fix certainly violates a condition
        (curfew: while a window is open). Then the state machines would only
        record the last position and liveness, which is done here in bulk.
        """
        t_last = ents[-1].key[0]
        if lane.due <= t_last or not lane.state.started:
            return False
        flags = self._g_flags
        last_valid: Entry | None = None
        cf_open = lane.cf_entered
        after = spec.signal_after_ms
        prev = lane.state.last_msg
        st0 = lane.state
        a_ts, a_lon, a_lat, a_acc = st0.lf_ts, st0.lf_lon, st0.lf_lat, st0.lf_acc
        vmax = self._cfg.spoof_speed_mps
        for e in ents:
            m = e.msg
            if type(m) is not Fix:
                return False
            if m.valid:
                if a_ts >= 0 and _implied_speed(a_ts, a_lon, a_lat, a_acc, e.key[0], m.lon, m.lat,
                                                m.accuracy_m) > vmax:
                    return False  # implausible: the per-message path judges it
                a_ts, a_lon, a_lat, a_acc = e.key[0], m.lon, m.lat, m.accuracy_m
            if after is not None:
                # a silence inside the batch longer than signal_loss allows:
                # lane.due only knows the time before the batch
                t = e.key[0]
                if prev >= 0 and t > prev + after:
                    return False
                if t > prev:
                    prev = t
            gi = e.gi
            if gi >= 0:
                f = flags[gi]
                if f & 1 or (f & 2 and cf_open):
                    return False
                last_valid = e
            elif m.valid:
                last_valid = e
        st = lane.state
        if t_last > st.last_msg:
            st.last_msg = t_last
        if last_valid is not None:
            m = last_valid.msg
            st.lf_ts, st.lf_lon, st.lf_lat, st.lf_acc = m.ts, m.lon, m.lat, m.accuracy_m  # type: ignore[union-attr]
            if (spec.has_curfew and last_valid.gi >= 0 and not st.expired
                    and spec.active_at(last_valid.key[0])):
                gi = last_valid.gi
                base = self._g_ends[gi - 1] if gi else 0
                l1 = self._g_l1
                for i in spec.curfew_idx:
                    st.conds[i].last_code = l1[base + i]
        lane.tail.extend(ents)
        lane.last_key = ents[-1].key
        if t_last > lane.frontier:
            lane.frontier = t_last
        if spec.signal_after_ms is not None and st.sig is None:
            d = st.last_msg + spec.signal_after_ms
            lane.due = d if d < lane.static_due else lane.static_due
        return True

    def _feed(self, lane: Lane, ents: list[Entry], res: ProcessResult) -> None:
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
        spec = self._specs.get(lane.key)
        if uniq[0].key > lane.last_key:
            if (lane.quiet and self._quick and spec is not None and not lane.late
                    and lane.state.started and not spec.contact_rules
                    and self._fast(lane, spec, uniq)):
                self._roll(lane)
                if lane.due < lane.heap_at:
                    lane.heap_at = lane.due
                    heapq.heappush(self._heap, (lane.due, lane.key))
                if self._bulk:
                    self._enter_quiet(lane, spec)
                return
            out: list[LogItem] = []
            st = lane.state
            tail = lane.tail
            for e in uniq:
                self._attach(e)
                tail.append(e)
                self._apply(lane, st, spec, e, out)
            lane.last_key = max(lane.last_key, uniq[-1].key)
            if uniq[-1].key[0] > lane.frontier:
                lane.frontier = uniq[-1].key[0]
            if out:
                self._publish(lane, out, res.records)
        else:
            for e in uniq:
                self._attach(e)
            self._rewind(lane, spec, uniq, res)
        self._roll(lane)
        if not lane.late:
            self._schedule(lane, spec)

    def _rewind(self, lane: Lane, spec: PersonSpec | None, uniq: list[Entry], res: ProcessResult) -> None:
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
        self._ensure_codes(spec, rerun)
        for e in rerun:
            self._apply(lane, st, spec, e, new)
            last = e.key
        if lane.adv >= 0 and (lane.adv, 1, "", 0, "") > last:
            tk = self._catch_up(lane, st, spec, (lane.adv, 1, "", 0, ""), new)
            if tk is not None and tk > last:
                last = tk
        lane.state = st
        lane.last_key = max(last, lane.last_key) if last > bkey else lane.last_key
        self._publish_diff(lane, old, new, res.records, first[0])

    def _roll(self, lane: Lane) -> None:
        """Move the checkpoint forward once the pending snapshot is past the horizon."""
        e_time = lane.frontier if lane.late or lane.frontier > self._wm else self._wm
        if lane.pend is not None and lane.pend_key[0] < e_time - self._cfg.lateness_ms:
            lane.ckpt, lane.ckpt_key = lane.pend, lane.pend_key
            lane.pend = None
            self._prune(lane)
        # a new pending snapshot once the checkpoint is four horizons old: one
        # state copy per four horizons of event time, a tail of at most five
        if lane.pend is None and lane.last_key[0] >= lane.ckpt_key[0] + 4 * self._cfg.lateness_ms:
            lane.pend = lane.state.copy()
            lane.pend_key = lane.last_key

    @staticmethod
    def _prune(lane: Lane) -> None:
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

    def _schedule(self, lane: Lane, spec: PersonSpec | None) -> None:
        """Re-arm the lane's timer and refresh the flags the fast path reads."""
        st = lane.state
        d = self._next_deadline(lane, st, spec)
        lane.due = d
        lane.quiet = (st.sig is None and not st.dev and st.sp is None
                      and all(c.start < 0 and c.alert is None for c in st.conds)
                      and all(c.start < 0 and c.alert is None for c in st.appr)
                      and all(c.start < 0 and c.alert is None for c in st.cconds))
        lane.cf_entered = any(c.entered for c in st.conds)
        if d < lane.heap_at:
            lane.heap_at = d
            heapq.heappush(self._heap, (d, lane.key))
        if lane.quiet and self._bulk and spec is not None:
            self._enter_quiet(lane, spec)

    # ------------------------------------------------------------------ bulk (quiet) lanes

    def _enter_quiet(self, lane: Lane, spec: PersonSpec) -> None:
        """Hand a quiet lane's liveness to the arrays of :mod:`geofence.bulk`."""
        st = lane.state
        if (lane.late or not lane.quiet or not st.started or st.expired or self._csr_dirty
                or self._watchers_dirty):
            return
        key = lane.key
        ci = self._csr_of.get(key, -1)
        if ci < 0 or not self._q_ok[ci] or key in self._late or key in self._watchers:
            return
        q = self._q
        q.mode[ci] = True
        q.last[ci] = lane.last_key[0]
        q.front[ci] = lane.frontier
        q.due[ci] = lane.due
        q.sdue[ci] = lane.static_due
        q.after[ci] = -1 if spec.signal_after_ms is None else spec.signal_after_ms
        q.cf[ci] = lane.cf_entered
        q.lastmsg[ci] = q.ck_lastmsg[ci] = st.last_msg
        q.lf_ts[ci] = q.ck_lf_ts[ci] = st.lf_ts
        q.lf_lon[ci] = q.ck_lf_lon[ci] = st.lf_lon
        q.lf_lat[ci] = q.ck_lf_lat[ci] = st.lf_lat
        q.lf_acc[ci] = q.ck_lf_acc[ci] = st.lf_acc
        k = int(self._q_cfk[ci])
        q.code[ci] = q.ck_code[ci] = st.conds[k].last_code if k >= 0 else 0
        if k >= 0:
            c = st.conds[k]
            q.cf0[ci], q.ivs[ci], q.ive[ci] = c.entered, c.iv_start, c.iv_end
        q.lv[ci] = q.tk[ci] = -1
        q.pst[ci] = False
        q.ck_has[ci] = False

    def _materialise(self, cis: Any) -> None:
        """Give lanes in quiet mode their state back as ``Lane`` objects.

        The checkpoint becomes the folded values (when rows were folded), the
        pending rows become tail entries, and the state takes the newest
        liveness values; then the lane is an ordinary lane again.
        """
        q, pl = self._q, self._pl
        cols = pl.cols
        batches = pl.batches
        names = self._csr_names
        for ci in cis:
            ci = int(ci)
            if not q.mode[ci]:
                continue
            q.mode[ci] = False
            key = names[ci]
            lane = self._lanes.get(key)  # type: ignore[assignment]
            if lane is None:  # a virtual lane (see _new_lanes): started at its first fix
                lane = self._lane(key)
                self._start(lane.state, self._specs[key], int(q.t0[ci]))
                lane.quiet = True
                lane.cf_entered = bool(q.cf0[ci])
            st = lane.state
            k = int(self._q_cfk[ci])
            last_key: Key | None = None
            entered = bool(q.cf[ci] and not q.cf0[ci])  # a window entered in bulk
            if q.ck_has[ci]:
                ck = st.copy()
                _put_liveness(ck, k, int(q.ck_lastmsg[ci]), int(q.ck_lf_ts[ci]),
                              float(q.ck_lf_lon[ci]), float(q.ck_lf_lat[ci]),
                              float(q.ck_lf_acc[ci]), int(q.ck_code[ci]),
                              entered and q.ck_ts[ci] >= q.ivs[ci],  # it began before that row
                              int(q.lv[ci]))
                last_key = (int(q.ck_ts[ci]), 1, self._dix_names[int(q.ck_dev[ci])], 0, "")
                lane.ckpt, lane.ckpt_key, lane.pend = ck, last_key, None
                lane.tail = []
                self._prune(lane)
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
                    c = st.conds[k]
                    c.start, c.n = int(q.lv[ci]), 1
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
                heapq.heappush(self._heap, (lane.due, key))
            self._roll(lane)

    def _materialise_all(self, reenter: bool = False) -> None:
        if len(self._q.mode):
            cis = np.nonzero(self._q.mode)[0].tolist()
            self._materialise(cis)
            if reenter:  # still quiet: back to bulk mode (a snapshot changes nothing)
                names, specs = self._csr_names, self._specs
                for ci in cis:
                    lane = self._lanes[names[ci]]
                    if lane.quiet:
                        self._enter_quiet(lane, specs[lane.key])

    # ------------------------------------------------------------------ publishing

    def _publish(self, lane: Lane, items: list[LogItem], out: list[AlertRecord]) -> None:
        lane.log.extend(items)
        if lane.late:
            items = self._suppress(lane, items)
        for it in items:
            r = it.rec
            lane.emitted[r.alert.alert_id] = r.alert
            out.append(r)
            if not lane.late:
                self._track(lane, r)

    def _track(self, lane: Lane, r: AlertRecord) -> None:
        a = r.alert
        if lane.hist is None:
            lane.hist = []
        if r.event == "opened":
            lane.hist.append(Hist(a.alert_id, a.kind, a.rule_id, parse_ts(a.opened_at)))
            return
        for h in reversed(lane.hist):
            if h.alert_id == a.alert_id:
                if a.reason == "retracted":
                    lane.hist.remove(h)
                elif a.status == "cleared" and a.cleared_at:
                    h.cleared = parse_ts(a.cleared_at)
                else:
                    h.cleared = -1
                break

    def _suppress(self, lane: Lane, items: list[LogItem]) -> list[LogItem]:
        live = self._lanes.get(lane.key)
        keep: list[LogItem] = []
        for it in items:
            a = it.rec.alert
            if lane.suppressed is not None and a.alert_id in lane.suppressed:
                continue
            if it.rec.event == "opened" and live is not None:
                t = parse_ts(a.opened_at)
                if any(
                    h.kind == a.kind and h.rule_id == a.rule_id and h.opened <= t
                    and (h.cleared < 0 or h.cleared >= t)
                    for h in (live.hist or ())
                ):
                    if lane.suppressed is None:
                        lane.suppressed = []
                    lane.suppressed.append(a.alert_id)
                    continue
            keep.append(it)
        return keep

    def _publish_diff(
        self, lane: Lane, old: list[LogItem], new: list[LogItem], out: list[AlertRecord], at_ms: int
    ) -> None:
        lane.log.extend(new)
        if lane.late:
            new = self._suppress(lane, new)
        at = format_ts(at_ms)
        by_id: dict[str, list[AlertRecord]] = {}
        for it in new:
            by_id.setdefault(it.rec.alert.alert_id, []).append(it.rec)
        emitted = lane.emitted
        released: list[AlertRecord] = []
        for aid, recs in by_id.items():
            seen = emitted.get(aid)
            if seen is None:
                released.extend(recs)
                emitted[aid] = recs[-1].alert
                continue
            target = recs[-1].alert
            if target != seen:
                ev = "cleared" if target.status == "cleared" else "updated"
                released.append(AlertRecord(ev, target, at=at))  # type: ignore[arg-type]
                emitted[aid] = target
        gone = {it.rec.alert.alert_id for it in old} - set(by_id)
        if gone:
            now_open = {a.alert_id: a for a in lane.state.open_alerts()}
            for aid in sorted(gone):
                seen = emitted.get(aid)
                cur = now_open.get(aid)
                if cur is not None:
                    if cur != seen:
                        released.append(AlertRecord("updated", cur, at=at))
                        emitted[aid] = cur
                elif seen is not None and seen.reason != "retracted":
                    gone_alert = msgspec.structs.replace(
                        seen, status="cleared", cleared_at=seen.opened_at, reason="retracted"
                    )
                    released.append(AlertRecord("cleared", gone_alert, at=at))
                    emitted[aid] = gone_alert
        for r in released:
            out.append(r)
            if not lane.late:
                self._track(lane, r)

    # ------------------------------------------------------------------ the state machines

    def _entity(self, lane: Lane) -> str:
        return lane.key[7:] if lane.key.startswith("camera:") else lane.key

    def _open(
        self, lane: Lane, spec: PersonSpec | None, key: Key, out: list[LogItem], *,
        id_rule: str, rule_id: str, kind: str, severity: str, start: int, at: int,
        lon: float | None, lat: float | None, device_id: str | None = None,
        zone: str | None = None, evidence: str | None = None, camera_id: str | None = None,
        jurisdiction: str | None = None,
    ) -> Alert:
        a = Alert(
            alert_id=alert_id(self._entity(lane), id_rule, start),
            person_id=spec.person_id if spec is not None else None,
            rule_id=rule_id, kind=kind, severity=severity,  # type: ignore[arg-type]
            opened_at=format_ts(at), lat=lat, lon=lon,
            jurisdiction=spec.jurisdiction if spec is not None else jurisdiction,
            late=lane.late, device_id=device_id, zone=zone, evidence=evidence,
            camera_id=camera_id,
        )
        out.append(LogItem(key, AlertRecord("opened", a, at=a.opened_at)))
        return a

    @staticmethod
    def _clear(a: Alert, key: Key, at: int, out: list[LogItem], reason: str | None = None) -> None:
        c = msgspec.structs.replace(a, status="cleared", cleared_at=format_ts(at), reason=reason)
        out.append(LogItem(key, AlertRecord("cleared", c, at=c.cleared_at)))

    def _cond_obs(
        self, lane: Lane, spec: PersonSpec, cond: Cond, code: int, t: int, key: Key,
        out: list[LogItem], id_rule: str, rule_id: str, kind: str, severity: str, dwell: int,
        lon: float, lat: float, device_id: str | None, zone: str | None,
    ) -> None:
        cfg = self._cfg
        r = observe(cond, code, t, cfg.confirm_fixes, dwell, cfg.streak_gap_ms)
        if r == 1:
            cond.alert = self._open(
                lane, spec, key, out, id_rule=id_rule, rule_id=rule_id, kind=kind,
                severity=severity, start=cond.start, at=t, lon=lon, lat=lat,
                device_id=device_id, zone=zone, evidence="gps",
            )
        elif r == -1 and cond.alert is not None:
            self._clear(cond.alert, key, t, out)
            cond.alert = None

    def _catch_up(
        self, lane: Lane, st: LaneState, spec: PersonSpec | None, upto: Key, out: list[LogItem]
    ) -> Key | None:
        """Fire, in key order, every timer whose key is below ``upto``."""
        fired: Key | None = None
        cfg = self._cfg
        while True:
            best: Key | None = None
            what = -1
            if spec is not None:
                if (not lane.late and spec.signal_after_ms is not None and st.sig is None
                        and st.last_msg >= 0):
                    k: Key = (st.last_msg + spec.signal_after_ms, 2, "", 0, "")
                    if k < upto:
                        best, what = k, -2
                if st.started:
                    for i, zr in enumerate(spec.zone_rules):
                        if zr.kind != CURFEW:
                            continue
                        c = st.conds[i]
                        b = c.iv_end if c.entered else c.iv_start
                        k = (b, 0, "", 0, "")
                        if k < upto and (best is None or k < best):
                            best, what = k, i
                if not st.expired and spec.valid_until < _FAR_FUTURE_MS:
                    k = (spec.valid_until, 0, "", 0, "")
                    if k < upto and (best is None or k < best):
                        best, what = k, -3
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
                if spec.active_at(t):
                    st.sig = self._open(
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
                        self._clear(c.alert, best, t, out, "order_expired")
                        c.alert = None
                    c.start, c.n = -1, 0
                if st.sig is not None:
                    self._clear(st.sig, best, t, out, "order_expired")
                    st.sig = None
                for name in [n for n in st.dev if n not in STICKY_DEVICE_RULES
                             and n != "device_separation" and n != SPOOF_KIND]:
                    self._clear(st.dev.pop(name), best, t, out, "order_expired")
            elif what == -4:
                ev = best[4]
                del st.cam_last[ev]
                a = st.dev.pop("video:" + ev, None)
                if a is not None:
                    self._clear(a, best, t, out, "quiet")
            else:
                assert spec is not None
                zr = spec.zone_rules[what]
                c = st.conds[what]
                if not c.entered:
                    c.entered = True
                    if c.last_code == 1 and spec.active_at(t) and c.alert is None:
                        # already outside when the window starts: in breach from its start
                        self._cond_obs(lane, spec, c, 1, t, best, out, zr.rule_id, zr.rule_id,
                                       "curfew_violated", zr.severity, zr.dwell_ms,
                                       st.lf_lon, st.lf_lat, None, zr.zone_id)
                else:
                    if c.alert is not None:
                        self._clear(c.alert, best, t, out, "window_ended")
                        c.alert = None
                    c.start, c.n = -1, 0
                    assert zr.calendar is not None
                    s, e = zr.calendar.interval_at_or_after(c.iv_end)
                    c.iv_start, c.iv_end, c.entered = s, e, s <= c.iv_end

    def _next_deadline(self, lane: Lane, st: LaneState, spec: PersonSpec | None) -> int:
        best = _INF
        if spec is not None:
            if st.started:
                for i, zr in enumerate(spec.zone_rules):
                    if zr.kind == CURFEW:
                        c = st.conds[i]
                        b = c.iv_end if c.entered else c.iv_start
                        best = min(best, b)
            if not st.expired and spec.valid_until < _FAR_FUTURE_MS:
                best = min(best, spec.valid_until)
            lane.static_due = best
            if spec.signal_after_ms is not None and st.sig is None and st.last_msg >= 0:
                best = min(best, st.last_msg + spec.signal_after_ms)
        else:
            for last in st.cam_last.values():
                best = min(best, last + self._cfg.camera_quiet_ms)
        return best

    def _start(self, st: LaneState, spec: PersonSpec, t: int) -> None:
        st.started = True
        for i, zr in enumerate(spec.zone_rules):
            if zr.kind == CURFEW:
                assert zr.calendar is not None
                s, e = zr.calendar.interval_at_or_after(t)
                c = st.conds[i]
                c.iv_start, c.iv_end, c.entered = s, e, s <= t

    def _apply(
        self, lane: Lane, st: LaneState, spec: PersonSpec | None, e: Entry, out: list[LogItem]
    ) -> None:
        key = e.key
        t = key[0]
        if spec is not None and not st.started:
            self._start(st, spec, t)
        self._catch_up(lane, st, spec, key, out)
        m = e.msg
        if spec is None:
            self._camera_hit(lane, st, m, key, out)  # type: ignore[arg-type]
            return
        if e.other is not None:
            if not lane.late and spec.active_at(t) and not st.expired:
                self._contact(lane, st, spec, key, out, e.other)
            return
        tm = type(m)
        if tm is VideoHit:
            if spec.active_at(t):
                self._face(lane, st, spec, m, e, out)  # type: ignore[arg-type]
            return
        # a message from one of the person's devices: a sign of life
        dev_id: str = m.device_id  # type: ignore[union-attr]
        if not lane.late:
            if t > st.last_msg:
                st.last_msg = t
            if st.sig is not None:
                self._clear(st.sig, key, t, out)
                st.sig = None
        active = spec.active_at(t)
        po = st.dev.get("power_off")
        if po is not None and po.device_id == dev_id and not (
            tm is DeviceEvent and m.event == "power_off"  # type: ignore[union-attr]
        ):
            self._clear(st.dev.pop("power_off"), key, t, out)
        if tm is Fix:
            fix: Fix = m  # type: ignore[assignment]
            bl = st.dev.get("battery_low")
            if (bl is not None and bl.device_id == dev_id and fix.battery_pct is not None
                    and fix.battery_pct >= self._cfg.battery_clear_pct):
                self._clear(st.dev.pop("battery_low"), key, t, out)
            if not fix.valid:
                return
            # an implausible fix is one-sided: it may show a violation, never the
            # absence of one (code -1 is dropped), so it cannot clear or break a streak
            one_sided = st.lf_ts >= 0 and self._implausible(lane, st, spec, fix, key, active, out)
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
                            self._cond_obs(lane, spec, cond, code, t, key, out, zr.rule_id,
                                           zr.rule_id, "curfew_violated", zr.severity,
                                           zr.dwell_ms, fix.lon, fix.lat, dev_id, zr.zone_id)
                        cond.last_code = code
                        continue
                    if code != 0 and (code == 1 or cond.alert is not None or cond.start >= 0):
                        self._cond_obs(
                            lane, spec, cond, code, t, key, out, zr.rule_id, zr.rule_id,
                            "exclusion_entered" if zr.kind == EXCLUSION else "inclusion_left",
                            zr.severity, zr.dwell_ms, fix.lon, fix.lat, dev_id, zr.zone_id,
                        )
                    if zr.buffer_m > 0:
                        code2 = c2[i] if not one_sided or c2[i] != -1 else 0
                        ac = st.appr[i]
                        if code2 != 0 and (code2 == 1 or ac.alert is not None or ac.start >= 0):
                            self._cond_obs(lane, spec, ac, code2, t, key, out,
                                           zr.rule_id + ":approach", zr.rule_id,
                                           "exclusion_approach", zr.approach_severity,
                                           zr.dwell_ms, fix.lon, fix.lat, dev_id, zr.zone_id)
            if spec.contact_rules and not lane.late:
                self._contact(lane, st, spec, key, out, None, one_sided)
            return
        # device event
        if not active or st.expired:
            return
        ev: str = m.event  # type: ignore[union-attr]
        if ev in BUILTIN_DEVICE_RULES:
            if ev not in st.dev:
                st.dev[ev] = self._open(
                    lane, spec, key, out, id_rule=ev, rule_id=ev, kind=ev,
                    severity=DEFAULT_SEVERITY[ev], start=t, at=t,
                    lon=st.lf_lon if st.lf_ts >= 0 else None,
                    lat=st.lf_lat if st.lf_ts >= 0 else None, device_id=dev_id,
                )
        elif ev == "charging":
            bl = st.dev.get("battery_low")
            if bl is not None and bl.device_id == dev_id:
                self._clear(st.dev.pop("battery_low"), key, t, out)

    def _implausible(self, lane: Lane, st: LaneState, spec: PersonSpec, fix: Fix, key: Key,
                     active: bool, out: list[LogItem]) -> bool:
        """Judge a valid fix against the last accepted one; ``True``: it is
        implausible (its observations are one-sided, see :meth:`_apply`).

        Implausible fixes of one second stream that alternate with accepted
        ones (``spoof_confirm`` of them) open ``spoofing_suspected``, which
        only an operator resolves. See docs/rules.md, "Spoofing".
        """
        cfg = self._cfg
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
            st.dev[SPOOF_KIND] = self._open(
                lane, spec, key, out, id_rule=SPOOF_RULE, rule_id=SPOOF_RULE, kind=SPOOF_KIND,
                severity=DEFAULT_SEVERITY[SPOOF_KIND], start=t, at=t, lon=fix.lon, lat=fix.lat,
                device_id=fix.device_id, evidence=evidence)
        st.sp = (t, 0, n, t0, fix.lon, fix.lat, fix.accuracy_m, alts, a_ts, a_lon, a_lat, a_acc)
        return True

    def _latest(self, pid: str, t: int) -> tuple[int, float, float, float] | None:
        rec = self._recent.get(pid)
        if not rec:
            return None
        i = bisect_right(rec, (t, math.inf, math.inf, math.inf))
        return rec[i - 1] if i else None

    def _contact(
        self, lane: Lane, st: LaneState, spec: PersonSpec, key: Key, out: list[LogItem],
        only: str | None, one_sided: bool = False,
    ) -> None:
        t = key[0]
        max_age = self._cfg.contact_max_age_ms
        for j, cr in enumerate(spec.contact_rules):
            if only is not None and cr.other != only:
                continue
            cond = st.cconds[j]
            other = self._latest(cr.other, t)
            if st.lf_ts < 0 or t - st.lf_ts > max_age or other is None or t - other[0] > max_age:
                code = -1  # one of the two has no fix young enough: no contact established
            else:
                d = _haversine_m(st.lf_lon, st.lf_lat, other[1], other[2])
                slack = st.lf_acc + other[3]
                code = 1 if d + slack < cr.distance_m else (-1 if d - slack > cr.distance_m else 0)
            if code == 0 or (code == -1 and (one_sided or (cond.alert is None and cond.start < 0))):
                continue
            self._cond_obs(lane, spec, cond, code, t, key, out, cr.rule_id, cr.rule_id, "contact",
                           cr.severity, cr.dwell_ms, st.lf_lon, st.lf_lat, None, None)

    def _face(self, lane: Lane, st: LaneState, spec: PersonSpec, hit: VideoHit, e: Entry,
              out: list[LogItem]) -> None:
        cfg = self._cfg
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
            cond = st.conds[i]
            if cond.alert is None:
                cond.start, cond.n, cond.last_viol = t, cfg.confirm_fixes, t
                cond.alert = self._open(
                    lane, spec, key, out, id_rule=zr.rule_id, rule_id=zr.rule_id,
                    kind="exclusion_entered", severity=zr.severity, start=t, at=t,
                    lon=hit.lon, lat=hit.lat, zone=zr.zone_id, evidence="video",
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
                st.dev["device_separation"] = self._open(
                    lane, spec, key, out, id_rule="device_separation",
                    rule_id="device_separation", kind="device_separation",
                    severity=DEFAULT_SEVERITY["device_separation"], start=t, at=t,
                    lon=hit.lon, lat=hit.lat, evidence="video", camera_id=hit.camera_id,
                )

    def _camera_hit(self, lane: Lane, st: LaneState, hit: VideoHit, key: Key,
                    out: list[LogItem]) -> None:
        t = key[0]
        ev = hit.event
        name = "video:" + ev
        if name in st.dev:
            st.cam_last[ev] = max(st.cam_last.get(ev, t), t)
            return
        st.cam_last[ev] = t
        st.dev[name] = self._open(
            lane, None, key, out, id_rule=name, rule_id=name, kind="video_" + ev,
            severity=DEFAULT_SEVERITY["video_" + ev], start=t, at=t, lon=hit.lon, lat=hit.lat,
            evidence="video", camera_id=hit.camera_id, jurisdiction=hit.jurisdiction,
        )

    # ------------------------------------------------------------------ timers

    def advance(self, watermark_ms: int) -> list[AlertRecord]:
        """Advance event time to ``watermark_ms``: fire signal-loss, curfew-window,
        order-expiry and camera-quiet timers that fall before it.

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
        csr_of = self._csr_of
        while heap and heap[0][0] <= watermark_ms:
            _, lk = heapq.heappop(heap)
            lane = self._lanes.get(lk)
            if lane is None:
                continue
            lane.heap_at = _INF
            ci = csr_of.get(lk, -1)
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

    # ------------------------------------------------------------------ hot reload

    def _rebase(self, lane: Lane, old: PersonSpec | None, new: PersonSpec | None, reason: str,
                out: list[AlertRecord]) -> None:
        """Carry a lane's state over to a changed order or zone set."""
        st = lane.state
        at = max(lane.frontier, 0)
        items: list[LogItem] = []
        key: Key = (at, 1, "\x7freload", 0, "")
        if new is None:
            for a in st.open_alerts():
                self._clear(a, key, at, items, reason)
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
                for j in range(len(old.zone_rules)):
                    if j not in used:
                        for c in (st.conds[j], st.appr[j]):
                            if c.alert is not None:
                                self._clear(c.alert, key, at, items, reason)
                by_c = {(c.rule_id, c.other): j for j, c in enumerate(old.contact_rules)}
                usedc: set[int] = set()
                for i, cr in enumerate(new.contact_rules):
                    j = by_c.get((cr.rule_id, cr.other))
                    if j is not None:
                        cconds[i] = st.cconds[j]
                        usedc.add(j)
                for j, c in enumerate(st.cconds):
                    if j not in usedc and c.alert is not None:
                        self._clear(c.alert, key, at, items, reason)
            fresh.conds, fresh.appr, fresh.cconds = tuple(conds), tuple(appr), tuple(cconds)
            fresh.last_msg, fresh.lf_ts, fresh.lf_lon, fresh.lf_lat, fresh.lf_acc = (
                st.last_msg, st.lf_ts, st.lf_lon, st.lf_lat, st.lf_acc)
            fresh.dev = dict(st.dev)
            fresh.sp = st.sp
            fresh.sig = st.sig
            if fresh.sig is not None and new.signal_after_ms is None:
                self._clear(fresh.sig, key, at, items, reason)
                fresh.sig = None
            lane.state = fresh
        # no rewind across a reload: the checkpoint restarts here
        lane.ckpt = lane.state.copy()
        lane.ckpt_key = lane.last_key
        lane.pend = None
        lane.tail = []
        lane.log = []
        if items:
            self._publish(lane, items, out)
            lane.log = []
        for it in items:
            if it.rec.alert.status == "cleared":
                lane.emitted.pop(it.rec.alert.alert_id, None)
        if not lane.late:
            self._schedule(lane, new)

    def upsert_order(self, order: Order) -> list[AlertRecord]:
        """Add or replace one order; rules that disappear clear their open alerts."""
        out: list[AlertRecord] = []
        self._materialise_all()
        old = self._specs.get(order.person_id)
        new = self._install(order)
        self._watchers_dirty = True  # rebuilt lazily: reloads come in bursts
        for table in (self._lanes, self._late):
            lane = table.get(order.person_id)
            if lane is not None:
                self._rebase(lane, old, new, "rule_removed", out)
        return out

    def remove_order(self, person_id: str, reason: str) -> list[AlertRecord]:
        """Remove a person's order: every open alert of theirs clears with ``reason``."""
        out: list[AlertRecord] = []
        self._materialise_all()
        old = self._specs.pop(person_id, None)
        order = self._orders.pop(person_id, None)
        if order is not None:
            for d in order.devices:
                if self._dev.get(d) == person_id:
                    del self._dev[d]
        for table in (self._lanes, self._late):
            lane = table.pop(person_id, None)
            if lane is not None:
                self._rebase(lane, old, None, reason, out)
        self._recent.pop(person_id, None)
        self._csr_dirty = True
        self._watchers_dirty = True  # rebuilt lazily: reloads come in bursts
        return out

    def set_zones(self, zones: ZoneIndex) -> list[AlertRecord]:
        """Replace the zone catalogue; rules whose zone vanished clear their alerts."""
        out: list[AlertRecord] = []
        self._materialise_all()
        self._zones = zones
        olds = dict(self._specs)
        with _gc_paused():
            self._install_all(list(self._orders.values()))
        for pid, old in olds.items():
            new = self._specs[pid]
            for table in (self._lanes, self._late):
                lane = table.get(pid)
                if lane is not None:
                    self._rebase(lane, old, new, "zone_removed", out)
        return out

    # ------------------------------------------------------------------ state

    def snapshot(self, version: int = SNAPSHOT_VERSION) -> bytes:
        """All per-person state as msgpack bytes (restorable with :meth:`restore`).

        Format 3 (the default) keeps the lanes in quiet mode as they are held,
        in arrays (:mod:`geofence.bulk`): the cost grows with the persons
        who have more than liveness to keep, not with every person seen.
        ``version=2`` writes the previous format (every lane as an object),
        which an engine that reads only 2 restores.

        Raises
        ------
        ValidationError
            ``snapshot_version`` for a format this engine does not write.
        """
        if version == 2:
            self._materialise_all(reenter=True)
            quiet = None
        elif version == SNAPSHOT_VERSION:
            quiet = self._quiet_snapshot()
        else:
            raise ValidationError("snapshot_version",
                                  f"engine snapshot version {version}; this engine writes 2 and 3")
        snap = _Snapshot(version, self._wm, self._max_ts, list(self._lanes.values()),
                         list(self._late.values()), self._recent, self._far_ts, self._far_pid,
                         quiet)
        return msgspec.msgpack.encode(snap)

    def _quiet_snapshot(self) -> _QuietSnapshot | None:
        q = self._q
        if self._csr_dirty or not q.mode.any():
            return None  # a changed numbering materialises every lane first (see _rebuild_csr)
        cis = np.nonzero(q.mode)[0]
        names = self._csr_names
        # rows older than the horizon can no longer be rewound to: fold them (as
        # the next batch might), so the log holds about one horizon of fixes
        self._pl.fold(q, self._wm - self._cfg.lateness_ms)
        log = self._pl.export()
        return _QuietSnapshot(
            names, cis.tobytes(), self._dix_names, q.rows(cis),
            {k: v.tobytes() for k, v in log.items()}, self._pl.since_fold)

    def restore(self, data: bytes) -> None:
        """Replace all state with a :meth:`snapshot` (orders and zones stay as configured).

        Lanes of persons no longer under an order are dropped. Formats 2 and
        3 are read.

        Raises
        ------
        ValidationError
            ``snapshot_version`` for a snapshot of another format version,
            ``snapshot_corrupt`` for quiet-lane arrays of the wrong size
            (msgspec's own error for bytes that are no snapshot at all).
        """
        with _gc_paused():  # many long-lived objects, no cycles
            snap = msgspec.msgpack.decode(data, type=_Snapshot)
        if snap.version not in (2, SNAPSHOT_VERSION):
            raise ValidationError(
                "snapshot_version",
                f"engine snapshot version {snap.version}; this engine reads 2 and 3")
        self._wm, self._max_ts = snap.wm, snap.max_ts
        self._far_ts, self._far_pid = snap.far_ts, snap.far_pid
        self._lanes = {}
        self._late = {}
        self._heap = []
        if self._csr_dirty or self._watchers_dirty:
            self._rebuild_csr()
            self._rebuild_watchers()
        else:  # fresh bulk arrays: no lane is in quiet mode
            n = len(self._csr_names)
            self._q = QuietLanes(n)
            self._pl = PendingLog()
            self._known = np.zeros(n, np.bool_)
        if snap.quiet is not None:
            self._restore_quiet(snap.quiet)
        q_mode = self._q.mode
        for lane in snap.late_lanes:  # camera lanes too: a backfilled facility alert
            if lane.key.startswith("camera:") or lane.key in self._specs:
                self._late[lane.key] = lane
        for lane in snap.lanes:
            if lane.key.startswith("camera:") or lane.key in self._specs:
                lane.heap_at = _INF
                self._lanes[lane.key] = lane
                ci = self._csr_of.get(lane.key, -1)
                if ci >= 0:
                    self._known[ci] = True
                    if q_mode[ci]:
                        continue  # held in the arrays; re-armed when it leaves quiet mode
                self._schedule(lane, self._spec_of(lane))
        # a person whose order no longer allows quiet mode leaves it at once
        q_ok = self._q_ok
        bad = [c for c in np.nonzero(q_mode)[0].tolist() if not q_ok[c]]
        if bad:
            self._materialise(bad)
        self._recent = {k: [tuple(x) for x in v] for k, v in snap.recent.items()}  # type: ignore[misc]

    def _restore_quiet(self, qs: _QuietSnapshot) -> None:
        """Put format 3's quiet lanes back into the arrays, mapping numbers by name."""
        csr_of, dix = self._csr_of, self._dix
        if qs.persons == self._csr_names:
            ci_of = np.arange(len(qs.persons), dtype=np.int64)
        else:
            ci_of = np.array([csr_of.get(p, -1) for p in qs.persons], np.int64)
        if qs.devices == self._dix_names:
            dev = np.arange(len(qs.devices), dtype=np.int64)
        else:
            dev = np.array([dix.get(d, -1) for d in qs.devices], np.int64)
        gone = np.nonzero(dev < 0)[0]
        if len(gone):
            # a device no order names now: keep its name for the entries it keys
            base = len(self._dix_names)
            self._dix_names = [*self._dix_names, *(qs.devices[i] for i in gone.tolist())]
            dev[gone] = np.arange(base, base + len(gone))
        q, pl = self._q, PendingLog()
        try:
            ci = ci_of[np.frombuffer(qs.rows, np.int64)]
            cols = {k: np.frombuffer(qs.log[k], t) for k, t in EXPORT_DTYPES.items()}
            if len({len(v) for v in cols.values()}) > 1:
                raise ValueError("pending-log columns differ in length")
            q.put_rows(ci, qs.columns)
            person = ci_of[cols["person"]]
            if (person < 0).any():
                rows = np.nonzero(person >= 0)[0]
                cols = {k: v[rows] for k, v in cols.items()}
                person = person[rows]
            cols["person"] = person
            pl.load(q, cols, qs.devices, dev)
        except (KeyError, ValueError, IndexError) as exc:
            raise ValidationError("snapshot_corrupt", f"engine snapshot: {exc}") from None
        mine = ci[ci >= 0]
        ck = q.ck_dev[mine]
        q.ck_dev[mine] = np.where(ck >= 0, dev[np.maximum(ck, 0)], -1)
        self._known[mine] = True
        pl.since_fold = qs.since_fold
        self._pl = pl

    def open_alerts(self) -> list[Alert]:
        """Every alert currently open (as last emitted), ordered by alert id."""
        out = [a for table in (self._lanes, self._late) for lane in table.values()
               for a in lane.emitted.values() if a.status == "open"]
        out.sort(key=lambda a: a.alert_id)
        return out


def _entry_key(e: Entry) -> Key:
    return e.key


def _put_liveness(st: LaneState, k: int, last_msg: int, lf_ts: int, lon: float, lat: float,
                  acc: float, code: int, entered: bool, last_viol: int) -> None:
    """Write a bulk lane's liveness back into a state (``k``: its curfew rule or -1)."""
    st.last_msg, st.lf_ts, st.lf_lon, st.lf_lat, st.lf_acc = last_msg, lf_ts, lon, lat, acc
    if k >= 0:
        c = st.conds[k]
        c.last_code = code
        if entered:
            c.entered = True
            if last_viol >= 0:
                c.last_viol = last_viol


_TS = attrgetter("ts")
_DEV = attrgetter("device_id")
_VALID = attrgetter("valid")
_LON = attrgetter("lon")
_LAT = attrgetter("lat")
_ACC = attrgetter("accuracy_m")


def partition_keys(orders: Sequence[Order]) -> dict[str, str]:
    """device_id -> partition key.

    Persons linked by no_contact rules form a group (a connected component)
    and share one key, the smallest person_id of the group, so that the
    pair's latest fixes meet in one worker.

    Examples
    --------
    >>> from geofence.model import parse_orders
    >>> o = parse_orders('[{"person_id": "B", "devices": ["d2"], "jurisdiction": "320102",'
    ...   ' "rules": [{"id": "r", "type": "no_contact", "person": "A"}]},'
    ...   ' {"person_id": "A", "devices": ["d1"], "jurisdiction": "320102", "rules": []}]')
    >>> partition_keys(o)
    {'d2': 'A', 'd1': 'A'}
    """
    groups = contact_groups(orders)
    return {d: groups[o.person_id] for o in orders for d in o.devices}


def message_key(msg: Telemetry, device_keys: dict[str, str], person_keys: dict[str, str]) -> str:
    """The partition key of one telemetry message.

    ``device_keys`` is :func:`partition_keys`, ``person_keys`` maps a person
    to the same group key (``{p: k for p, k in contact_groups(orders).items()}``,
    see :func:`person_partition_keys`). Fixes and device events go by device
    (an unknown device keys by its own id, so it is dead-lettered once),
    face matches by their person's key, facility video hits by camera id.
    """
    if isinstance(msg, VideoHit):
        if msg.event == "face_match" and msg.person_id is not None:
            return person_keys.get(msg.person_id, msg.person_id)
        return "camera:" + msg.camera_id
    return device_keys.get(msg.device_id, msg.device_id)


def person_partition_keys(orders: Sequence[Order]) -> dict[str, str]:
    """person_id -> partition key (the group key of :func:`partition_keys`)."""
    return contact_groups(orders)


# ---------------------------------------------------------------------- replay


@dataclass
class ReplaySummary:
    """Counts of a replay (printed on stderr by ``wardstream replay``)."""

    lines: int = 0
    messages: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    late: int = 0
    too_late: int = 0
    ignored: int = 0
    bulk: int = 0  # fixes of quiet lanes applied in bulk (geofence.bulk)
    records: int = 0
    alerts: int = 0
    retracted: int = 0

    def text(self) -> str:
        """One human-readable paragraph."""
        rej = ", ".join(f"{k}={v}" for k, v in sorted(self.rejected.items())) or "none"
        return (
            f"lines read: {self.lines}; messages: {self.messages}; "
            f"rejected: {sum(self.rejected.values())} ({rej}); duplicates dropped: "
            f"{self.duplicates}; late: {self.late}; too late: {self.too_late}; "
            f"ignored: {self.ignored}; lifecycle records: {self.records}; "
            f"alerts: {self.alerts}; retracted: {self.retracted}"
        )


def fold_records(records: Iterable[AlertRecord]) -> tuple[list[Alert], int]:
    """Final state of every episode from a record stream, ordered by
    ``(opened_at, alert_id)``; retracted episodes are left out.

    Returns the alerts and the number of retracted episodes.
    """
    last: dict[str, Alert] = {}
    for r in records:
        last[r.alert.alert_id] = r.alert
    kept = [a for a in last.values() if a.reason != "retracted"]
    kept.sort(key=lambda a: (parse_ts(a.opened_at), a.alert_id))
    return kept, len(last) - len(kept)


def _file_blocks(fh: BinaryIO, size: int) -> Iterator[bytes]:
    """Whole lines of a binary file, in blocks of about ``size`` bytes.

    A line longer than a block is gathered in pieces and joined once (a
    file with no line end at all costs its size, not its size squared).
    """
    rest: list[bytes] = []
    while True:
        data = fh.read(size)
        if not data:
            if rest:
                yield b"".join(rest)
            return
        cut = data.rfind(b"\n") + 1
        if cut == 0:  # no line end yet: a line longer than the block
            rest.append(data)
            continue
        head = data[:cut]
        yield b"".join((*rest, head)) if rest else head
        rest = [data[cut:]] if cut < len(data) else []


def _lines_of(blob: bytes) -> list[bytes]:
    """The lines of a block (as file iteration gives them, line ends aside)."""
    parts = blob.split(b"\n")
    if not parts[-1]:
        parts.pop()
    return parts


def replay_lines(
    lines: Iterable[bytes] | BinaryIO, zones: ZoneIndex, orders: Sequence[Order],
    config: EngineConfig = EngineConfig(), chunk: int = 8192, read_size: int = 1 << 18,
) -> tuple[list[Alert], ReplaySummary]:
    """Deterministic offline evaluation of telemetry lines.

    ``lines`` is an iterable of lines, or a binary file (anything with
    ``read``), which is then read ``read_size`` bytes at a time and split
    into lines (at ``\\n``) exactly as iterating over it would.

    Lines are decoded with :class:`~geofence.model.TelemetryDecoder` (single
    objects or batched arrays; bad lines are counted by reason), fed to one
    :class:`Engine` in chunks of about ``chunk`` messages in file order, with
    the watermark advanced after each chunk to :func:`batch_watermark` of the
    input so far (as the stream advances its watermark), and flushed at the end.

    Returns the final state of every episode ordered by ``(opened_at,
    alert_id)`` (retracted episodes left out) and a :class:`ReplaySummary`.
    """
    decoder = TelemetryDecoder(now_ms=lambda: _FAR_FUTURE_MS)
    engine = Engine(zones, orders, config)
    summary = ReplaySummary()
    records: list[AlertRecord] = []
    batch: list[Telemetry] = []
    wm = -1

    def feed() -> None:
        nonlocal wm
        res = engine.process(batch)
        records.extend(res.records)
        summary.messages += len(batch)
        summary.rejected["unknown_device"] += len(res.unknown)
        summary.duplicates += res.duplicates
        summary.late += res.late
        summary.too_late += res.too_late
        summary.ignored += res.ignored
        # never past the engine's arrival clock: the late flags then depend on
        # the order of arrival only, not on the chunk size
        w = min(batch_watermark(batch), engine.event_time)
        if w > wm:
            wm = w
            records.extend(engine.advance(wm))
        batch.clear()

    def decode_each(group: list[bytes]) -> None:
        for line in group:
            dec = decoder.decode(line)
            for r in dec.rejected:
                summary.rejected[r.reason] += 1
            batch.extend(dec.messages)

    # Single-object lines are decoded many at a time as one JSON array (one
    # msgspec call); a group with any bad line is decoded again line by line,
    # so rejects are counted exactly as when decoding each line.
    group_max = max(1, min(decoder.max_batch, 4096, chunk))

    def _replay_block(block: list[bytes]) -> None:
        # line by line: single-object lines grouped into arrays, anything
        # else decoded on its own (rejects counted exactly per line)
        group: list[bytes] = []
        group_bytes = 0
        for line in block:
            summary.lines += 1
            s = line.strip()
            if not s:
                summary.rejected["empty_line"] += 1
                continue
            if s[:1] != b"{":
                if group:
                    decode_each(group)
                    group, group_bytes = [], 0
                decode_each([s])
            else:
                group.append(s)
                group_bytes += len(s)
                if len(group) >= group_max or group_bytes > decoder.max_bytes // 2:
                    dec = decoder.decode(b"[" + b",".join(group) + b"]")
                    if dec.rejected:
                        decode_each(group)
                    else:
                        batch.extend(dec.messages)
                    group, group_bytes = [], 0
            if len(batch) >= chunk:
                feed()
        if group:
            dec = decoder.decode(b"[" + b",".join(group) + b"]")
            if dec.rejected:
                decode_each(group)
            else:
                batch.extend(dec.messages)

    def fast(blob: bytes, n_lines: int) -> bool:
        # a block of single-object lines decoded as one JSON array with no
        # per-line Python work; False for any other block (blank lines,
        # arrays, bad lines), which the per-line loop then counts line by line
        if len(blob) >= decoder.max_bytes // 2:
            return False
        body = blob.strip()
        if body[:1] != b"{" or b"\n\n" in body or b"\n\r" in body:
            return False
        dec = decoder.decode(b"[" + body.replace(b"\n", b",") + b"]")
        if dec.rejected or len(dec.messages) != n_lines:
            return False
        summary.lines += n_lines
        batch.extend(dec.messages)
        if len(batch) >= chunk:
            feed()
        return True

    if hasattr(lines, "read"):
        # a binary file: read in blocks, no Python object per line on the fast path
        for blob in _file_blocks(lines, read_size):  # type: ignore[arg-type]
            n = blob.count(b"\n") + (blob[-1:] != b"\n")
            if n > group_max or not fast(blob, n):
                _replay_block(_lines_of(blob))
    else:
        it = iter(lines)
        while True:
            block = list(islice(it, group_max))
            if not block:
                break
            blob = b"".join(block)
            if blob.count(b"\n") < len(block) - 1 or not fast(blob, len(block)):
                _replay_block(block)
    if batch:
        feed()
    records.extend(engine.flush())
    # by reason: the same whatever block boundaries the reasons were first met at
    summary.rejected = Counter({k: v for k, v in sorted(summary.rejected.items()) if v})
    alerts, summary.retracted = fold_records(records)
    summary.records = len(records)
    summary.alerts = len(alerts)
    return alerts, summary
