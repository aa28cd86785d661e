"""Episode state machines: confirmation, hysteresis and deterministic alert ids.

A *condition* (one exclusion zone, its approach buffer, an inclusion zone, a
curfew zone, a no_contact pair) sees a stream of classified observations:

* ``1``: certainly violating (for example: the accuracy circle of the fix lies
  wholly inside an exclusion zone);
* ``-1``: certainly not violating;
* ``0``: uncertain (the accuracy circle straddles the boundary).

:func:`observe` is the whole state machine. Certain violating observations
build a *streak*; the episode opens at the observation that makes the streak
at least ``confirm`` observations long **and** at least ``dwell_ms`` from its
first observation (the episode start, which also names the alert). A certain
non-violating observation clears an open episode and resets the streak.
Uncertain observations change nothing, which is the hysteresis: jitter inside
the uncertainty band can neither open nor close an episode. A streak whose
violating observations are more than ``gap_ms`` apart starts again.

Examples
--------
>>> c = Cond()
>>> observe(c, 1, 0, 2, 30_000, 600_000)     # first certain fix: streak only
0
>>> observe(c, 0, 20_000, 2, 30_000, 600_000)  # uncertain: nothing
0
>>> observe(c, 1, 40_000, 2, 30_000, 600_000)  # second fix, 40 s later: open
1
>>> c.start
0
>>> c.alert = Alert("a1", "P-1", "r1", "exclusion_entered", "red", "t", None, None, None)
>>> observe(c, -1, 90_000, 2, 30_000, 600_000)  # certainly over: clear
-1
"""

from __future__ import annotations

import hashlib

import msgspec

from geofence.model import Alert


class Cond(msgspec.Struct, gc=False, array_like=True):
    """State of one condition of one person (mutable, copied for checkpoints).

    Attributes
    ----------
    start : int
        Event time (epoch ms) of the first observation of the current streak
        or open episode; ``-1`` when none.
    n : int
        Certain violating observations in the streak.
    last_viol : int
        Event time of the latest violating observation.
    alert : Alert or None
        The open episode's alert (as last emitted), or ``None``.
    last_code : int
        Classification of the most recent valid fix (curfew: ``1`` outside).
    iv_start, iv_end : int
        Curfew only: the current or next window (epoch ms).
    entered : bool
        Curfew only: the window ``iv_start..iv_end`` has begun.
    """

    start: int = -1
    n: int = 0
    last_viol: int = -1
    alert: Alert | None = None
    last_code: int = 0
    iv_start: int = 0
    iv_end: int = 0
    entered: bool = False

    def copy(self) -> Cond:
        """A shallow copy (alerts are never mutated in place)."""
        return self.__copy__()  # type: ignore[attr-defined,no-any-return]


def observe(cond: Cond, code: int, ts: int, confirm: int, dwell_ms: int, gap_ms: int) -> int:
    """Feed one classified observation to a condition.

    Parameters
    ----------
    cond : Cond
        The condition's state, updated in place.
    code : int
        ``1`` certainly violating, ``-1`` certainly not, ``0`` uncertain.
    ts : int
        Event time of the observation (epoch ms), non-decreasing.
    confirm : int
        Certain violating observations needed to open.
    dwell_ms : int
        Minimum span from the first to the confirming observation.
    gap_ms : int
        A violating observation more than this after the previous one starts
        a new streak.

    Returns
    -------
    int
        ``1`` when the caller must open the episode now (``cond.start`` is its
        start), ``-1`` when it must clear the open episode, else ``0``. The
        caller sets or resets ``cond.alert``.
    """
    if code == 1:
        if cond.alert is not None:
            cond.last_viol = ts
            return 0
        if cond.start < 0 or ts - cond.last_viol > gap_ms:
            cond.start = ts
            cond.n = 1
        else:
            cond.n += 1
        cond.last_viol = ts
        if cond.n >= confirm and ts - cond.start >= dwell_ms:
            return 1
        return 0
    if code == -1:
        was_open = cond.alert is not None
        cond.start = -1
        cond.n = 0
        return -1 if was_open else 0
    return 0


def alert_id(entity: str, rule_id: str, start_ms: int) -> str:
    """Deterministic alert id from (person or camera, rule, episode start).

    A 20-hex-digit BLAKE2b digest: the same episode gets the same id in
    replay and in the stream, after restarts and rebalances.

    Examples
    --------
    >>> alert_id("P-1", "r1", 1795356210000) == alert_id("P-1", "r1", 1795356210000)
    True
    >>> len(alert_id("P-1", "r1", 0))
    20
    """
    raw = f"{entity}\x1f{rule_id}\x1f{start_ms}".encode()
    return hashlib.blake2b(raw, digest_size=10).hexdigest()
