"""Bulk state for quiet lanes: the columnar fast path of :class:`geofence.engine.Engine`.

Most fixes change nothing but liveness: the person is where the orders allow,
no episode is open or under way, and no timer is due. For such a *quiet* lane
the engine's state machines would only record the newest message time and
the last valid position (and, for a curfew rule, whether that position was
inside the home zone). :class:`QuietLanes` keeps exactly those values in
numpy arrays, one slot per person, so that a whole batch of quiet fixes is
applied with a handful of array operations instead of a Python loop.

The fixes applied this way are still needed if data arriving later inside
the lateness horizon makes the lane rewind, so they are kept in a pending log
(:class:`PendingLog`): columnar rows chained per person, turned back into
lane entries only when the lane leaves the quiet mode (it is
*materialised*). Rows older than the horizon are folded into a per-person
checkpoint (the same values as of the newest folded row), which bounds the
log to about one horizon of data.

Nothing here imports I/O; the module holds arrays and the bookkeeping that
keeps them consistent, and the engine decides what enters and leaves.
"""

from __future__ import annotations

import math
from operator import attrgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from geofence.model import Fix

__all__ = ["FIX_EXTRAS", "FixColumns", "PendingLog", "QuietLanes"]

_I64 = np.int64
_F64 = np.float64

# columns of the pending log: name -> dtype
_COLUMNS: dict[str, Any] = {
    "person": _I64, "ts": _I64, "dev": _I64, "bid": _I64, "row": _I64, "nxt": _I64,
    "valid": np.bool_, "lon": _F64, "lat": _F64, "acc": _F64, "code": np.int8,
}


# the columns a caller gives to PendingLog.append (the others are bookkeeping)
_ROW_VALUES = ("person", "ts", "dev", "valid", "lon", "lat", "acc", "code")
FIX_EXTRAS = ("speed_mps", "heading_deg", "altitude_m", "battery_pct", "source")
"""Fields of a fix that the pending log's columns do not hold (see PendingLog.export)."""
_SOURCES: tuple[Any, ...] = ("gnss", "cell", "wifi")
_SOURCE_CODE: dict[Any, int] = {None: -1, **{name: i for i, name in enumerate(_SOURCES)}}


EXPORT_DTYPES: dict[str, Any] = {
    **{k: _COLUMNS[k] for k in _ROW_VALUES}, **{k: _F64 for k in FIX_EXTRAS[:-1]},
    "source": np.int8}
"""Columns of :meth:`PendingLog.export` and their types."""


class FixColumns:
    """Fixes held as columns (a restored pending log); row ``i`` becomes a
    :class:`~geofence.model.Fix` only when asked for (``fixes[i]``).

    ``cols`` holds ``ts``, ``dev`` (an index into ``devices``), ``valid``,
    ``lon``, ``lat``, ``acc`` and :data:`FIX_EXTRAS` (``nan`` or -1: ``None``).
    """

    def __init__(self, devices: list[str], cols: dict[str, NDArray[Any]]) -> None:
        self.devices = devices
        self.cols = cols

    def __len__(self) -> int:
        return len(self.cols["ts"])

    def __getitem__(self, i: int) -> Fix:
        c = self.cols
        opt = [None if math.isnan(v) else v for v in (float(c[k][i]) for k in FIX_EXTRAS[:-1])]
        src = int(c["source"][i])
        return Fix(device_id=self.devices[int(c["dev"][i])], ts=int(c["ts"][i]),
                   lat=float(c["lat"][i]), lon=float(c["lon"][i]), accuracy_m=float(c["acc"][i]),
                   valid=bool(c["valid"][i]), speed_mps=opt[0], heading_deg=opt[1],
                   altitude_m=opt[2], battery_pct=opt[3],
                   source=None if src < 0 else _SOURCES[src])


_STATE_COLUMNS = (
    "mode", "last", "front", "due", "sdue", "after", "cf", "lastmsg", "lf_ts", "lf_lon",
    "lf_lat", "lf_acc", "code", "cf0", "ivs", "ive", "lv", "tk", "pst", "ck_has", "ck_ts",
    "ck_dev", "ck_lastmsg", "ck_lf_ts", "ck_lf_lon", "ck_lf_lat", "ck_lf_acc", "ck_code", "t0")
"""The state columns of :class:`QuietLanes` a snapshot holds, in its order."""


