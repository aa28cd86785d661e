"""Random check-in requests on ``wardstream.commands``, from real workers through a real broker.

The workers' wall clock is driven by the test: it advances in uneven steps
over a day, and what reached the commands topic is compared, record for
record, with the schedule of :func:`geofence.checkin.owed_between`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import scenario
from streamkit import read_topic, test_settings, wait_for

from geofence.checkin import Owed, owed_between
from geofence.model import Order, format_ts, parse_orders, parse_ts
from stream.app import Worker
from stream.checkin_requests import RequestClock, random_rule
from stream.topics import COMMANDS

T0 = parse_ts("2026-11-22T06:10:00+08:00")  # a Sunday
HOUR = 3_600_000


def orders() -> list[Order]:
    def checkin(random: dict[str, object] | None, windows: bool = False) -> dict[str, object]:
        rule: dict[str, object] = {"id": "c1", "type": "checkin"}
        if random is not None:
            rule["random"] = random
        if windows:
            rule["windows"] = [{"days": "daily", "start": "08:00", "end": "10:00"}]
        return rule

    return parse_orders(json.dumps([
        # a phone and a wristband: each device gets the request
        {"person_id": "P-0900", "devices": ["PH-0900", "WB-0900"], "jurisdiction": "320102",
         "rules": [{"id": "r1", "type": "inclusion", "zone": "320102"},
                   checkin({"per_day": 4, "start": "06:00", "end": "20:00",
                            "answer_within_s": 900}, windows=True)]},
        # many requests close together, some open when the workers start
        {"person_id": "P-0901", "devices": ["PH-0901"], "jurisdiction": "320102",
         "rules": [checkin({"per_day": 12, "start": "06:00", "end": "07:00",
                            "answer_within_s": 1800})]},
        # weekdays only: nothing on this Sunday, the Monday requests after midnight
        {"person_id": "P-0902", "devices": ["PH-0902"], "jurisdiction": "320102",
         "rules": [checkin({"per_day": 3, "start": "00:00", "end": "03:00",
                            "days": "mon,tue,wed,thu,fri"})]},
        # the order ends at noon: no request after it
        {"person_id": "P-0903", "devices": ["PH-0903"], "jurisdiction": "320102",
         "valid_until": "2026-11-22T12:00:00+08:00",
         "rules": [checkin({"per_day": 10, "start": "06:00", "end": "18:00"})]},
        # requests answered within a minute: some open and expire while no worker runs
        {"person_id": "P-0905", "devices": ["PH-0905"], "jurisdiction": "320102",
         "rules": [checkin({"per_day": 8, "start": "06:30", "end": "06:45",
                            "answer_within_s": 60})]},
        # scheduled windows only: nothing is requested
        {"person_id": "P-0904", "devices": ["PH-0904"], "jurisdiction": "320102",
         "rules": [checkin(None, windows=True)]},
        *[{"person_id": f"P-{n:04d}", "devices": [f"PH-{n:04d}"], "jurisdiction": "320102",
           "rules": [checkin({"per_day": 5, "start": "06:00", "end": "23:00"})]}
          for n in range(910, 930)],
    ]))


def expected(orders: Iterable[Order], start_ms: int, end_ms: int) -> list[tuple[str, dict[str, str]]]:
    """What a worker starting at ``start_ms`` and ticking to ``end_ms`` must send:
    every request open at ``start_ms`` and every one opening in ``(start_ms, end_ms]``."""
    out = []
    for o in orders:
        rule = random_rule(o)
        if rule is None:
            continue
        owed: list[Owed] = owed_between(o.person_id, rule, o.timezone, start_ms, end_ms + 1)
        for w in owed:
            if w.requested and w.opens_ms <= end_ms and o.active_at(w.opens_ms):
                for dev in o.devices:
                    out.append((dev, {"device_id": dev, "command": "checkin_request",
                                      "request_id": w.key, "at": format_ts(w.opens_ms),
                                      "due": format_ts(w.due_ms), "person_id": o.person_id}))
    return sorted(out, key=lambda r: (r[0], r[1]["at"], r[1]["request_id"]))


async def commands(broker: str) -> list[tuple[str, dict[str, str]]]:
    """(key, body) of every command, each device's in the order they were sent."""
    return [(r.key.decode(), json.loads(r.value)) for r in await read_topic(broker, COMMANDS)]


