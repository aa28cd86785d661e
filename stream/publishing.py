"""What a worker sends besides re-keyed telemetry: alert records, device
commands (faster reporting during a geofence episode, random check-in
requests) and dead letters.

Every send is remembered in the worker's in-flight list, so the next snapshot
of a partition waits for the acknowledgement of everything derived from the
input it covers (see :mod:`stream.snapshots`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from geofence.model import AlertRecord, DeadLetter, encode, parse_ts
from stream.checkin_requests import command_bodies
from stream.partition import PartitionState
from stream.recovery import PART_HEADER, SRC_HEADER, record_identity
from stream.topics import ALERTS, COMMANDS, DEADLETTER

if TYPE_CHECKING:
    from stream.app import Worker

GEOFENCE_KINDS = frozenset(
    {"exclusion_entered", "exclusion_approach", "inclusion_left", "curfew_violated", "contact"}
)
"""Alert kinds for which the worker asks the person's devices to report faster."""

LIVE_WINDOW_MS = 300_000
"""Only records whose event time is this close to now count as live latency."""


def one_line(exc: BaseException) -> str:
    """An exception as one line of at most 300 characters."""
    text = f"{type(exc).__name__}: {exc}".strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]


def raw_text(value: bytes | None) -> str:
    """A message value as text for a dead letter (at most 4 KiB, undecodable bytes replaced)."""
    return (value or b"")[:4096].decode("utf-8", errors="replace")


async def dead_letter(worker: Worker, letters: Sequence[DeadLetter]) -> None:
    """Send dead letters keyed by their source, counting each by reason."""
    assert worker._producer is not None
    for dl in letters:
        worker.metrics.dead_letters.labels(dl.reason).inc()
        if dl.reason not in ("unknown_device", "misrouted"):
            worker.metrics.fixes_in.labels("rejected").inc()
        else:
            worker.metrics.fixes_in.labels(dl.reason).inc()
        fut = await worker._producer.send(DEADLETTER, encode(dl), key=dl.source.encode())
        worker._inflight.append(fut)


async def publish(worker: Worker, ps: PartitionState, records: Sequence[AlertRecord],
                  src: str) -> None:
    """Send a partition's alert records, except those its restore ledger says are out.

    ``src`` names what produced them (``p@offset``, ``p:clock``, ``p:control``,
    ``p:restore``) in the record's header.
    """
    if not records:
        return
    assert worker._producer is not None
    now_ms = int(time.time() * 1000)
    headers = [(PART_HEADER, str(ps.partition).encode()), (SRC_HEADER, src.encode())]
    for rec in records:
        if ps.ledger is not None and record_identity(rec) in ps.ledger:
            worker.metrics.suppressed.inc()
            continue
        fut = await worker._producer.send(ALERTS, encode(rec),
                                          key=rec.alert.alert_id.encode(), headers=headers)
        fut.add_done_callback(partial(note_alert_offset, worker))
        worker._inflight.append(fut)
        worker.metrics.records_out.labels(rec.event).inc()
        if rec.at is not None and not rec.alert.late:
            with contextlib.suppress(Exception):
                lag_ms = now_ms - parse_ts(rec.at)
                if 0 <= lag_ms <= LIVE_WINDOW_MS:
                    worker.metrics.event_to_alert.labels(rec.event).observe(lag_ms / 1000)
        await send_command(worker, ps, rec)


async def send_command(worker: Worker, ps: PartitionState, rec: AlertRecord) -> None:
    """Ask the person's devices to report faster while a geofence episode is open."""
    assert worker._producer is not None
    alert = rec.alert
    if alert.kind not in GEOFENCE_KINDS or alert.person_id is None:
        return
    if rec.event == "opened":
        command, interval = "pursuit", worker.settings.pursuit_interval_s
    elif rec.event == "cleared":
        command, interval = "normal", worker.settings.normal_interval_s
    else:
        return
    order = ps.orders.get(alert.person_id)
    for device in order.devices if order else ():
        body = {"device_id": device, "command": command, "interval_s": interval,
                "alert_id": alert.alert_id, "at": rec.at}
        fut = await worker._producer.send(COMMANDS, encode(body), key=device.encode())
        worker._inflight.append(fut)


async def send_checkin_requests(worker: Worker, ps: PartitionState, now_ms: int) -> int:
    """Ask the partition's phones for the random check-ins due by ``now_ms``; returns how many
    commands were sent (see :mod:`stream.checkin_requests`)."""
    assert worker._producer is not None
    sent = 0
    for req in ps.requests.due(ps.orders, now_ms):
        for device, body in command_bodies(req):
            fut = await worker._producer.send(COMMANDS, encode(body), key=device.encode())
            worker._inflight.append(fut)
            sent += 1
    if sent:
        worker.metrics.checkin_requests.inc(sent)
    return sent


def note_alert_offset(worker: Worker, fut: asyncio.Future[Any]) -> None:
    """Keep the highest acknowledged offset per alerts partition (for the next snapshot)."""
    if fut.cancelled() or fut.exception() is not None:
        return
    md = fut.result()
    worker._alerts_high[md.partition] = max(worker._alerts_high.get(md.partition, 0),
                                            md.offset + 1)
