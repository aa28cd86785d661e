"""a burst of 1,000 malformed messages lands in the
dead-letter topic with reasons and source partition/offset while valid
traffic keeps flowing (its alerts still equal replay's)."""

from __future__ import annotations

import collections
import json
import re

import aiohttp
import scenario
from streamkit import (
    alert_records,
    caught_up,
    dead_letter_values,
    produce,
    produce_raw,
    test_settings,
    wait_for,
)

from geofence.engine import fold_records, replay_lines
from geofence.model import Fix, encode
from stream.app import Worker

MAX_BATCH = 50


def _bad(i: int) -> tuple[bytes | None, str]:
    ts = scenario.T0 + 1000
    kind = i % 7
    if kind == 0:
        return b'{"kind": "fix", "device_id": "WB-P1", "ts": ', "malformed_json"
    if kind == 1 and (i // 7) % 2:  # a phone check-in that carries no result
        return json.dumps({"kind": "checkin", "device_id": "WB-P1", "ts": ts, "lat": 32.05,
                           "lon": 118.79, "method": "face"}).encode(), "missing_field"
    if kind == 1:
        return json.dumps({"kind": "fix", "device_id": "WB-P1", "ts": ts}).encode(), "missing_field"
    if kind == 2:
        return encode(Fix(device_id=f"GHOST-{i}", ts=ts, lat=32.0, lon=118.0)), "unknown_device"
    if kind == 3:
        big = [Fix(device_id="WB-P7", ts=ts + k, lat=32.0, lon=118.0) for k in range(MAX_BATCH + 1)]
        return encode(big), "batch_too_large"
    if kind == 4:
        return (b'{"kind": "fix", "device_id": "WB-P1", "ts": 1, "lat": NaN, "lon": 1}',
                "non_finite_number")
    if kind == 5:
        return json.dumps({"kind": "teleport", "device_id": "WB-P1", "ts": ts}).encode(), \
            "unknown_kind"
    return None, "empty_payload"


async def test_thousand_malformed_messages_are_dead_lettered_while_valid_traffic_flows(
        broker: str) -> None:
    orders = scenario.orders()
    worker = Worker(broker, scenario.zones(), orders, test_settings(max_batch=MAX_BATCH),
                    web_port=0)
    await worker.start()
    try:
        await wait_for(worker.is_ready, 30)
        msgs = scenario.messages()
        expected_reasons: collections.Counter[str] = collections.Counter()
        step = len(msgs) // 10
        for burst in range(10):
            await produce(worker.bootstrap, orders, msgs[burst * step:(burst + 1) * step],
                          per_envelope=40)
            for part in range(4):
                bad = [_bad(burst * 100 + part * 25 + k) for k in range(25)]
                expected_reasons.update(r for _, r in bad)
                await produce_raw(broker, [v for v, _ in bad], part)
        await produce(worker.bootstrap, orders, msgs[10 * step:], per_envelope=40)
        await produce(worker.bootstrap, orders, scenario.final_heartbeats())
        await wait_for(lambda: caught_up(worker), 60)
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{worker.web_port}/metrics") as resp:
            assert resp.status == 200
            exposition = await resp.text()
    finally:
        await worker.stop()
    # counted in Prometheus, on the worker's web port
    for reason, n in expected_reasons.items():
        assert f'wardstream_worker_dead_letters_total{{reason="{reason}"}} {float(n)}' \
            in exposition
    for name in ("wardstream_worker_fixes_in_total{result=\"evaluated\"}",
                 "wardstream_worker_batch_size_bucket", "wardstream_worker_eval_seconds_bucket",
                 "wardstream_worker_consumer_lag{partition=\"0\"}",
                 "wardstream_worker_alert_records_total{event=\"opened\"}"):
        assert name in exposition

    letters = await dead_letter_values(broker)
    assert len(letters) == 1000
    assert collections.Counter(d["reason"] for d in letters) == expected_reasons
    sources = [d["source"] for d in letters]
    assert all(re.fullmatch(r"telemetry:[0-3]@\d+", s) for s in sources)
    assert len(set(sources)) == 1000  # one per message, each with its own partition/offset
    assert all(d["detail"] for d in letters)
    no_result = [d for d in letters if '"checkin"' in d["raw"]]
    assert len(no_result) >= 50 and all(d["reason"] == "missing_field"
                                        and "face_score" in d["detail"] for d in no_result)
    metric = worker.metrics.dead_letters
    assert {r: metric.labels(r)._value.get() for r in expected_reasons} == dict(expected_reasons)

    # the valid traffic was evaluated exactly as replay evaluates it
    expected, _ = replay_lines(scenario.as_lines(msgs + scenario.final_heartbeats()),
                               scenario.zones(), orders)
    got, _ = fold_records(await alert_records(broker))
    assert [a.alert_id for a in got] == [a.alert_id for a in expected]
    assert got == expected
