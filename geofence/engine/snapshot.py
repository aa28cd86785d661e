"""Snapshots of an engine's state, and restoring them.

Format 5 (:data:`SNAPSHOT_VERSION`) keeps lanes in bulk mode as arrays
(:class:`_QuietSnapshot`) and every other lane as a :class:`~.state.Lane`
object whose state includes the checkin rule's schedule and how far the
positioning term has gone (reminded, ended). Format 4 is the same without
the term's progress, format 3 without the checkin schedule either (an
engine that reads only an older format would drop the newer state
unnoticed, hence the new numbers); format 2 holds every lane as an object.
All are still read (a format-3 lane under a checkin rule places its
schedule at its next step, or at once when the order has a ``valid_from``:
see :func:`~geofence.engine.orders.start_owed`; a format-4 lane has no term reminded yet: no
order had a term then) and written on request. docs/rules.md ("State")
has the measured costs.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Union

import msgspec
import numpy as np

from geofence.bulk import EXPORT_DTYPES, PendingLog
from geofence.engine.config import (
    _INF,
)
from geofence.engine.state import (
    Lane,
)
from geofence.errors import ValidationError
from geofence.gc_pause import gc_paused

if TYPE_CHECKING:
    from geofence.engine.core import Engine


SNAPSHOT_VERSION = 5
"""Format written by :meth:`Engine.snapshot`; :meth:`Engine.restore` reads 2 to 5."""
_READS = (2, 3, 4, SNAPSHOT_VERSION)


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
    quiet: Union[_QuietSnapshot, None] = None  # formats 3 and 4


def snapshot(eng: Engine, version: int = SNAPSHOT_VERSION) -> bytes:
    """All per-person state as msgpack bytes (restorable with :meth:`restore`).

    Format 5 (the default) keeps the lanes in quiet mode as they are held,
    in arrays (:mod:`geofence.bulk`): the cost grows with the persons
    who have more than liveness to keep, not with every person seen.
    ``version=3`` writes the same for an engine that reads only 3 (it
    knows no checkin rules and drops their schedules), ``version=2`` every
    lane as an object, which an engine that reads only 2 restores.

    Raises
    ------
    ValidationError
        ``snapshot_version`` for a format this engine does not write.
    """
    if version == 2:
        eng._materialise_all(reenter=True)
        quiet = None
    elif version in (3, 4, SNAPSHOT_VERSION):
        quiet = eng._quiet_snapshot()
    else:
        raise ValidationError("snapshot_version",
                              f"engine snapshot version {version}; this engine writes 2, 3, 4 and 5")
    snap = _Snapshot(version, eng._wm, eng._max_ts, list(eng._lanes.values()),
                     list(eng._late.values()), eng._recent, eng._far_ts, eng._far_pid,
                     quiet)
    return msgspec.msgpack.encode(snap)


def quiet_snapshot(eng: Engine) -> _QuietSnapshot | None:
    q = eng._q
    if eng._csr_dirty or not q.mode.any():
        return None  # a changed numbering materialises every lane first (see _rebuild_csr)
    cis = np.nonzero(q.mode)[0]
    names = q.names
    # rows older than the horizon can no longer be rewound to: fold them (as
    # the next batch might), so the log holds about one horizon of fixes
    eng._pl.fold(q, eng._wm - eng._cfg.lateness_ms)
    log = eng._pl.export()
    return _QuietSnapshot(
        names, cis.tobytes(), q.device_names, q.rows(cis),
        {k: v.tobytes() for k, v in log.items()}, eng._pl.since_fold)


def restore(eng: Engine, data: bytes) -> None:
    """Replace all state with a :meth:`snapshot` (orders and zones stay as configured).

    Lanes of persons no longer under an order are dropped. Formats 2 to 5
    are read.

    Raises
    ------
    ValidationError
        ``snapshot_version`` for a snapshot of another format version,
        ``snapshot_corrupt`` for quiet-lane arrays of the wrong size
        (msgspec's own error for bytes that are no snapshot at all).
    """
    with gc_paused():  # many long-lived objects, no cycles
        snap = msgspec.msgpack.decode(data, type=_Snapshot)
    if snap.version not in _READS:
        raise ValidationError(
            "snapshot_version",
            f"engine snapshot version {snap.version}; this engine reads 2, 3, 4 and 5")
    eng._wm, eng._max_ts = snap.wm, snap.max_ts
    eng._far_ts, eng._far_pid = snap.far_ts, snap.far_pid
    eng._lanes = {}
    eng._late = {}
    eng._heap = []
    if eng._csr_dirty or eng._watchers_dirty:
        eng._rebuild_csr()
        eng._rebuild_watchers()
    else:  # fresh bulk arrays: no lane is in quiet mode
        eng._q.reset(len(eng._q.names))
        eng._pl = PendingLog()
    if snap.quiet is not None:
        eng._restore_quiet(snap.quiet)
    q_mode = eng._q.mode
    for lane in snap.late_lanes:  # camera lanes too: a backfilled facility alert
        if lane.key.startswith("camera:") or lane.key in eng._specs:
            eng._late[lane.key] = lane
    for lane in snap.lanes:
        if lane.key.startswith("camera:") or lane.key in eng._specs:
            lane.heap_at = _INF
            eng._lanes[lane.key] = lane
            ci = eng._q.row_of.get(lane.key, -1)
            if ci >= 0:
                eng._q.known[ci] = True
                if q_mode[ci]:  # held in the arrays: its timer is theirs
                    due = int(eng._q.due[ci])
                    if due < _INF:
                        lane.heap_at = due
                        heapq.heappush(eng._heap, (due, lane.key))
                    continue
            eng._schedule(lane, eng._spec_of(lane))
    # a person whose order no longer allows quiet mode leaves it at once
    bulk_ok = eng._q.bulk_ok
    bad = [c for c in np.nonzero(q_mode)[0].tolist() if not bulk_ok[c]]
    if bad:
        eng._materialise(bad)
    eng._recent = {k: [tuple(x) for x in v] for k, v in snap.recent.items()}  # type: ignore[misc]
    # an order the snapshot knew nothing of (or a snapshot from before
    # schedules began at valid_from) starts owing check-ins now, as a reload would
    for pid in eng._specs:
        eng._start_owed(pid)


def restore_quiet(eng: Engine, qs: _QuietSnapshot) -> None:
    """Put format 3's quiet lanes back into the arrays, mapping numbers by name."""
    q = eng._q
    row_of, dix = q.row_of, q.devices
    if qs.persons == q.names:
        ci_of = np.arange(len(qs.persons), dtype=np.int64)
    else:
        ci_of = np.array([row_of.get(p, -1) for p in qs.persons], np.int64)
    if qs.devices == q.device_names:
        dev = np.arange(len(qs.devices), dtype=np.int64)
    else:
        dev = np.array([dix.get(d, -1) for d in qs.devices], np.int64)
    gone = np.nonzero(dev < 0)[0]
    if len(gone):
        # a device no order names now: keep its name for the entries it keys
        base = len(q.device_names)
        q.device_names = [*q.device_names, *(qs.devices[i] for i in gone.tolist())]
        dev[gone] = np.arange(base, base + len(gone))
    pl = PendingLog()
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
    q.known[mine] = True
    pl.since_fold = qs.since_fold
    eng._pl = pl
