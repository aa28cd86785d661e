"""When a phone-supervised person owes a check-in.

A ``checkin`` rule asks for identity check-ins in scheduled windows
(``daily 08:00-10:00``: one verified check-in inside each window), at
random requests (``per_day`` a day between two local times, each to be
answered within ``answer_within_s``), or both. Each window instance and
each request is an :class:`Owed` check-in: it opens at ``opens_ms`` and is
missed if no verified check-in answers it by ``due_ms`` (inclusive: a
check-in at the deadline's very millisecond is in time).

Random request times are not random at run time: they are drawn from a
hash of the person, the rule and the local date, so the stream, every
replay and every restarted worker draw the same requests, and the
simulators can know them in advance. Nothing here does I/O.

Examples
--------
>>> from geofence.model import parse_order, parse_ts, format_ts
>>> o = parse_order({"person_id": "P-1", "devices": ["PH-1"], "jurisdiction": "320102",
...     "rules": [{"id": "c1", "type": "checkin",
...                "windows": [{"start": "08:00", "end": "10:00"}],
...                "random": {"per_day": 2, "start": "09:00", "end": "18:00",
...                           "answer_within_s": 900}}]})
>>> day = owed_between(o.person_id, o.rules[0], o.timezone,
...                    parse_ts("2026-11-22T00:00:00+08:00"), parse_ts("2026-11-23T00:00:00+08:00"))
>>> [(w.key, format_ts(w.opens_ms), w.requested) for w in day][:1]
[('P-1/c1/w1795305600000', '2026-11-22T00:00:00Z', False)]
>>> len(day), sum(w.requested for w in day)
(3, 2)
>>> day == owed_between(o.person_id, o.rules[0], o.timezone,
...                     parse_ts("2026-11-22T00:00:00+08:00"), parse_ts("2026-11-23T00:00:00+08:00"))
True
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np

from geofence.curfew import calendar_for
from geofence.model import CheckIn, RandomCheckins, Rule, Window

__all__ = ["INSIDE", "OUTSIDE", "UNCERTAIN", "Owed", "answers", "checkin_verified", "owed_between",
           "placement", "requests_on"]


class Owed(NamedTuple):
    """One check-in a person owes.

    Attributes
    ----------
    due_ms : int
        Deadline (inclusive, epoch ms): the window's end, or the request's
        time plus ``answer_within_s``.
    opens_ms : int
        From when a check-in counts (the window's start, the request's time).
    key : str
        Stable identity: ``person/rule/w<start ms>`` for a window instance,
        ``person/rule/<yyyymmdd>/<n>`` for the n-th request of a local day.
        A request's key is the ``request_id`` sent to the phone.
    requested : bool
        True for a random request (sent to the phone at ``opens_ms``),
        False for a scheduled window (the person knows it in advance).
    """

    due_ms: int
    opens_ms: int
    key: str
    requested: bool


def _local_ms(day: date, minute: int, tz: ZoneInfo) -> int:
    """Epoch ms of local wall-clock ``minute`` after midnight of ``day``."""
    t = datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=tz)
    return int(t.timestamp() * 1000)


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def requests_on(person_id: str, rule_id: str, random: RandomCheckins, timezone: str,
                day: date) -> list[Owed]:
    """The random check-in requests of one local day, in time order.

    Parameters
    ----------
    person_id, rule_id : str
        Whose rule; part of the draw and of each request's key.
    random : RandomCheckins
        The rule's random requests.
    timezone : str
        The order's IANA time zone.
    day : datetime.date
        The local date.

    Returns
    -------
    list of Owed
        ``random.per_day`` requests at distinct minutes in
        ``[start, end)``, none on a day outside ``random.days``.

    Examples
    --------
    >>> from datetime import date
    >>> from geofence.model import RandomCheckins
    >>> r = RandomCheckins(per_day=3, start="08:00", end="08:03", answer_within_s=600)
    >>> [o.key for o in requests_on("P-1", "c1", r, "Asia/Shanghai", date(2026, 11, 22))]
    ['P-1/c1/20261122/0', 'P-1/c1/20261122/1', 'P-1/c1/20261122/2']
    >>> sorted({(o.opens_ms // 60_000) % 60 for o in
    ...         requests_on("P-1", "c1", r, "Asia/Shanghai", date(2026, 11, 22))})
    [0, 1, 2]
    """
    window = Window(random.start, random.end, random.days)
    if day.weekday() not in window.weekdays():
        return []
    first, last = _minutes(random.start), _minutes(random.end)
    span = last - first
    seed = f"{person_id}\x1f{rule_id}\x1f{day.isoformat()}".encode()
    taken: set[int] = set()
    for k in range(min(random.per_day, span)):
        h = hashlib.blake2b(seed + k.to_bytes(2, "big"), digest_size=8).digest()
        m = int.from_bytes(h, "big") % span
        while m in taken:  # distinct minutes: probe forward
            m = (m + 1) % span
        taken.add(m)
    tz = ZoneInfo(timezone)
    within = random.answer_within_s * 1000
    stamp = day.strftime("%Y%m%d")
    out = []
    for n, m in enumerate(sorted(taken)):
        at = _local_ms(day, first + m, tz)
        out.append(Owed(at + within, at, f"{person_id}/{rule_id}/{stamp}/{n}", True))
    return out


def owed_between(person_id: str, rule: Rule, timezone: str, start_ms: int,
                 end_ms: int) -> list[Owed]:
    """Every check-in owed under ``rule`` that is open at some time in
    ``[start_ms, end_ms)``, ordered by deadline.

    Parameters
    ----------
    person_id : str
        The person.
    rule : Rule
        A ``checkin`` rule.
    timezone : str
        The order's IANA time zone.
    start_ms, end_ms : int
        The span of event time, epoch ms.

    Returns
    -------
    list of Owed
        Windows (merged where they overlap, as curfew windows are) and
        requests with ``opens_ms < end_ms`` and ``due_ms >= start_ms``,
        sorted by ``(due_ms, opens_ms, key)``.
    """
    out: list[Owed] = []
    if rule.windows:
        cal = calendar_for(rule.windows, timezone)
        t = start_ms - 1  # a window ending at start_ms is still owed then
        while True:
            s, e = cal.interval_at_or_after(t)
            if s >= end_ms or e < t:
                break
            out.append(Owed(e, s, f"{person_id}/{rule.id}/w{s}", False))
            t = e + 1
    if rule.random is not None:
        tz = ZoneInfo(timezone)
        day = datetime.fromtimestamp(start_ms / 1000, tz).date() - timedelta(days=2)
        last = datetime.fromtimestamp(end_ms / 1000, tz).date()
        while day <= last:
            for o in requests_on(person_id, rule.id, rule.random, timezone, day):
                if o.opens_ms < end_ms and o.due_ms >= start_ms:
                    out.append(o)
            day += timedelta(days=1)
    out.sort()
    return out


def answers(owed: Owed, ts_ms: int, request_id: str | None) -> bool:
    """Whether a check-in at ``ts_ms`` carrying ``request_id`` answers ``owed``.

    A check-in answers an owed one when it falls in ``[opens_ms, due_ms]``;
    one that names a request answers that request and no other (it still
    answers a scheduled window it falls in).

    Examples
    --------
    >>> o = Owed(2_000, 1_000, "P-1/c1/20261122/0", True)
    >>> answers(o, 1_000, None), answers(o, 2_000, None), answers(o, 2_001, None)
    (True, True, False)
    >>> answers(o, 1_500, "P-1/c1/20261122/1")
    False
    >>> answers(Owed(2_000, 1_000, "P-1/c1/w1000", False), 1_500, "P-1/c1/20261122/1")
    True
    """
    if not owed.opens_ms <= ts_ms <= owed.due_ms:
        return False
    return request_id is None or not owed.requested or request_id == owed.key


def checkin_verified(m: CheckIn, min_score: float) -> bool:
    """Whether a check-in verifies the person.

    Parameters
    ----------
    m : CheckIn
        The check-in.
    min_score : float
        The checkin rule's ``min_score``.

    Returns
    -------
    bool
        True when it carries at least one result and none failed: no
        ``face_score`` below ``min_score``, no ``action_ok`` false.

    Examples
    --------
    >>> from geofence.model import CheckIn
    >>> ok = CheckIn(device_id="PH-1", ts=0, lat=0.0, lon=0.0, face_score=0.9)
    >>> checkin_verified(ok, 0.8), checkin_verified(ok, 0.95)
    (True, False)
    """
    fs, ok = m.face_score, m.action_ok
    return (fs is None or fs >= min_score) and ok is not False and (fs is not None or ok is True)


OUTSIDE, INSIDE, UNCERTAIN = 0, 1, 2
"""Where a check-in lies against the person's inclusion zones (:func:`placement`)."""


def placement(codes: Any) -> Any:
    """Where check-ins lie, from their codes against the inclusion zones.

    Parameters
    ----------
    codes : array_like of int
        Classification codes along the last axis, one per inclusion zone
        (:func:`geofence.engine.classify.zone_codes`: 1 certainly outside,
        -1 certainly inside, 0 not certain); one check-in per row.

    Returns
    -------
    int or ndarray of int
        :data:`OUTSIDE` when certainly outside at least one zone,
        :data:`INSIDE` when certainly inside every one (also with no zone),
        :data:`UNCERTAIN` otherwise.

    Examples
    --------
    >>> placement([1, -1]), placement([-1, -1]), placement([0, -1]), placement([])
    (0, 1, 2, 1)
    >>> placement([[1, 0], [-1, -1]]).tolist()
    [0, 1]
    """
    a = np.asarray(codes, np.int64)
    out = np.where((a == 1).any(axis=-1), OUTSIDE,
                   np.where((a == -1).all(axis=-1), INSIDE, UNCERTAIN))
    return int(out) if out.ndim == 0 else out
