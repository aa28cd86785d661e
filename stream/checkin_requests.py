"""When a worker asks a phone for a random check-in.

A ``checkin`` rule with ``random`` requests owes check-ins at times drawn
by :mod:`geofence.checkin` (the one home of that schedule). The worker that
owns a person's partition publishes each request on ``wardstream.commands``
when the wall clock reaches its time (``opens_ms``); the phone app's push
service delivers it and the phone answers with a check-in naming the
request (``request_id`` = the request's key).

Each partition keeps a :class:`RequestClock`: a mark (requests opening up to
it were sent) and the requests planned to open in the next hour. A tick
sends every request that opened in ``(mark, now]``, so a slow tick never
skips one. When the partition's orders change (hot reload), a new or
changed order's requests still open are sent at once. A partition newly taken (worker start, restart, rebalance) has
no mark: its first tick sends every request still open at that moment,
which may repeat one the previous owner sent (the same ``request_id``;
the phone app treats a repeat as the same request) and never leaves out a
request still due. A request that opened and expired while no worker owned
the partition is not sent: the engine opens ``checkin_missed`` for it.

Pure: no I/O; the caller passes the time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from geofence.checkin import Owed, requests_on
from geofence.model import Order, Rule, format_ts

PLAN_MS = 3_600_000
"""How far ahead a partition's requests are computed at once."""
COMMAND = "checkin_request"
"""The ``command`` of a check-in request on ``wardstream.commands``."""


class Request(NamedTuple):
    """A random check-in request that is due to be sent."""

    person_id: str
    devices: tuple[str, ...]
    owed: Owed


def random_rule(order: Order) -> Rule | None:
    """The order's ``checkin`` rule if it asks for random check-ins."""
    for rule in order.rules:
        if rule.type == "checkin" and rule.random is not None:
            return rule
    return None


