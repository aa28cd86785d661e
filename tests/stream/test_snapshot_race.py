"""A record published while a snapshot is being written is not published twice
after a crash.

The worker captures a partition's state under its lock and writes it outside,
while evaluation goes on. The alerts offsets a snapshot notes are where a
restore starts reading what was already published (the ledger that
suppresses repeats). Had they been measured after the capture, records
derived from input after the snapshot could lie below them: a crash, a
restore, the input consumed again, and those records, an ``opened`` among
them, went out a second time (seen after a kill -9 as a ``signal_lost``
re-emitted after its ``cleared``). Here the window is held open on purpose
(Kafka is real), the worker is stopped as a kill would stop it, and a second
worker takes over.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import scenario
from streamkit import alert_records, caught_up, produce, test_settings, wait_for

from geofence.model import Fix
from stream.app import Worker
from stream.errors import StreamError
from stream.keying import Router


async def test_records_published_during_a_snapshot_write_are_not_repeated_on_restore(
        broker: str) -> None:
    orders = scenario.orders()
    msgs = scenario.messages()
    cut = len(msgs) // 5
    a, b = msgs[:cut], msgs[cut:]
    p = Router.build(orders, 4).partition_of_message(Fix(device_id="WB-P1", ts=0, lat=0, lon=0))
    settings = test_settings(snapshot_interval_s=0.5)
    w1 = Worker(broker, scenario.zones(), orders, settings)
    await w1.start()
    gate, held = asyncio.Event(), asyncio.Event()
    try:
        await wait_for(w1.is_ready, 30)
        await produce(broker, orders, a, per_envelope=20)
        await wait_for(lambda: caught_up(w1), 30)
        await wait_for(lambda: not any(ps.dirty or ps.writing for ps in w1._parts.values()), 20)
        before = len(await alert_records(broker, settle_s=0.5))

        assert w1._reader is not None and w1._consumer is not None
        ends, commit = w1._reader.end_offsets, w1._consumer.commit

        async def held_ends(*args: Any, **kw: Any) -> Any:
            if not held.is_set():
                held.set()
                await gate.wait()
            return await ends(*args, **kw)

        async def commit_then_die(*args: Any, **kw: Any) -> Any:
            out = await commit(*args, **kw)
            if gate.is_set():  # the snapshot taken across the window is on Kafka: kill
                w1._fail(StreamError("killed"))
            return out

        w1._reader.end_offsets = held_ends  # type: ignore[method-assign]
        w1._consumer.commit = commit_then_die  # type: ignore[method-assign]
        w1._parts[p].dirty = True  # a snapshot of partition p is due now
        await wait_for(held.is_set, 10)
        # the window is open: more input is evaluated and its records published
        await produce(broker, orders, b, per_envelope=20)
        await wait_for(lambda: caught_up(w1), 30)
        await asyncio.sleep(1.0)  # their acks
        assert len(await alert_records(broker, settle_s=0.5)) > before
        gate.set()
        await wait_for(lambda: w1._fatal is not None, 20)
    finally:
        gate.set()
        await w1.stop()  # after _fail: no goodbye snapshot, no commit, as after kill -9

    w2 = Worker(broker, scenario.zones(), orders, settings)
    await w2.start()
    try:
        await wait_for(lambda: caught_up(w2), 40)
        await asyncio.sleep(1.0)
    finally:
        await w2.stop()
    records = await alert_records(broker)
    opened = collections.Counter(r.alert.alert_id for r in records if r.event == "opened")
    twice = [alert_id for alert_id, n in opened.items() if n > 1]
    assert opened and not twice, twice
