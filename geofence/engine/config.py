"""Engine settings, the result of a batch, the step key and the GC helper."""

from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Literal

import numpy as np

from geofence.errors import ValidationError
from geofence.model import (
    AlertRecord,
    Telemetry,
)

Key = tuple[int, int, str, int, str]
"""Sort key of a step: (ts, order, source, kind, event).

``order`` 0 = window boundaries and order expiry (before messages of the same
ms), 1 = messages, 2 = silence timers (signal loss, camera quiet, missed
check-in deadlines: after, so a check-in at its deadline's very ms is in time).
``kind`` of a message: 0 fix, 1 device event, 2 video hit, 3 contact probe,
4 check-in.
"""


MIN_KEY: Key = (-1, 0, "", 0, "")


_INF = 1 << 62


_FAR_FUTURE_MS = 253402300799999


@dataclass(frozen=True)
class EngineConfig:
    """Engine settings (defaults follow the contract).

    Attributes
    ----------
    lateness_ms : int
        Lateness horizon: out-of-order data younger than this is merged in
        order; older data is *late* (evaluated in the late lane, ``late: true``).
    default_dwell_s : float
        Minimum span from the first to the confirming certain observation
        when a rule gives no ``dwell_s``.
    confirm_fixes : int
        Consecutive certain violating observations needed to open.
    contact_max_age_ms : int
        no_contact and device_separation use fixes at most this old.
    separation_m : float
        A face match this far (certainly) from the wristband's fix raises
        device_separation.
    face_match_min_confidence : float
        Face matches below this confidence (or without one) raise nothing.
    streak_gap_ms : int
        Violating observations further apart than this do not confirm each other.
    camera_accuracy_m : float
        Position uncertainty of a camera (video hits are "certainly inside" a
        zone when deeper than this).
    camera_quiet_ms : int
        A facility video alert clears after this long without a new hit of
        the same event from the same camera.
    battery_clear_pct : float
        battery_low clears on ``charging`` or a fix reporting at least this.
    clock_jump_ms : int
        The engine's arrival clock (the newest ``ts`` seen, message by message
        in arrival order; it decides what is *late*) follows a message at
        most this far ahead of it on its own; a bigger jump needs a message of
        a second person to confirm it, so that one device with a clock far
        ahead cannot make everybody's data late.
    bulk : bool
        Apply fixes of quiet lanes in bulk (:mod:`geofence.bulk`). The
        records are the same either way; ``False`` exists to test that.
    paths : {"fast", "reference"}
        Which evaluation paths run. ``"fast"`` (the default) uses every fast
        path: the columnar bulk path for quiet lanes (subject to ``bulk``)
        and the per-lane shortcuts for fixes that change nothing but
        liveness. ``"reference"`` sends every message through the state
        machines one by one: slower, and the yardstick the fast path is
        tested against; the records are the same either way.
    spoof_speed_mps : float
        A valid fix whose implied speed from the person's last accepted fix
        (distance less both accuracies, over the time between them, at least
        1 s) exceeds this is *implausible*: it counts only as evidence of a
        violation, never of its absence (it cannot clear an episode or break
        a streak), and implausible fixes that alternate with accepted ones
        raise ``spoofing_suspected`` (docs/rules.md). 100 m/s is beyond any
        person, high-speed rail included.
    spoof_confirm : int
        Implausible fixes of one second stream needed to raise
        ``spoofing_suspected``: each after an accepted fix, each within
        ``streak_gap_ms`` of the one before and plausible from it. A lone
        outlier, or outliers scattered in time and place, raise nothing.
    spoof_reanchor_ms : int
        Implausible fixes that agree with each other, three or more in a row
        with no accepted fix between them and spanning at least this long,
        mean the person really is elsewhere (a flight, a long dead zone): from
        the one that completes the span they are accepted again and become
        the reference.
    """

    lateness_ms: int = 120_000
    default_dwell_s: float = 30.0
    confirm_fixes: int = 2
    contact_max_age_ms: int = 120_000
    separation_m: float = 500.0
    face_match_min_confidence: float = 0.8
    streak_gap_ms: int = 600_000
    camera_accuracy_m: float = 0.0
    camera_quiet_ms: int = 300_000
    battery_clear_pct: float = 30.0
    clock_jump_ms: int = 600_000
    bulk: bool = True
    paths: Literal["fast", "reference"] = "fast"
    spoof_speed_mps: float = 100.0
    spoof_confirm: int = 3
    spoof_reanchor_ms: int = 600_000

    def __post_init__(self) -> None:
        if self.paths not in ("fast", "reference"):
            raise ValidationError(
                "invalid_value", f"engine paths {self.paths!r} is not 'fast' or 'reference'")


@dataclass
class ProcessResult:
    """What :meth:`Engine.process` returns."""

    records: list[AlertRecord] = field(default_factory=list)
    unknown: list[Telemetry] = field(default_factory=list)
    duplicates: int = 0
    late: int = 0
    too_late: int = 0
    ignored: int = 0
    bulk: int = 0  # fixes of quiet lanes applied in bulk (geofence.bulk)


_TS = attrgetter("ts")


_DEV = attrgetter("device_id")


_VALID = attrgetter("valid")


_LON = attrgetter("lon")


_LAT = attrgetter("lat")


_ACC = attrgetter("accuracy_m")


def tune_gc(gen0_threshold: int = 50_000) -> None:
    """Garbage-collector settings for a process that hosts an :class:`Engine`.

    The engine allocates many small, short-lived containers per batch and
    keeps a large, long-lived state; CPython's default generation-0 threshold
    (700) then runs collections so often that they cost as much as the
    evaluation itself (measured in bench/bench_engine.py). This freezes what
    is alive now (zones, orders: they live for the whole run) and raises the
    generation-0 threshold. Call it once after loading, in a process you own
    (``wardstream replay`` does; the stream worker should); a library should
    not call it on its own.
    """
    gc.collect()
    gc.freeze()
    _, g1, g2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, g1, g2)


def batch_watermark(messages: Sequence[Telemetry], quantile: float = 0.99) -> int:
    """A robust event-time watermark for a batch: a high quantile of its ``ts``.

    A quantile rather than the maximum, so that one device with a clock far
    ahead cannot push every other message past the lateness horizon.
    Returns -1 for an empty batch.
    """
    if not messages:
        return -1
    ts = np.array(list(map(_TS, messages)), np.int64)
    if len(ts) < 20:
        return int(ts.max())
    return int(np.quantile(ts, quantile, method="lower"))
