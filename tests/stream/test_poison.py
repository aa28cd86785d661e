"""A message the engine cannot evaluate never blocks its partition.

The engine is made to fail (injected; Kafka is real) on one message in the
middle of the stream: the worker dead-letters exactly that message with
reason ``processing_error`` and its source, and everything else is
evaluated as replay evaluates it.
"""

from __future__ import annotations

from typing import Any

import pytest
import scenario
from streamkit import (
    alert_records,
    caught_up,
    dead_letter_values,
    produce,
    test_settings,
    wait_for,
)

from geofence import engine as engine_module
from geofence.engine import fold_records, replay_lines
from geofence.model import DeviceEvent
from stream.app import Worker


async def test_engine_failure_on_one_message_dead_letters_it_and_goes_on(
        broker: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    original = engine_module.Engine.process

    def process(self: Any, messages: Any) -> Any:
        if any(isinstance(m, DeviceEvent) and m.detail == "poison" for m in messages):
            raise RuntimeError("injected engine failure")
        return original(self, messages)

    monkeypatch.setattr(engine_module.Engine, "process", process)
    msgs = scenario.messages()
    poison = DeviceEvent(device_id="WB-P7", ts=scenario.T0 + 3_000_000, event="vibration",
                         detail="poison")
    mixed = sorted([*msgs, poison], key=lambda m: m.ts)
    orders = scenario.orders()
    worker = Worker(broker, scenario.zones(), orders, test_settings())
    await worker.start()
    try:
        await wait_for(worker.is_ready, 30)
        await produce(broker, orders, mixed, per_envelope=40)
        await produce(broker, orders, scenario.final_heartbeats())
        await wait_for(lambda: caught_up(worker), 30)
    finally:
        await worker.stop()
    # the batch that held the poison fell back to one message at a time:
    # counted, and logged with the persons it concerned (P7 wears WB-P7)
    fallbacks = worker.metrics.registry.get_sample_value("wardstream_worker_batch_fallbacks_total")
    assert fallbacks == 1
    lines = [r.getMessage() for r in caplog.records if "one message at a time" in r.getMessage()]
    assert len(lines) == 1 and "P7" in lines[0].split("persons")[1]
    letters = await dead_letter_values(broker)
    assert [d["reason"] for d in letters] == ["processing_error"]
    assert '"poison"' in letters[0]["raw"] and letters[0]["source"].startswith("telemetry:")
    expected, _ = replay_lines(scenario.as_lines(msgs + scenario.final_heartbeats()),
                               scenario.zones(), orders)
    got, _ = fold_records(await alert_records(broker))
    assert got == expected
