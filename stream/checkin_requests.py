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
from typing import NamedTuple

from geofence.checkin import Owed, owed_between
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


def requests_between(order: Order, start_ms: int, end_ms: int) -> list[Owed]:
    """The order's random requests opening in ``(start_ms, end_ms]`` while the order is in force."""
    rule = random_rule(order)
    if rule is None:
        return []
    return [w for w in owed_between(order.person_id, rule, order.timezone, start_ms + 1,
                                    end_ms + 1)
            if w.requested and start_ms < w.opens_ms <= end_ms and order.active_at(w.opens_ms)]


def open_requests(order: Order, at_ms: int) -> list[Owed]:
    """The order's random requests open at ``at_ms`` (opened, not yet past their deadline)."""
    rule = random_rule(order)
    if rule is None:
        return []
    return [w for w in owed_between(order.person_id, rule, order.timezone, at_ms, at_ms + 1)
            if w.requested and w.opens_ms <= at_ms <= w.due_ms and order.active_at(w.opens_ms)]


class RequestClock:
    """One partition's requests: which are due to be sent at each tick.

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

    def __init__(self, plan_ms: int = PLAN_MS) -> None:
        self.plan_ms = plan_ms
        self.mark: int | None = None
        """Requests opening at or before this time (epoch ms) were sent."""
        self._orders: dict[str, Order] = {}
        """The orders with random requests, as last read."""
        self._stale = True
        """The orders are to be read again at the next tick."""
        self._until = -1
        self._pending: list[Request] = []  # opening in (mark, until], latest first

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
            return self._open_at(self._orders.values(), now_ms)
        if now_ms <= self.mark:
            return []
        out = []
        if self._stale:
            before = self._orders
            self._read(orders)
            # a new or changed order's requests still open are sent at once, even those
            # opened before it arrived; those opening after the mark come from the plan
            fresh = [o for p, o in self._orders.items() if before.get(p) != o]
            out = [r for r in self._open_at(fresh, now_ms) if r.owed.opens_ms <= self.mark]
            self._plan(now_ms)
        elif now_ms > self._until:
            self._plan(now_ms)
        pending = self._pending
        while pending and pending[-1].owed.opens_ms <= now_ms:
            out.append(pending.pop())
        self.mark = now_ms
        return out

    def _read(self, orders: Mapping[str, Order]) -> None:
        self._orders = {p: o for p, o in orders.items() if random_rule(o) is not None}
        self._stale = False

    @staticmethod
    def _open_at(orders: Iterable[Order], at_ms: int) -> list[Request]:
        out = [Request(o.person_id, o.devices, w) for o in orders for w in open_requests(o, at_ms)]
        out.sort(key=lambda r: (r.owed.opens_ms, r.owed.key))
        return out

    def _plan(self, now_ms: int) -> None:
        """Compute the requests opening after the mark, up to an hour past ``now_ms``."""
        assert self.mark is not None
        self._until = max(self.mark, now_ms) + self.plan_ms
        plan = [Request(o.person_id, o.devices, w) for o in self._orders.values()
                for w in requests_between(o, self.mark, self._until)]
        plan.sort(key=lambda r: (r.owed.opens_ms, r.owed.key), reverse=True)
        self._pending = plan


def command_bodies(req: Request) -> list[tuple[str, dict[str, str]]]:
    """``(device_id, command body)`` for each of the person's devices."""
    w = req.owed
    return [(dev, {"device_id": dev, "command": COMMAND, "request_id": w.key,
                   "at": format_ts(w.opens_ms), "due": format_ts(w.due_ms),
                   "person_id": req.person_id})
            for dev in req.devices]