def after(records: list[tuple[str, dict[str, str]]], earlier: list[tuple[str, dict[str, str]]]
          ) -> list[tuple[str, dict[str, str]]]:
    """``records`` without each device's first commands, as many as it has in ``earlier``."""
    left = {dev: sum(1 for d, _ in earlier if d == dev) for dev, _ in earlier}
    out = []
    for dev, body in records:
        if left.get(dev, 0):
            left[dev] -= 1
        else:
            out.append((dev, body))
    return out


def by_device(records: list[tuple[str, dict[str, str]]]) -> list[tuple[str, dict[str, str]]]:
    """Records sorted by device, keeping each device's order on the topic."""
    return sorted(records, key=lambda r: r[0])


async def run_to(workers: list[Worker], clock: dict[str, int], steps: Iterable[int]) -> None:
    """Advance the clock step by step, each time until every partition has ticked past it."""
    for t in steps:
        clock["now"] = t
        await wait_for(lambda t=t: sum(len(w._parts) for w in workers) == 4 and all(
            ps.requests.mark == t for w in workers for ps in w._parts.values()), 30)


async def start_worker(broker: str, os: list[Order], clock: dict[str, int]) -> Worker:
    w = Worker(broker, scenario.zones(), os, test_settings())
    w.clock = lambda: clock["now"]
    await w.start()
    return w


async def test_requests_follow_the_schedule_exactly(broker: str):
    os = orders()
    clock = {"now": T0}
    worker = await start_worker(broker, os, clock)
    try:
        steps = [T0, T0 + 1, T0 + 37 * 60_000, T0 + 2 * HOUR + 1, T0 + 2 * HOUR + 2,
                 T0 + 7 * HOUR, T0 + 9 * HOUR + 13_000, T0 + 20 * HOUR]
        await run_to([worker], clock, steps)
    finally:
        await worker.stop()
    got = await commands(broker)
    want = expected(os, T0, T0 + 20 * HOUR)
    assert by_device(got) == want
    # the schedule has what the test means it to have
    persons = {b["person_id"] for _, b in want}
    assert {"P-0900", "P-0901", "P-0902", "P-0903"} <= persons and "P-0904" not in persons
    assert any(b["person_id"] == "P-0902" and b["at"] > "2026-11-22T16:00:00Z" for _, b in want)
    assert max(b["at"] for _, b in want if b["person_id"] == "P-0903") < "2026-11-22T04:00:00Z"
    assert any(parse_ts(b["at"]) < T0 for _, b in want)  # open when the worker started
    assert any(dev == "WB-0900" for dev, _ in want)  # each of the person's devices is asked
    assert worker.metrics.checkin_requests._value.get() == len(want)


async def test_a_restarted_worker_resends_what_is_still_open_and_skips_nothing_due(broker: str):
    os = orders()
    clock = {"now": T0}
    first = await start_worker(broker, os, clock)
    try:
        await run_to([first], clock, [T0, T0 + 20 * 60_000])
    finally:
        await first.stop()
    before = await commands(broker)
    assert by_device(before) == expected(os, T0, T0 + 20 * 60_000)
    # down for 25 minutes: requests that opened and expired meanwhile are not sent,
    # those still open are (again, if the first worker sent them)
    restart = T0 + 45 * 60_000
    clock["now"] = restart
    second = await start_worker(broker, os, clock)
    try:
        await run_to([second], clock, [restart, restart + 3 * HOUR])
    finally:
        await second.stop()
    later = after(await commands(broker), before)
    assert by_device(later) == expected(os, restart, restart + 3 * HOUR)
    resent = {b["request_id"] for _, b in before} & {b["request_id"] for _, b in later}
    assert resent  # an open request is sent again, under the same request_id
    sent = {b["request_id"] for _, b in before + later}
    expired_while_down = 0
    for o in os:
        rule = random_rule(o)
        if rule is None:
            continue
        for w in owed_between(o.person_id, rule, o.timezone, T0, restart + 3 * HOUR + 1):
            if w.requested and o.active_at(w.opens_ms) and w.opens_ms <= restart + 3 * HOUR:
                missed_while_down = w.opens_ms > T0 + 20 * 60_000 and w.due_ms < restart
                assert (w.key in sent) != missed_while_down, w
                expired_while_down += missed_while_down
    assert expired_while_down  # the schedule has such a request