class QuietLanes:
    """The rows of the quiet path: one row a person, what its order allows
    and the state of the lanes in quiet (columnar) mode.

    Parameters
    ----------
    n : int
        Number of persons (the engine's compiled orders, in the order they
        were installed: a person's row number is ``ci``, "compiled index").

    Notes
    -----
    Every field, its unit and who writes it. "Quiet" below is
    :mod:`geofence.engine.quiet` (the functions named), "orders" is
    :func:`geofence.engine.orders.rebuild_csr`, "restore" is
    :mod:`geofence.engine.snapshot`; ms are epoch milliseconds.

    *The numbering and the orders*, rebuilt from the orders by ``orders``
    whenever the set of persons or devices changes (which first
    materialises every lane), read-only otherwise:

    ================  ==================================================  =====
    field             holds                                               unit
    ================  ==================================================  =====
    ``names``         person id of each row (list)                        -
    ``row_of``        person id -> row (dict)                             -
    ``devices``       device id -> device number (dict)                   -
    ``device_names``  device id of each device number (list; restore      -
                      appends the devices of a snapshot no order names)
    ``device_row``    each device's person row (int64, by device number)  -
    ``valid_from``    the order's ``valid_from`` (int64)                  ms
    ``valid_until``   the order's ``valid_until`` (int64)                 ms
    ``end_due``       the timer of the order's end (``order_end_due``;     ms
                      ``_INF``: none)
    ``curfew_rule``   number of the person's one curfew rule (-1: none,    -
                      or more than one; int64)
    ``signal_after``  the signal_loss delay (-1: no signal_loss rule;     ms
                      int64)
    ``bulk_ok``       the person may go quiet: no no_contact rule, at      -
                      most one curfew rule (a list, for one row;
                      ``bulk_ok_a`` the same as a bool array)
    ``streak_waits``  a curfew streak begun at its window's start cannot   -
                      open at once: more than one fix or a dwell needed
                      (bool)
    ================  ==================================================  =====

    *The state of the rows*, made by :meth:`reset` (here, and by restore
    for a fresh start). ``put_row`` (quiet) is the one way in: from a lane
    object or a new lane it sets ``mode`` and writes every column from
    ``last`` to ``pst``, and the checkpoint values but ``ck_ts`` and
    ``ck_dev``; :meth:`put_rows` (restore) writes the :meth:`columns` from a
    snapshot; ``materialise`` (quiet) reads a row back into a lane object
    and clears ``mode``. Besides those:

    ===============  ===================================================  ====  ================
    field            holds                                                unit  also written by
    ===============  ===================================================  ====  ================
    ``mode``         the row is in quiet mode: its ``Lane`` object is     -     ``materialise``
                     frozen (or absent) and these columns hold its
                     liveness (bool)
    ``last``         ``ts`` of the newest step applied (int64)            ms    ``bulk_apply``,
                                                                                ``bulk_advance``
    ``front``        the lane's frontier (int64)                          ms    ``bulk_apply``
    ``due``          the lane's next timer (int64)                        ms    ``bulk_apply``,
                                                                                ``bulk_advance``
    ``sdue``         the static part of ``due``: curfew window, order     ms    ``enter_windows``
                     end (int64)
    ``after``        ``signal_after`` as the row went quiet (int64)       ms
    ``cf``           the curfew window has begun: a certainly-outside     -     ``enter_windows``
                     fix is then not quiet (bool)
    ``lastmsg``      the lane state's ``last_msg`` (int64)                ms    ``bulk_apply``
    ``lf_ts``        the last valid fix: time (int64),                    ms    ``bulk_apply``
    ``lf_lon``       longitude, latitude (float64),                       deg   ``bulk_apply``
    ``lf_lat``                                                            deg   ``bulk_apply``
    ``lf_acc``       accuracy (float64)                                   m     ``bulk_apply``
    ``code``         ``last_code`` of the curfew rule (int8: 1 certainly  -     ``bulk_apply``
                     outside, -1 certainly home, 0 neither or no rule)
    ``cf0``          the curfew rule's ``entered`` as the row went quiet  -
                     (bool)
    ``ivs``          start of the curfew window in force or next (int64)  ms
    ``ive``          its end (int64)                                      ms
    ``lv``           ``last_viol`` of a window entered with the person    ms    ``enter_windows``
                     certainly outside (-1: none; int64)
    ``tk``           key time of a window entered by the watermark: the   ms    ``bulk_advance``
                     lane's last key moves to it (-1: none; int64)
    ``pst``          a one-observation streak begun at the window's       -     ``bulk_advance``,
                     start is pending: the next fix stays in bulk only          ``bulk_apply``,
                     if certainly home (bool)                                   ``materialise``
    ``ck_has``       the row has folded checkpoint values (bool)          -     ``PendingLog.fold``,
                                                                                ``materialise``
    ``ck_ts``        ``ts`` and device number of the newest folded row    ms    ``PendingLog.fold``
    ``ck_dev``       (int64)                                              -     ``PendingLog.fold``,
                                                                                restore
    ``ck_lastmsg``,  ``lastmsg``, ``lf_*`` and ``code`` as of that row    -     ``PendingLog.fold``
    ``ck_lf_*``,     (units as those)
    ``ck_code``
    ``t0``           first fix of a lane started in the arrays, which     ms    ``new_lanes``
                     has no ``Lane`` object until materialised (int64)
    ``head``,        first and last pending-log row of the person (-1:    -     :class:`PendingLog`
    ``tail``         none; int64)
    ``known``        the person has a lane (an object or a row; bool)     -     ``new_lanes``,
                                                                                ``lanes.lane_for``,
                                                                                orders, restore
    ===============  ===================================================  ====  ================

    A window that begins while the person is certainly not outside is
    entered in the arrays (``enter_windows``, with
    :func:`~geofence.engine.machines.window_begins`): ``cf`` turns true and
    ``sdue`` moves to the window's end. When the person was certainly
    outside at the window's start and the fix that follows is certainly
    home, the one-observation streak that starts and ends there leaves only
    ``last_viol`` behind: ``lv``. :meth:`columns` (``_STATE_COLUMNS``) are
    what a snapshot holds of a row.
    """

    def __init__(self, n: int) -> None:
        self.names: list[str] = []
        self.row_of: dict[str, int] = {}
        self.devices: dict[str, int] = {}
        self.device_names: list[str] = []
        self.device_row = np.zeros(0, _I64)
        self.valid_from = np.zeros(n, _I64)
        self.valid_until = np.zeros(n, _I64)
        self.end_due = np.zeros(n, _I64)
        self.curfew_rule = np.full(n, -1, _I64)
        self.signal_after = np.full(n, -1, _I64)
        self.bulk_ok: list[bool] = [False] * n
        self.bulk_ok_a = np.zeros(n, np.bool_)
        self.streak_waits = np.zeros(n, np.bool_)
        self.reset(n)

    def reset(self, n: int) -> None:
        """Make every state column afresh for ``n`` persons: no row in quiet
        mode, none known, nothing pending."""
        self.mode = np.zeros(n, np.bool_)
        self.last = np.full(n, -1, _I64)
        self.front = np.full(n, -1, _I64)
        self.due = np.zeros(n, _I64)
        self.sdue = np.zeros(n, _I64)
        self.after = np.full(n, -1, _I64)
        self.cf = np.zeros(n, np.bool_)
        self.lastmsg = np.full(n, -1, _I64)
        self.lf_ts = np.full(n, -1, _I64)
        self.lf_lon = np.zeros(n, _F64)
        self.lf_lat = np.zeros(n, _F64)
        self.lf_acc = np.zeros(n, _F64)
        self.code = np.zeros(n, np.int8)
        self.cf0 = np.zeros(n, np.bool_)
        self.ivs = np.zeros(n, _I64)
        self.ive = np.zeros(n, _I64)
        self.lv = np.full(n, -1, _I64)
        self.tk = np.full(n, -1, _I64)
        self.pst = np.zeros(n, np.bool_)
        self.ck_has = np.zeros(n, np.bool_)
        self.ck_ts = np.full(n, -1, _I64)
        self.ck_dev = np.full(n, -1, _I64)
        self.ck_lastmsg = np.full(n, -1, _I64)
        self.ck_lf_ts = np.full(n, -1, _I64)
        self.ck_lf_lon = np.zeros(n, _F64)
        self.ck_lf_lat = np.zeros(n, _F64)
        self.ck_lf_acc = np.zeros(n, _F64)
        self.ck_code = np.zeros(n, np.int8)
        self.t0 = np.full(n, -1, _I64)
        self.head = np.full(n, -1, _I64)
        self.tail = np.full(n, -1, _I64)
        self.known = np.zeros(n, np.bool_)

    def columns(self) -> dict[str, NDArray[Any]]:
        """The state columns a snapshot holds (``_STATE_COLUMNS``), by name:
        not ``head`` and ``tail`` (positions in the pending log, rebuilt when
        rows are appended) nor ``known`` (rebuilt from the lanes)."""
        return {k: getattr(self, k) for k in _STATE_COLUMNS}

    def rows(self, persons: NDArray[np.int64]) -> dict[str, bytes]:
        """The values of ``persons`` in every column of :meth:`columns`, as raw bytes."""
        return {k: v[persons].tobytes() for k, v in self.columns().items()}

    def put_rows(self, persons: NDArray[np.int64], data: dict[str, bytes]) -> None:
        """Write rows taken by :meth:`rows` (of another instance): row ``k`` goes
        to person ``persons[k]``, and is skipped where that is -1.

        Raises ``ValueError`` when a column is missing or has the wrong size.
        """
        keep = persons >= 0
        for k, v in self.columns().items():
            got = np.frombuffer(data[k], v.dtype) if k in data else None
            if got is None or len(got) != len(persons):
                raise ValueError(f"quiet-lane column {k!r} is missing or has the wrong size")
            v[persons[keep]] = got[keep]


