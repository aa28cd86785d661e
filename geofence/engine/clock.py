"""The arrival clock: the newest ``ts`` seen, message by message in arrival order.

It decides what is *late* (older than the clock less the lateness horizon
when it arrives). One device with a clock far ahead must not make
everybody's data late, so the clock follows a message at most ``jump_ms``
ahead of it on its own (``EngineConfig.clock_jump_ms``); a bigger jump is
held as *pending* (its time and person) until a message of a second person
confirms it. :func:`step` is the definition; :func:`run` computes a whole
batch with array operations when no jump needs arbitration, and gives the
same clocks (tests/geofence/test_clock.py checks the two against each other).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["run", "step"]


def step(clk: int, far_ts: int, far_pid: str | None, ts: int, pid: str,
         jump_ms: int) -> tuple[int, int, str | None]:
    """The clock after a message of person ``pid`` at ``ts``.

    ``clk`` is the clock before it (-1: none yet), ``far_ts`` and ``far_pid``
    the pending jump (``far_pid`` ``None``: none). Returns the three after it.

    Examples
    --------
    >>> step(1_000, -1, None, 2_000, "A", 600_000)   # in reach: followed
    (2000, -1, None)
    >>> step(1_000, -1, None, 9_000_000, "A", 600_000)   # too far: pending
    (1000, 9000000, 'A')
    >>> step(1_000, 9_000_000, "A", 9_500_000, "B", 600_000)   # confirmed by B
    (9000000, 9000000, None)
    """
    if ts <= clk:
        return clk, far_ts, far_pid
    if clk < 0 or ts <= clk + jump_ms:
        if far_pid is not None and far_ts <= ts:
            far_pid = None
        return ts, far_ts, far_pid
    if far_pid is None:
        return clk, ts, pid
    if far_pid != pid:  # a second person confirms the jump
        return (ts if ts < far_ts else far_ts), far_ts, None
    return clk, far_ts, far_pid


def run(clk: int, ts: Any, jump_ms: int) -> Any | None:
    """The clock after each message of a batch (``ts`` in arrival order), as
    :func:`step` gives it when no jump is pending before the batch.

    Returns ``None`` when some message jumps further than ``jump_ms`` (the
    per-message :func:`step` must arbitrate it).

    Examples
    --------
    >>> run(1_000, np.array([2_000, 1_500, 3_000]), 600_000).tolist()
    [2000, 2000, 3000]
    >>> run(1_000, np.array([2_000, 9_000_000]), 600_000) is None
    True
    """
    clocks = np.maximum.accumulate(np.concatenate((np.array([clk], np.int64), ts)))
    prev = clocks[:-1]
    if bool(((ts > prev) & (prev >= 0) & (ts > prev + jump_ms)).any()):
        return None
    return clocks[1:]