def test_a_clock_that_ticks_rarely_or_backwards_skips_nothing():
    os = {o.person_id: o for o in orders()}
    clock = RequestClock(plan_ms=HOUR)
    ticks = [T0, T0 + 1, T0 + 5 * HOUR, T0 + 5 * HOUR - 1, T0 + 5 * HOUR + 59_999,
             T0 + 30 * HOUR]
    got = []
    for t in ticks:
        got += [(r.owed.key, r.owed.opens_ms) for r in clock.due(os, t)]
    keys = [k for k, _ in got]
    assert len(keys) == len(set(keys))
    want = {b["request_id"] for _, b in expected(os.values(), T0, T0 + 30 * HOUR)}
    assert set(keys) == want
    # an order changed between ticks is planned again from the mark
    changed = dict(os)
    del changed["P-0901"]
    clock2 = RequestClock()
    first = {r.owed.key for r in clock2.due(os, T0)}
    clock2.orders_changed()  # what a hot reload of the partition's orders calls
    rest = {r.owed.key for r in clock2.due(changed, T0 + 10 * HOUR)}
    assert first | rest == ({b["request_id"] for _, b in expected(os.values(), T0, T0)}
                            | {b["request_id"] for _, b in expected(changed.values(), T0,
                                                                     T0 + 10 * HOUR)})


async def test_an_order_added_or_withdrawn_live_changes_what_is_requested(broker: str):
    from aiokafka import AIOKafkaProducer

    from stream.topics import ORDERS

    os = orders()
    clock = {"now": T0}
    worker = await start_worker(broker, os, clock)
    new = {"person_id": "P-0950", "devices": ["PH-0950"], "jurisdiction": "320102",
           "rules": [{"id": "c1", "type": "checkin",
                      "random": {"per_day": 6, "start": "07:00", "end": "09:00"}}]}
    added = parse_orders(json.dumps([new]))[0]
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        await run_to([worker], clock, [T0, T0 + HOUR])
        # P-0950 arrives, P-0901 is withdrawn (a tombstone), an hour later
        await producer.send_and_wait(ORDERS, json.dumps(new).encode(), key=b"P-0950")
        await producer.send_and_wait(ORDERS, None, key=b"P-0901")
        await wait_for(lambda: any("P-0950" in ps.orders for ps in worker._parts.values())
                       and all("P-0901" not in ps.orders for ps in worker._parts.values()), 10)
        await run_to([worker], clock, [T0 + HOUR + 1, T0 + 4 * HOUR])
    finally:
        await producer.stop()
        await worker.stop()
    got = await commands(broker)
    kept = [o for o in os if o.person_id != "P-0901"]
    reload = T0 + HOUR
    before = expected(os, T0, reload)
    # the new order's requests still open when it arrived are sent at the next tick
    caught = [r for r in expected([added], reload + 1, reload + 1)
              if parse_ts(r[1]["at"]) <= reload]
    after = [r for r in expected([*kept, added], reload, T0 + 4 * HOUR)
             if parse_ts(r[1]["at"]) > reload]
    assert caught and any(b["person_id"] == "P-0950" for _, b in after)
    assert by_device(got) == sorted(before + caught + after,
                                    key=lambda r: (r[0], r[1]["at"], r[1]["request_id"]))
    assert not any(b["person_id"] == "P-0901" and parse_ts(b["at"]) > reload for _, b in got)


def test_the_request_clock_agrees_with_owed_between_on_random_days_and_ticks():
    import random

    rnd = random.Random(5)
    zones = ["Asia/Shanghai", "Europe/London", "America/New_York", "Asia/Kathmandu"]
    raw = []
    for n in range(40):
        start = rnd.randrange(0, 22 * 60)
        end = rnd.randrange(start + 1, 24 * 60)
        raw.append({"person_id": f"P-{n}", "devices": [f"PH-{n}"], "jurisdiction": "320102",
                    "timezone": rnd.choice(zones),
                    "rules": [{"id": "c1", "type": "checkin", "random": {
                        "per_day": rnd.randrange(1, 8),
                        "start": f"{start // 60:02d}:{start % 60:02d}",
                        "end": f"{end // 60 % 24:02d}:{end % 60:02d}" if end < 1440 else "23:59",
                        "answer_within_s": rnd.choice([60, 900, 7200])}}]})
    os = {o.person_id: o for o in parse_orders(json.dumps(raw))}
    clock = RequestClock(plan_ms=HOUR, warm_per_tick=3)
    t, end = T0, T0 + 3 * 86_400_000
    sent: dict[str, int] = {}
    for r in clock.due(os, t):
        sent[r.owed.key] = t
    while t < end:
        t += rnd.choice([1, 500, 500, 500, 61_000, 17 * 60_000, 3 * HOUR])
        for r in clock.due(os, t):
            assert r.owed.key not in sent  # never twice from one clock
            assert r.owed.opens_ms <= t
            sent[r.owed.key] = t
    want = {b["request_id"] for _, b in expected(os.values(), T0, t)}
    assert set(sent) == want and len(want) > 300
