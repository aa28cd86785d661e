"""The state of a lane: its steps, its state machines' values, its checkpoints."""

from __future__ import annotations

from typing import Union

import msgspec

from geofence.engine.config import (
    _INF,
    MIN_KEY,
    Key,
)
from geofence.episodes import Cond
from geofence.model import (
    Alert,
    AlertRecord,
    CheckIn,
    DeviceEvent,
    Fix,
    VideoHit,
)
from geofence.rules import (
    PersonSpec,
)


class Entry(msgspec.Struct, array_like=True, gc=False):
    """One step of a lane: a message (with its zone classifications) or a probe."""

    key: Key
    msg: Union[Fix, DeviceEvent, VideoHit, CheckIn, None] = None
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
    # the checkin rule (geofence.engine.machines.checkin_step): every owed
    # check-in due at or before ck_done is settled, ck_due is the next
    # deadline (_INF: none; -1: the schedule is not placed yet), ck_paid the
    # (due, key) of owed check-ins after ck_done that a verified check-in
    # answered; its alerts are in dev
    ck_done: int = -1
    ck_due: int = -1
    ck_paid: tuple[tuple[int, str], ...] = ()

    def copy(self) -> LaneState:
        """Independent copy (alerts are immutable in practice)."""
        cp = Cond.__copy__  # type: ignore[attr-defined]
        return LaneState(
            tuple(map(cp, self.conds)), tuple(map(cp, self.appr)),
            tuple(map(cp, self.cconds)) if self.cconds else (), self.last_msg, self.lf_ts, self.lf_lon,
            self.lf_lat, self.lf_acc, self.sig, dict(self.dev), dict(self.cam_last),
            self.expired, self.started, self.sp, self.ck_done, self.ck_due, self.ck_paid,
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


def _fresh_state(spec: PersonSpec | None) -> LaneState:
    if spec is None:
        return LaneState((), (), ())
    return LaneState(
        tuple([Cond() for _ in spec.zone_rules]),
        tuple([Cond() for _ in spec.zone_rules]),
        tuple([Cond() for _ in spec.contact_rules]),
    )


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
