"""Hostile telemetry never stops the worker (real broker, real worker).

Each input below once made the worker exit, and because its offset was never
committed, every restart died on it again. Now each is dead-lettered with its
reason (or counted where it belongs), the partition goes on, and the
worker's input counters add up to exactly what came in.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import scenario
from streamkit import (
    caught_up,
    dead_letter_values,
    produce,
    produce_raw,
    test_settings,
    wait_for,
)

from geofence.model import Fix, encode
from stream import app as app_module
from stream.app import Worker
from stream.keying import Router

RESULTS = ("evaluated", "duplicate", "late", "too_late", "ignored", "rejected",
           "unknown_device", "misrouted")


def counts(worker: Worker) -> dict[str, float]:
    reg = worker.metrics.registry
    return {r: reg.get_sample_value("wardstream_worker_fixes_in_total", {"result": r}) or 0.0
            for r in RESULTS}


def alive(worker: Worker) -> bool:
    return worker._fatal is None and all(not t.done() for t in worker._tasks)


def fix(ts: int, device: str = "WB-P7") -> Fix:
    return Fix(device_id=device, ts=ts, lat=32.05, lon=118.79)


def partition_of(device: str) -> int:
    router = Router.build(scenario.orders(), 4)
    return router.partition_of_message(fix(0, device))


async def run(broker: str, feed: Any) -> tuple[Worker, dict[str, float]]:
    orders = scenario.orders()
    worker = Worker(broker, scenario.zones(), orders, test_settings())
    await worker.start()
    try:
        await wait_for(worker.is_ready, 30)
        await feed(orders, worker)
        await wait_for(lambda: caught_up(worker) or not alive(worker), 30)
        assert alive(worker), worker._fatal
        return worker, counts(worker)
    finally:
        await worker.stop()


async def test_a_late_batch_with_duplicates_is_counted_once_each(broker: str) -> None:
    now = int(time.time() * 1000)
    hour_ago = now - 3_600_000

    async def feed(orders: Any, worker: Worker) -> None:
        # a live fix, then a backfill an hour old: every member beyond the
        # lateness horizon, one item repeated (a JT/T 808 0x0704 with a repeat)
        await produce(broker, orders, [fix(now)])
        await produce(broker, orders, [fix(hour_ago), fix(hour_ago + 1000), fix(hour_ago),
                                       fix(hour_ago)], per_envelope=10)
        # and the same again one message per record
        for m in [fix(hour_ago + 5000)] * 3:
            await produce(broker, orders, [m])

    _, c = await run(broker, feed)
    assert sum(c.values()) == 8
    assert c["duplicate"] == 4 and c["late"] == 3 and c["evaluated"] == 1, c


async def test_future_fix_then_identical_ones_is_a_dead_letter_and_no_stop(broker: str) -> None:
    now = int(time.time() * 1000)

    async def feed(orders: Any, worker: Worker) -> None:
        # one fix dated 23 h ahead, then four identical ones (as an OsmAnd client sends)
        await produce(broker, orders, [fix(now + 23 * 3_600_000)])
        for _ in range(4):
            await produce(broker, orders, [fix(now)])

    worker, c = await run(broker, feed)
    assert sum(c.values()) == 5
    assert c["rejected"] == 1 and c["duplicate"] == 3 and c["evaluated"] == 1, c
    letters = await dead_letter_values(broker)
    assert [d["reason"] for d in letters] == ["future_timestamp"]
    assert "ahead of its arrival" in letters[0]["detail"]
    # the future fix moved no clock: the partition's event time is not ahead of now
    part = worker._parts.get(partition_of("WB-P7"))
    assert part is not None and part.max_ts is not None
    assert part.max_ts <= int(time.time() * 1000)


async def test_deep_nan_and_malformed_records_are_dead_lettered(broker: str) -> None:
    base = scenario.T0
    good = [encode(fix(base + i * 1000)) for i in range(60)]
    nan = b'{"kind": "fix", "device_id": "WB-P7", "ts": 1795181400000, "lat": NaN, "lon": 1}'
    envelope = b"[" + b",".join([*good[:30], nan, *good[30:]]) + b"]"
    deep = b'[{"kind": "fix", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}]"
    part = partition_of("WB-P7")

    async def feed(orders: Any, worker: Worker) -> None:
        await produce_raw(broker, [b"[" * 100_000, deep, envelope], part)

    _, c = await run(broker, feed)
    letters = await dead_letter_values(broker)
    assert sorted(d["reason"] for d in letters) == ["non_finite_number", "too_deep", "too_deep"]
    nan_letter = next(d for d in letters if d["reason"] == "non_finite_number")
    assert nan_letter["source"].endswith("[30]")
    assert c["evaluated"] == 60 and sum(c.values()) == 63, c


async def test_an_exception_on_one_input_dead_letters_it_and_the_partition_goes_on(
        broker: str, monkeypatch: pytest.MonkeyPatch) -> None:
    original = app_module.TelemetryDecoder.decode
    original_wm = app_module.batch_watermark

    def decode(self: Any, payload: Any, arrival_ms: Any = None) -> Any:
        if b"explode" in payload:
            raise RuntimeError("decoder blew up\nsecond line")
        return original(self, payload, arrival_ms)

    def watermark(batch: Any) -> int:
        if any(getattr(m, "ts", 0) == scenario.T0 + 777 for m in batch):
            raise ValueError("watermark blew up")
        return original_wm(batch)

    monkeypatch.setattr(app_module.TelemetryDecoder, "decode", decode)
    monkeypatch.setattr(app_module, "batch_watermark", watermark)
    part = partition_of("WB-P7")
    poison = json.dumps({"kind": "fix", "device_id": "WB-P7", "ts": scenario.T0,
                         "lat": 32.0, "lon": 118.0, "note": "explode"}).encode()

    async def feed(orders: Any, worker: Worker) -> None:
        await produce_raw(broker, [poison], part)
        await produce_raw(broker, [encode(fix(scenario.T0 + 777))], part)
        await wait_for(lambda: caught_up(worker), 30)
        await produce_raw(broker, [encode(fix(scenario.T0 + 2000))], part)

    _, c = await run(broker, feed)
    letters = await dead_letter_values(broker)
    internal = [d for d in letters if d["reason"] == "internal_error"]
    assert "RuntimeError: decoder blew up" in {d["detail"] for d in internal}
    assert any(d["detail"] == "ValueError: watermark blew up" for d in internal)
    assert all(d["source"].startswith(f"telemetry:{part}@") for d in internal)
    assert c["evaluated"] == 1, c
