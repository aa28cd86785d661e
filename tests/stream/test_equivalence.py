"""The stream equals replay, on the real embedded broker.

A scenario with every rule type (phone check-ins included, from a phone that
never sends anything too), sent through
Kafka as batched envelopes and evaluated by a worker, yields exactly the
alerts ``replay_lines`` yields for the same input: same alert ids, same
final states.
The same input delivered out of order within the lateness horizon yields
the same alerts again.
"""

from __future__ import annotations

import collections
import json

import scenario
from streamkit import alert_records, caught_up, produce, read_topic, test_settings, wait_for

from geofence.engine import fold_records, replay_lines
from stream.app import Worker
from stream.topics import COMMANDS


def _expected(casework: bool = False) -> list:
    msgs = (scenario.messages(checkins=True, casework=casework)
            + scenario.final_heartbeats(checkins=True, casework=casework))
    alerts, _ = replay_lines(scenario.as_lines(msgs), scenario.zones(),
                             scenario.orders(checkins=True, casework=casework))
    return alerts


async def _run(bootstrap: str, msgs: list, casework: bool = False) -> list:
    orders = scenario.orders(checkins=True, casework=casework)
    worker = Worker(bootstrap, scenario.zones(), orders, test_settings())
    await worker.start()
    try:
        await wait_for(worker.is_ready, 30)
        # in slices, so the worker sees many batches and advances its watermark as it goes
        for i in range(0, len(msgs), 200):
            await produce(bootstrap, orders, msgs[i:i + 200], per_envelope=40)
        await wait_for(lambda: caught_up(worker), 30)
        await produce(bootstrap, orders,
                      scenario.final_heartbeats(checkins=True, casework=casework))
        await wait_for(lambda: caught_up(worker), 30)
    finally:
        await worker.stop()
    return await alert_records(bootstrap)


def _summary(alerts: list) -> list[tuple]:
    return [(a.alert_id, a.kind, a.status, a.opened_at, a.cleared_at, a.reason) for a in alerts]


async def test_stream_equals_replay_for_every_rule_type(broker: str) -> None:
    expected = _expected()
    kinds = {a.kind for a in expected}
    # the scenario really covers every rule family
    assert {"exclusion_entered", "exclusion_approach", "inclusion_left", "curfew_violated",
            "contact", "signal_lost", "tamper", "removed", "sos", "power_off", "battery_low",
            "device_separation", "video_fight", "checkin_missed", "checkin_failed",
            "checkin_outside"} <= kinds

    # a phone that sends nothing under an order with valid_from: its misses
    # come from the deadline timers alone, in replay and in the stream
    assert not [m for m in scenario.messages(checkins=True) + scenario.final_heartbeats(True)
                if getattr(m, "device_id", None) == "PH-P10"]
    silent = [(a.kind, a.status) for a in expected if a.person_id == "P10"]
    assert silent == [("checkin_missed", "open")]

    records = await _run(broker, scenario.messages(checkins=True))
    got, _ = fold_records(records)
    assert _summary(got) == _summary(expected)
    assert [a for a in got] == [a for a in expected]
    opened = collections.Counter(r.alert.alert_id for r in records if r.event == "opened")
    assert all(n == 1 for n in opened.values())

    # pursuit mode: a geofence episode asks the person's devices to report faster
    commands = [json.loads(r.value) for r in await read_topic(broker, COMMANDS, 0.5)]
    entered = next(a for a in expected if a.kind == "exclusion_entered")
    mine = [c for c in commands if c["alert_id"] == entered.alert_id]
    assert [(c["device_id"], c["command"]) for c in mine] == [("WB-P1", "pursuit"),
                                                               ("WB-P1", "normal")]
    assert not [c for c in commands if c["device_id"] == "WB-P7"]  # device alerts: no pursuit


async def test_stream_equals_replay_with_schedules_leave_a_term_and_a_category(broker: str) -> None:
    expected = _expected(casework=True)
    seen = {(a.kind, a.reason) for a in expected if a.person_id in ("P11", "P12", "P13")}
    # the casework persons really cross every transition
    assert {("exclusion_entered", "window_ended"), ("inclusion_left", "exempted"),
            ("leave_overdue", None), ("inclusion_left", "positioning_ended")} <= seen
    # the category rule names the venue entered, never the next county's
    venues = [(a.kind, a.zone) for a in expected if a.person_id == "P14"]
    assert venues == [("exclusion_entered", "club"), ("exclusion_entered", "bar")], venues
    records = await _run(broker, scenario.messages(checkins=True, casework=True), casework=True)
    got, _ = fold_records(records)
    assert _summary(got) == _summary(expected)
    assert [a for a in got] == [a for a in expected]


async def test_out_of_order_within_lateness_changes_nothing(broker: str) -> None:
    expected = _expected()
    msgs = scenario.shuffled_within(scenario.messages(checkins=True), window_ms=90_000)
    assert msgs != scenario.messages(checkins=True)
    records = await _run(broker, msgs)
    got, _ = fold_records(records)
    assert _summary(got) == _summary(expected)
    opened = collections.Counter(r.alert.alert_id for r in records if r.event == "opened")
    assert all(n == 1 for n in opened.values())
