"""The arrival clock: the per-message step and the array run agree."""

from __future__ import annotations

import random

import numpy as np

from geofence.engine import clock

JUMP = 600_000


def _stepped(clk: int, ts: list[int], pids: list[str]) -> tuple[list[int], str | None]:
    far_ts, far_pid = -1, None
    out = []
    pending = None
    for t, p in zip(ts, pids, strict=True):
        clk, far_ts, far_pid = clock.step(clk, far_ts, far_pid, t, p, JUMP)
        pending = pending or far_pid
        out.append(clk)
    return out, pending


def test_run_is_step_over_a_batch() -> None:
    rng = random.Random(5)
    agreed = refused = 0
    for _ in range(400):
        clk = rng.choice([-1, 0, 10_000_000])
        base = max(clk, 0)
        n = rng.randint(1, 30)
        # mostly small steps back and forth; now and then one far ahead
        ts = [base + rng.randint(-200_000, 300_000) * (20 if rng.random() < 0.03 else 1)
              for _ in range(n)]
        ts = [max(t, 0) for t in ts]
        pids = [rng.choice("ABC") for _ in range(n)]
        want, pending = _stepped(clk, ts, pids)
        got = clock.run(clk, np.array(ts, np.int64), JUMP)
        if got is None:
            refused += 1
            assert pending is not None  # only a jump the step had to hold is refused
        else:
            agreed += 1
            assert pending is None
            assert got.tolist() == want
    assert agreed > 300 and refused > 5  # both branches exercised


def test_a_jump_waits_for_a_second_person() -> None:
    far = 10 * JUMP
    assert _stepped(0, [1_000, far, far + 5], ["A", "A", "A"])[0] == [1_000, 1_000, 1_000]
    assert _stepped(0, [1_000, far, far + 5], ["A", "A", "B"])[0] == [1_000, 1_000, far]
