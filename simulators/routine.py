"""Daily routines on a street grid: where each person is at every moment.

A routine is a list of stays (home, work, errands) joined by moves along an
L-shaped path on a square street grid, walked at 1.1-1.6 m/s or driven at
6-12 m/s (plus a wait for the bus or taxi). The result is a piecewise-linear
trajectory (knots of time and metric position) that :func:`position_at`
samples with ``np.interp``. Times are seconds after local midnight of the
simulated day.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

GRID_M = 150.0
"""Street spacing in metres."""

WALK_MAX_M = 1500.0
"""Longer moves are made by vehicle."""


@dataclass
class Stay:
    """Being at one place from ``t0`` to ``t1`` (seconds after local midnight)."""

    t0: float
    t1: float
    x: float
    y: float
    indoor: bool
    label: str


@dataclass
class Trajectory:
    """Knots of a piecewise-linear path plus the stays it joins."""

    t: NDArray[np.float64]
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    stays: list[Stay] = field(default_factory=list)

    def position_at(self, ts: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """True position at each time in ``ts``."""
        return np.interp(ts, self.t, self.x), np.interp(ts, self.t, self.y)

    def speed_at(self, ts: NDArray[np.float64]) -> NDArray[np.float64]:
        """True speed (m/s) at each time in ``ts`` (0 during stays)."""
        seg = np.clip(np.searchsorted(self.t, ts, side="right") - 1, 0, len(self.t) - 2)
        dt = np.maximum(self.t[seg + 1] - self.t[seg], 1e-9)
        dist = np.hypot(self.x[seg + 1] - self.x[seg], self.y[seg + 1] - self.y[seg])
        v = dist / dt
        return np.where((ts >= self.t[0]) & (ts <= self.t[-1]), v, 0.0)

    def stay_at(self, ts: float) -> Stay | None:
        """The stay that covers ``ts``, if any."""
        for s in self.stays:
            if s.t0 <= ts < s.t1:
                return s
        return None


def snap(v: NDArray[np.float64] | float) -> NDArray[np.float64]:
    """Snap to the nearest street-grid node coordinate."""
    return np.round(np.asarray(v, dtype=np.float64) / GRID_M) * GRID_M


def build(
    rng: np.random.Generator,
    home: tuple[float, float],
    places: list[tuple[float, float]],
    worker: bool,
) -> Trajectory:
    """A day: home, (work with a lunch errand | errands), an evening errand, home.

    ``places`` holds work (when ``worker``) then errand points; all are grid nodes.
    """
    h = home
    plan: list[tuple[tuple[float, float], float, bool, str]] = []  # (place, planned leave, indoor, label)
    leave_home = rng.uniform(7.0, 8.5) * 3600
    if worker:
        work, lunch, evening = places[0], places[1], places[2]
        lunch_at = rng.uniform(12.0, 12.5) * 3600
        plan.append((h, leave_home, True, "home"))
        plan.append((work, lunch_at, True, "work"))
        plan.append((lunch, lunch_at + rng.uniform(40, 60) * 60, False, "errand"))
        plan.append((work, rng.uniform(17.0, 18.0) * 3600, True, "work"))
        plan.append((evening, 0.0, False, "errand"))  # leave time set below
        evening_len = rng.uniform(30, 70) * 60
    else:
        e1, e2, e3 = places[0], places[1], places[2]
        plan.append((h, rng.uniform(8.5, 9.5) * 3600, True, "home"))
        plan.append((e1, rng.uniform(11.0, 11.5) * 3600, False, "errand"))
        plan.append((h, rng.uniform(14.0, 14.5) * 3600, True, "home"))
        plan.append((e2, rng.uniform(15.5, 16.5) * 3600, False, "errand"))
        plan.append((e3, 0.0, False, "errand"))
        evening_len = rng.uniform(30, 60) * 60
    kt: list[float] = [0.0]
    kx: list[float] = [h[0]]
    ky: list[float] = [h[1]]
    stays: list[Stay] = []
    t = 0.0
    for i, (place, leave, indoor, label) in enumerate(plan):
        arrive = t
        if i == len(plan) - 1:
            leave = arrive + evening_len
        leave = max(leave, arrive + 10 * 60)
        stays.append(Stay(arrive, leave, place[0], place[1], indoor, label))
        kt.append(leave)
        kx.append(place[0])
        ky.append(place[1])
        nxt = plan[i + 1][0] if i + 1 < len(plan) else h
        t = _move(rng, place, nxt, leave, kt, kx, ky)
    stays.append(Stay(t, 86400.0 * 2, h[0], h[1], True, "home"))
    kt.append(86400.0 * 2)
    kx.append(h[0])
    ky.append(h[1])
    return Trajectory(np.array(kt), np.array(kx), np.array(ky), stays)


def _move(
    rng: np.random.Generator,
    a: tuple[float, float],
    b: tuple[float, float],
    t0: float,
    kt: list[float],
    kx: list[float],
    ky: list[float],
) -> float:
    """Append the knots of an L-shaped move from ``a`` to ``b``; return arrival time."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    length = abs(dx) + abs(dy)
    if length < 1.0:
        return t0
    if length <= WALK_MAX_M:
        speed = rng.uniform(1.1, 1.6)
        wait = 0.0
    else:
        speed = rng.uniform(6.0, 12.0)
        wait = rng.uniform(2, 8) * 60
    start = t0 + wait
    if wait:
        kt.append(start)
        kx.append(a[0])
        ky.append(a[1])
    x_first = rng.random() < 0.5
    corner = (b[0], a[1]) if x_first else (a[0], b[1])
    first_len = abs(dx) if x_first else abs(dy)
    t_corner = start + first_len / speed
    kt.append(t_corner)
    kx.append(corner[0])
    ky.append(corner[1])
    arrive = start + length / speed
    kt.append(arrive)
    kx.append(b[0])
    ky.append(b[1])
    return arrive