def _local_date(ms: int, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(ms / 1000, tz).date()


class RequestClock:
    """One partition's requests: which are due to be sent at each tick.

    The requests of a person's local day are drawn once
    (:func:`geofence.checkin.requests_on`) and kept while that day may still
    matter; each tick also draws a few persons' requests for the hours
    ahead (``warm_per_tick``), so crossing midnight costs no tick more than
    another.

    Examples
    --------
    >>> from geofence.model import parse_order, parse_ts
    >>> o = parse_order({"person_id": "P-1", "devices": ["PH-1"], "jurisdiction": "320102",
    ...     "rules": [{"id": "c1", "type": "checkin",
    ...                "random": {"per_day": 3, "start": "09:00", "end": "09:30"}}]})
    >>> clock = RequestClock()
    >>> t = parse_ts("2026-11-22T08:00:00+08:00")
    >>> clock.due({"P-1": o}, t)
    []
    >>> sent = clock.due({"P-1": o}, t + 4 * 3_600_000)
    >>> [r.owed.key for r in sent]
    ['P-1/c1/20261122/0', 'P-1/c1/20261122/1', 'P-1/c1/20261122/2']
    >>> clock.due({"P-1": o}, t + 5 * 3_600_000)
    []
    """

    def __init__(self, plan_ms: int = PLAN_MS, warm_per_tick: int = 500) -> None:
        self.plan_ms = plan_ms
        self.warm_per_tick = warm_per_tick
        self.mark: int | None = None
        """Requests opening at or before this time (epoch ms) were sent."""
        self._orders: dict[str, tuple[Order, Rule]] = {}
        """The orders with random requests, as last read, with their checkin rule."""
        self._stale = True
        """The orders are to be read again at the next tick."""
        self._until = -1
        self._pending: list[Request] = []  # opening in (mark, until], latest first
        self._days: dict[str, dict[date, list[Owed]]] = {}
        """Per person, the requests of each local day drawn so far."""
        self._warm_at: list[str] = []  # persons whose next days are still to be drawn

    def orders_changed(self) -> None:
        """The partition's orders changed: read them again at the next tick."""
        self._stale = True

    def due(self, orders: Mapping[str, Order], now_ms: int) -> list[Request]:
        """The requests to send at ``now_ms``, in time order; advances the mark to ``now_ms``.

        ``orders`` are read again only after :meth:`orders_changed` (the
        partition's orders are many; a tick must stay cheap).
        """
        if self.mark is None:
            self.mark = now_ms
            self._read(orders)
            self._plan(now_ms)
            return self._open_at(self._orders, now_ms)
        if now_ms <= self.mark:
            return []
        out = []
        if self._stale:
            before = self._orders
            self._read(orders)
            # a new or changed order's requests still open are sent at once, even those
            # opened before it arrived; those opening after the mark come from the plan
            fresh = [p for p, (o, _) in self._orders.items()
                     if p not in before or before[p][0] != o]
            out = [r for r in self._open_at(fresh, now_ms) if r.owed.opens_ms <= self.mark]
            self._plan(now_ms)
        elif now_ms > self._until:
            self._plan(now_ms)
        pending = self._pending
        while pending and pending[-1].owed.opens_ms <= now_ms:
            out.append(pending.pop())
        self.mark = now_ms
        self._warm(now_ms)
        return out

    def _read(self, orders: Mapping[str, Order]) -> None:
        old = self._orders
        self._orders = {}
        for p, o in orders.items():
            rule = random_rule(o)
            if rule is not None:
                self._orders[p] = (o, rule)
        for p in list(self._days):
            if p not in self._orders or old.get(p, (None,))[0] != self._orders[p][0]:
                del self._days[p]
        self._stale = False

    def _requests(self, person: str, days: Iterable[date]) -> Iterable[Owed]:
        """The person's requests on ``days`` (local dates), drawn once per day."""
        order, rule = self._orders[person]
        assert rule.random is not None
        mine = self._days.setdefault(person, {})
        for day in days:
            got = mine.get(day)
            if got is None:
                got = mine[day] = [w for w in requests_on(person, rule.id, rule.random,
                                                          order.timezone, day)
                                   if order.active_at(w.opens_ms)]
            yield from got

    def _spans(self, start_ms: int, end_ms: int) -> dict[str, list[date]]:
        """The local dates from ``start_ms`` to ``end_ms`` in each time zone of the orders."""
        out: dict[str, list[date]] = {}
        for order, _ in self._orders.values():
            if order.timezone not in out:
                tz = ZoneInfo(order.timezone)
                first, last = _local_date(start_ms, tz), _local_date(end_ms, tz)
                out[order.timezone] = [first + timedelta(days=k)
                                       for k in range((last - first).days + 1)]
        return out

    def _open_at(self, persons: Iterable[str], at_ms: int) -> list[Request]:
        """Requests open at ``at_ms`` (opened, not past their deadline) of ``persons``."""
        out = []
        for p in persons:
            order, rule = self._orders[p]
            assert rule.random is not None
            tz = ZoneInfo(order.timezone)
            first = _local_date(at_ms - rule.random.answer_within_s * 1000, tz)
            days = [first + timedelta(days=k)
                    for k in range((_local_date(at_ms, tz) - first).days + 1)]
            out += [Request(p, order.devices, w) for w in self._requests(p, days)
                    if w.opens_ms <= at_ms <= w.due_ms]
        out.sort(key=lambda r: (r.owed.opens_ms, r.owed.key))
        return out

    def _plan(self, now_ms: int) -> None:
        """Plan the requests opening after the mark, up to an hour past ``now_ms``."""
        assert self.mark is not None
        start = self.mark
        self._until = max(start, now_ms) + self.plan_ms
        spans = self._spans(start, self._until)
        plan = [Request(p, o.devices, w) for p, (o, _) in self._orders.items()
                for w in self._requests(p, spans[o.timezone])
                if start < w.opens_ms <= self._until]
        plan.sort(key=lambda r: (r.owed.opens_ms, r.owed.key), reverse=True)
        self._pending = plan
        keep = {tz: days[0] - timedelta(days=2)
                for tz, days in self._spans(start, start).items()}
        for p, days in self._days.items():  # days that can no longer matter
            first = keep[self._orders[p][0].timezone]
            for day in [d for d in days if d < first]:
                del days[day]
        self._warm_at = list(self._orders)

    def _warm(self, now_ms: int) -> None:
        """Draw a few persons' requests for the hours after the plan (spreads the work)."""
        if not self._warm_at:
            return
        spans = self._spans(self._until, self._until + 2 * self.plan_ms)
        for _ in range(min(self.warm_per_tick, len(self._warm_at))):
            p = self._warm_at.pop()
            if p in self._orders:
                for _ in self._requests(p, spans[self._orders[p][0].timezone]):
                    pass


def command_bodies(req: Request) -> list[tuple[str, dict[str, str]]]:
    """``(device_id, command body)`` for each of the person's devices."""
    w = req.owed
    return [(dev, {"device_id": dev, "command": COMMAND, "request_id": w.key,
                   "at": format_ts(w.opens_ms), "due": format_ts(w.due_ms),
                   "person_id": req.person_id})
            for dev in req.devices]
