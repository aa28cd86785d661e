"""What a stream worker holds for each telemetry partition it owns."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from geofence.engine import Engine
from geofence.model import Order
from stream.checkin_requests import RequestClock
from stream.repartition import SeenOrigins


@dataclass
class PartitionState:
    """Everything a worker holds for one telemetry partition."""

    partition: int
    engine: Engine
    orders: dict[str, Order]
    next_offset: int
    watermark: int | None = None
    max_ts: int | None = None
    seq: int = 0
    alerts_low: dict[int, int] = field(default_factory=dict)
    ledger: set[tuple[str, str, str]] | None = None
    ledger_until: int | None = None
    last_input: float = field(default_factory=time.monotonic)
    last_snapshot: float = field(default_factory=time.monotonic)
    dirty: bool = False
    writing: bool = False
    seen: SeenOrigins = field(default_factory=SeenOrigins)
    requests: RequestClock = field(default_factory=RequestClock)
    """Random check-in requests of the partition's persons sent so far (not snapshotted:
    a new owner resends those still open)."""

