"""Curfew windows as event-time intervals.

A curfew rule has windows in the order's local time zone (``"22:00"`` to
``"06:00"``, crossing midnight when ``end <= start``) on given weekdays (the
day the window *starts*). This module turns them into UTC epoch-millisecond
intervals so that the engine compares integers on the hot path and only
touches :mod:`zoneinfo` once per window instance.

Daylight-saving gaps and folds follow :mod:`zoneinfo`: a local time that does
not exist is taken with ``fold=0`` (the offset before the change).

Examples
--------
>>> from geofence.model import Window
>>> cal = CurfewCalendar((Window("22:00", "06:00"),), "Asia/Shanghai")
>>> from geofence.model import parse_ts, format_ts
>>> s, e = cal.interval_at_or_after(parse_ts("2026-11-22T12:00:00Z"))
>>> format_ts(s), format_ts(e)
('2026-11-22T14:00:00Z', '2026-11-22T22:00:00Z')
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import ClassVar
from zoneinfo import ZoneInfo

from geofence.model import Window

_DAY_MS = 86_400_000


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


_CALENDARS: dict[tuple[tuple[Window, ...], str], CurfewCalendar] = {}


def calendar_for(windows: Sequence[Window], timezone: str) -> CurfewCalendar:
    """A shared :class:`CurfewCalendar` for these windows and zone.

    Orders of one city mostly share their curfew, so calendars (and their
    interval caches) are shared rather than built per order.
    """
    key = (tuple(windows), timezone)
    cal = _CALENDARS.get(key)
    if cal is None:
        if len(_CALENDARS) > 4096:
            _CALENDARS.clear()
        cal = _CALENDARS[key] = CurfewCalendar(windows, timezone)
    return cal


class CurfewCalendar:
    """The curfew windows of one rule, resolved to UTC intervals on demand.

    Parameters
    ----------
    windows : sequence of Window
        The rule's windows (local ``HH:MM``; ``days`` is ``daily`` or a list of
        ``mon``..``sun`` naming the day the window starts).
    timezone : str
        IANA zone of the order.
    """

    __slots__ = ("_around", "_cache", "_specs", "_tz")

    # calendars with the same windows and zone share their caches (most
    # orders of a city have the same curfew)
    _shared: ClassVar[dict[tuple[object, ...], tuple[dict[date, list[tuple[int, int]]],
                                                     dict[date, list[tuple[int, int]]]]]] = {}

    def __init__(self, windows: Sequence[Window], timezone: str) -> None:
        self._tz = _zone(timezone)
        self._specs = [(w.weekdays(), *w.minutes()) for w in windows]
        key = (timezone, tuple((tuple(sorted(d)), s, e) for d, s, e in self._specs))
        got = CurfewCalendar._shared.get(key)
        if got is None:
            if len(CurfewCalendar._shared) > 1024:
                CurfewCalendar._shared.clear()
            got = CurfewCalendar._shared[key] = ({}, {})
        self._cache, self._around = got

    def _day_intervals(self, day: date) -> list[tuple[int, int]]:
        got = self._cache.get(day)
        if got is not None:
            return got
        out: list[tuple[int, int]] = []
        for weekdays, start_min, end_min in self._specs:
            if day.weekday() not in weekdays:
                continue
            start = datetime(day.year, day.month, day.day, tzinfo=self._tz) + timedelta(
                minutes=start_min
            )
            end_day = day if end_min > start_min else day + timedelta(days=1)
            end = datetime(end_day.year, end_day.month, end_day.day, tzinfo=self._tz) + timedelta(
                minutes=end_min
            )
            # wall-clock arithmetic: rebuild from local fields so DST is honoured
            start = start.replace(tzinfo=None).replace(tzinfo=self._tz)
            end = end.replace(tzinfo=None).replace(tzinfo=self._tz)
            s_ms = int(start.timestamp() * 1000)
            e_ms = int(end.timestamp() * 1000)
            if e_ms > s_ms:
                out.append((s_ms, e_ms))
        out.sort()
        if len(self._cache) > 32:
            self._cache.clear()
        self._cache[day] = out
        return out

    def _local_day(self, ts_ms: int) -> date:
        return datetime.fromtimestamp(ts_ms / 1000, self._tz).date()

    def intervals_around(self, ts_ms: int) -> list[tuple[int, int]]:
        """Merged intervals of the local days around ``ts_ms`` (yesterday..tomorrow)."""
        d = self._local_day(ts_ms)
        got = self._around.get(d)
        if got is not None:
            return got
        raw: list[tuple[int, int]] = []
        for k in (-1, 0, 1, 2):
            raw.extend(self._day_intervals(d + timedelta(days=k)))
        raw.sort()
        merged: list[tuple[int, int]] = []
        for s, e in raw:
            if merged and s <= merged[-1][1]:
                if e > merged[-1][1]:
                    merged[-1] = (merged[-1][0], e)
            else:
                merged.append((s, e))
        if len(self._around) > 64:
            self._around.clear()
        self._around[d] = merged
        return merged

    def interval_at_or_after(self, ts_ms: int) -> tuple[int, int]:
        """The window containing ``ts_ms`` or else the next one to start.

        Returns ``(start_ms, end_ms)`` with ``ts_ms < end_ms``; when no window
        starts within the next week, returns an empty interval far in the
        future (a rule whose windows never apply).
        """
        probe = ts_ms
        for _ in range(9):
            for s, e in self.intervals_around(probe):
                if e > ts_ms:
                    return s, self._run_on(e)
            probe += 2 * _DAY_MS
        far = ts_ms + 30 * _DAY_MS
        return far, far + 1

    def _run_on(self, end: int) -> int:
        """The end of windows that touch one another from ``end`` on (a
        schedule covering whole days is one interval, not one per few days)."""
        for _ in range(64):
            for s, e in self.intervals_around(end):
                if s <= end < e:
                    end = e
                    break
            else:
                return end
        return end

    def end_reason(self, end_ms: int) -> str:
        """Why a window ending at ``end_ms`` ends: always ``window_ended``."""
        return WINDOW_ENDED

    def why_inactive(self, ts_ms: int) -> str:
        """Why the rule does not apply at ``ts_ms``: outside its windows."""
        return WINDOW_ENDED


WINDOW_ENDED = "window_ended"
"""Reason of an episode cleared because a window of its rule ended."""
EXEMPTED = "exempted"
"""Reason of an episode cleared because an exemption (leave) suspended its rule."""
POSITIONING_ENDED = "positioning_ended"
"""Reason of an episode cleared because the positioning term ended."""

_NEVER_MS = 1 << 61  # start of the empty interval of a rule that never applies again


class ActivityCalendar:
    """When one zone rule applies: its activity, as event-time intervals.

    The activity is the rule's windows (``None``: always), within
    ``[lo, hi)`` (the positioning term, and for a temporary rule of an
    exemption the exemption's interval), less the intervals of the
    exemptions that suspend the rule. The engine uses it exactly as a
    :class:`CurfewCalendar` (:meth:`interval_at_or_after`), and asks
    :meth:`end_reason` why an interval ends.

    Parameters
    ----------
    windows : CurfewCalendar or None
        The rule's own windows, or ``None`` for a rule without windows.
    lo, hi : int
        Bounds (epoch ms) outside which the rule never applies.
    hi_reason : str
        Why the activity ends at ``hi`` (:data:`POSITIONING_ENDED` or
        :data:`WINDOW_ENDED`).
    suspended : sequence of (int, int)
        Intervals ``[from, until)`` in which the rule is suspended.

    Examples
    --------
    >>> cal = ActivityCalendar(None, 0, 10_000, POSITIONING_ENDED, ((2_000, 3_000),))
    >>> cal.interval_at_or_after(500), cal.end_reason(2_000)
    ((0, 2000), 'exempted')
    >>> cal.interval_at_or_after(2_500), cal.end_reason(10_000)
    ((3000, 10000), 'positioning_ended')
    """

    __slots__ = ("_hi", "_hi_reason", "_lo", "_starts", "_susp", "_win")

    def __init__(self, windows: CurfewCalendar | None, lo: int, hi: int, hi_reason: str,
                 suspended: Sequence[tuple[int, int]] = ()) -> None:
        self._win = windows
        self._lo, self._hi, self._hi_reason = lo, hi, hi_reason
        merged: list[tuple[int, int]] = []
        for s, e in sorted(suspended):
            if merged and s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
            else:
                merged.append((s, e))
        self._susp = tuple(merged)
        self._starts = frozenset(s for s, _ in merged)

    def _pieces(self, s: int, e: int) -> list[tuple[int, int]]:
        """``[s, e)`` less the suspensions."""
        out: list[tuple[int, int]] = []
        for a, b in self._susp:
            if b <= s:
                continue
            if a >= e:
                break
            if a > s:
                out.append((s, a))
            s = max(s, b)
            if s >= e:
                return out
        if s < e:
            out.append((s, e))
        return out

    def interval_at_or_after(self, ts_ms: int) -> tuple[int, int]:
        """The activity interval containing ``ts_ms`` or else the next one.

        Returns ``(start_ms, end_ms)`` with ``ts_ms < end_ms``; a rule that
        never applies again gets an empty interval far in the future.
        """
        probe = ts_ms
        for _ in range(400):
            if probe >= self._hi:
                break
            if self._win is None:
                s, e = self._lo, self._hi
            else:
                s, e = self._win.interval_at_or_after(max(probe, self._lo))
                if e - s == 1:  # no window within the calendar's horizon
                    return (s, e) if s < self._hi else (_NEVER_MS, _NEVER_MS + 1)
            s, e = max(s, self._lo), min(e, self._hi)
            if e <= s:
                break
            for ps, pe in self._pieces(s, e):
                if pe > ts_ms:
                    return ps, pe
            probe = e
        return _NEVER_MS, _NEVER_MS + 1

    def why_inactive(self, ts_ms: int) -> str:
        """Why the rule does not apply at ``ts_ms`` (an order reloaded then)."""
        if ts_ms >= self._hi:
            return self._hi_reason
        if any(a <= ts_ms < b for a, b in self._susp):
            return EXEMPTED
        return WINDOW_ENDED

    def end_reason(self, end_ms: int) -> str:
        """Why an activity interval ending at ``end_ms`` ends."""
        if end_ms == self._hi:
            return self._hi_reason
        if end_ms in self._starts:
            return EXEMPTED
        return WINDOW_ENDED
