"""Hot reload: order and zone changes from the control topics, applied live.

Every worker reads the control topics whole (:mod:`stream.control`). A change
updates the worker-wide orders and zones, rebuilds the router, and brings each
owned partition's engine in line; rejected zone features are dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from aiokafka.errors import KafkaError

from geofence.model import AlertRecord, DeadLetter, encode, format_ts
from stream.control import ControlChanges
from stream.keying import Router
from stream.partition import PartitionState
from stream.publishing import dead_letter, publish

if TYPE_CHECKING:
    from stream.app import Worker

log = logging.getLogger(__name__)


async def control_loop(worker: Worker) -> None:
    """Apply control-topic changes as they arrive, under the worker's lock."""
    assert worker._control is not None
    while not worker._stopping.is_set():
        try:
            changes = await worker._control.poll(timeout_ms=200)
        except KafkaError:
            log.exception("control topic read failed; retrying")
            await asyncio.sleep(0.5)
            continue
        if not changes:
            continue
        async with worker._lock:
            try:
                await worker.apply_control(changes)
            except KafkaError:
                raise
            except Exception:  # the changes that could be applied stand
                log.exception("applying control changes failed")


def apply_changes_to_catalogue(worker: Worker, changes: ControlChanges) -> bool:
    """Apply control changes to the worker-wide orders and zones; True if zones changed."""
    for person, order in changes.orders.items():
        if order is None:
            worker.orders.pop(person, None)
            worker.metrics.control_updates.labels("orders", "removed").inc()
        else:
            worker.orders[person] = order
            worker.metrics.control_updates.labels("orders", "upserted").inc()
    if not changes.zones:
        return False
    removed = [z for z, f in changes.zones.items() if f is None and z in worker.zones]
    features = [f for f in changes.zones.values() if f is not None]
    zones = worker.zones
    if removed:
        zones = zones.without(removed)
        worker.metrics.control_updates.labels("zones", "removed").inc(len(removed))
    if features:
        try:
            zones = zones.updated(features)
        except Exception as exc:
            good = []
            for f in features:
                try:
                    zones.updated([f])
                    good.append(f)
                except Exception as one:
                    changes.rejected.append((getattr(one, "reason", "invalid_zone"),
                                             str(one), encode(f).decode()[:4096],
                                             f"zones:{f.get('id')}"))
            log.warning("some zone updates were rejected: %s", exc)
            zones = zones.updated(good) if good else zones
        worker.metrics.control_updates.labels("zones", "upserted").inc(len(features))
    worker.zones = zones
    return True


async def dead_letter_control(worker: Worker, changes: ControlChanges) -> None:
    """Dead-letter the control records a change set rejected."""
    at = format_ts(int(time.time() * 1000))
    await dead_letter(worker, [DeadLetter(reason, raw, source, detail, at)
                               for reason, detail, raw, source in changes.rejected])


async def apply_control(worker: Worker, changes: ControlChanges) -> None:
    """Apply order and zone changes to every partition engine this worker owns."""
    zones_changed = apply_changes_to_catalogue(worker, changes)
    await dead_letter_control(worker, changes)
    worker.router = Router.build(worker.orders.values(), worker.partitions)
    for ps in worker._parts.values():
        records: list[AlertRecord] = []
        if zones_changed:
            try:
                records.extend(ps.engine.set_zones(worker.zones))
            except Exception:
                log.exception("partition %d: zone update could not be applied",
                              ps.partition)
        records.extend(sync_orders(worker, ps, worker.router))
        if records:
            ps.dirty = True
        await publish(worker, ps, records, f"{ps.partition}:control")


def sync_orders(worker: Worker, ps: PartitionState, router: Router) -> list[AlertRecord]:
    """Bring one engine's orders in line with the router's share for its partition."""
    wanted = {o.person_id: o for o in router.orders_for(ps.partition)}
    records: list[AlertRecord] = []
    for person in [p for p in ps.orders if p not in wanted]:
        reason = "order_removed" if person not in worker.orders else "repartitioned"
        records.extend(ps.engine.remove_order(person, reason))
        del ps.orders[person]
    for person, order in wanted.items():
        if ps.orders.get(person) != order:
            try:
                records.extend(ps.engine.upsert_order(order))
            except Exception:  # one bad order must not stop the others
                log.exception("partition %d: order of %s could not be applied",
                              ps.partition, person)
                continue
            ps.orders[person] = order
    ps.requests.orders_changed()
    return records