class PendingLog:
    """Fixes applied in bulk to quiet lanes, chained per person.

    Rows live in growable column arrays; ``nxt`` chains the rows of one
    person in ``ts`` order from ``QuietLanes.head`` to ``QuietLanes.tail``.
    Dead rows (materialised or folded) have ``person == -1`` and are
    compacted away once they are the majority. The fix objects themselves
    stay in the batch lists they came in (``batches[bid][row]``), dropped
    when no live row refers to them.
    """

    def __init__(self) -> None:
        self.size = 0
        self.dead = 0
        self.cols: dict[str, NDArray[Any]] = {k: np.zeros(1024, t) for k, t in _COLUMNS.items()}
        self.batches: dict[int, list[Any]] = {}
        self.next_bid = 0
        self.since_fold = 0

    def __len__(self) -> int:
        return self.size - self.dead

    def append(self, lanes: QuietLanes, msgs: list[Any], rows: NDArray[np.int64],
               values: dict[str, NDArray[Any]]) -> None:
        """Append rows grouped by person (each group in ``ts`` order).

        ``values`` holds every column but ``bid``, ``row`` and ``nxt``;
        ``msgs[rows[k]]`` is the fix of row ``k`` (``msgs`` is kept as it is:
        the caller must not change it afterwards).
        """
        k = len(rows)
        if k == 0:
            return
        need = self.size + k
        cap = len(self.cols["ts"])
        if need > cap:
            new = max(need, 2 * cap)
            for name, arr in self.cols.items():
                grown = np.zeros(new, arr.dtype)
                grown[: self.size] = arr[: self.size]
                self.cols[name] = grown
        s, e = self.size, need
        bid = self.next_bid
        self.next_bid += 1
        self.batches[bid] = msgs
        c = self.cols
        for name, v in values.items():
            c[name][s:e] = v
        c["bid"][s:e] = bid
        c["row"][s:e] = rows
        idx = np.arange(s, e, dtype=_I64)
        p = values["person"]
        same = p[1:] == p[:-1]
        nxt = np.full(k, -1, _I64)
        nxt[:-1][same] = idx[1:][same]
        c["nxt"][s:e] = nxt
        starts = np.concatenate(([True], ~same))
        ends = np.concatenate((~same, [True]))
        first, last, up = idx[starts], idx[ends], p[starts]
        t = lanes.tail[up]
        has = t >= 0
        c["nxt"][t[has]] = first[has]
        lanes.head[up[~has]] = first[~has]
        lanes.tail[up] = last
        self.size = e
        self.since_fold += k

    def export(self) -> dict[str, NDArray[Any]]:
        """The live rows, grouped by person in chain order, as columns.

        Holds the columns of :meth:`append` (``person``, ``ts``, ``dev``,
        ``valid``, ``lon``, ``lat``, ``acc``, ``code``) and the fields of
        the fixes that no column holds (:data:`FIX_EXTRAS`, ``nan`` or -1 for
        ``None``); :meth:`load` rebuilds the log from them.
        """
        n = self.size
        c = self.cols
        live = np.nonzero(c["person"][:n] >= 0)[0]
        # rows of one person were appended in chain order and compaction keeps
        # the order: a stable sort by person gives every chain in order
        live = live[np.argsort(c["person"][live], kind="stable")]
        out = {k: c[k][live] for k in _ROW_VALUES}
        k = len(live)
        extras = {name: np.full(k, np.nan) for name in FIX_EXTRAS[:-1]}
        source = np.full(k, -1, np.int8)
        bids, rws = c["bid"][live], c["row"][live]
        by_bid = np.argsort(bids, kind="stable")
        cuts = np.nonzero(np.diff(bids[by_bid]))[0] + 1
        for part in np.split(by_bid, cuts) if k else ():
            batch = self.batches[int(bids[part[0]])]
            r = rws[part]
            if isinstance(batch, FixColumns):
                for name, arr in extras.items():
                    arr[part] = batch.cols[name][r]
                source[part] = batch.cols["source"][r]
                continue
            fixes = [batch[i] for i in r.tolist()]
            for name, arr in extras.items():
                arr[part] = np.array(list(map(attrgetter(name), fixes)), np.float64)
            source[part] = [_SOURCE_CODE[f.source] for f in fixes]
        out.update(extras)
        out["source"] = source
        return out

    def load(self, lanes: QuietLanes, cols: dict[str, NDArray[Any]], devices: list[str],
             dev_number: NDArray[np.int64]) -> None:
        """Append rows taken by :meth:`export`: ``person`` already in ``lanes``'
        numbering, ``dev`` an index into ``devices`` (the device names) and
        ``dev_number`` (the device numbers of the engine that loads them).

        The fixes stay columns (:class:`FixColumns`) until a lane asks for them.
        """
        fixes = FixColumns(devices, cols)
        values = {k: cols[k] for k in _ROW_VALUES}
        values["dev"] = dev_number[cols["dev"]]
        self.append(lanes, fixes, np.arange(len(fixes), dtype=_I64), values)  # type: ignore[arg-type]

    def rows_of(self, lanes: QuietLanes, person: int) -> list[int]:
        """The person's pending rows in order, unlinked and marked dead."""
        out: list[int] = []
        r = int(lanes.head[person])
        nxt = self.cols["nxt"]
        while r >= 0:
            out.append(r)
            r = int(nxt[r])
        if out:
            self.cols["person"][out] = -1
            self.dead += len(out)
        lanes.head[person] = lanes.tail[person] = -1
        return out

    def fold(self, lanes: QuietLanes, horizon: int) -> None:
        """Fold every row older than ``horizon`` into its person's checkpoint values."""
        self.since_fold = 0
        n = self.size
        if n == 0:
            return
        c = self.cols
        person = c["person"][:n]
        ts = c["ts"][:n]
        old = np.nonzero((person >= 0) & (ts < horizon))[0]
        if len(old):
            p = person[old]
            order = np.lexsort((ts[old], p))
            rows, ps = old[order], p[order]
            ends = np.concatenate((ps[1:] != ps[:-1], [True]))
            last, up = rows[ends], ps[ends]
            lanes.ck_has[up] = True
            lanes.ck_ts[up] = ts[last]
            lanes.ck_dev[up] = c["dev"][last]
            lanes.ck_lastmsg[up] = np.maximum(lanes.ck_lastmsg[up], ts[last])
            v = c["valid"][rows]
            if v.any():
                vr, vp = rows[v], ps[v]
                vend = np.concatenate((vp[1:] != vp[:-1], [True]))
                lv, uv = vr[vend], vp[vend]
                lanes.ck_lf_ts[uv] = ts[lv]
                lanes.ck_lf_lon[uv] = c["lon"][lv]
                lanes.ck_lf_lat[uv] = c["lat"][lv]
                lanes.ck_lf_acc[uv] = c["acc"][lv]
                lanes.ck_code[uv] = c["code"][lv]
            nh = c["nxt"][last]
            lanes.head[up] = nh
            lanes.tail[up[nh < 0]] = -1
            person[old] = -1
            self.dead += len(old)
        if self.dead * 2 > self.size:
            self._compact(lanes)

    def _compact(self, lanes: QuietLanes) -> None:
        n = self.size
        c = self.cols
        alive = c["person"][:n] >= 0
        newidx = np.cumsum(alive, dtype=_I64) - 1
        keep = int(alive.sum())
        for arr in c.values():  # in place: the capacity stays for the rows to come
            arr[:keep] = arr[:n][alive]
        nxt = c["nxt"][:keep]
        nxt[nxt >= 0] = newidx[nxt[nxt >= 0]]
        for arr in (lanes.head, lanes.tail):
            m = arr >= 0
            arr[m] = newidx[arr[m]]
        self.size = keep
        self.dead = 0
        live = set(np.unique(c["bid"][: self.size]).tolist())
        for b in [b for b in self.batches if b not in live]:
            del self.batches[b]
