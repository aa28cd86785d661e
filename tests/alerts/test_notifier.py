"""The Faust notifier end to end: embedded broker, PostgreSQL, SMTP sink, HTTP receivers."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from alerts_testkit import T0, create_topic, produce, record, wait_for
from notify_kit import HttpReceiver, SmtpSink

from alerts.db import create_pool, utc
from alerts.notify import store
from alerts.notify.app import build, run
from alerts.notify.channels import ChannelConfig, sign
from alerts.notify.policy import check_policy_body
from stream.settings import Settings

SECRET = "test-hmac-key"


@pytest.fixture
async def world(kafka_bootstrap: str, database_url: str) -> AsyncIterator[dict[str, Any]]:
    schema = "t_" + uuid.uuid4().hex[:12]
    topic = f"alerts-{schema}"
    await create_topic(kafka_bootstrap, topic, partitions=2)
    await create_topic(kafka_bootstrap, f"dl-{schema}", partitions=1)
    pool = await create_pool(database_url, schema)
    smtp = SmtpSink()
    smtp.start()
    http = HttpReceiver()
    await http.start()
    w = {"schema": schema, "topic": topic, "pool": pool, "smtp": smtp, "http": http,
         "settings": Settings(database_url=database_url, database_schema=schema,
                              kafka=kafka_bootstrap),
         "config": ChannelConfig(smtp=smtp.url, sms=f"json://127.0.0.1:{http.port}/sms",
                                 webhook_secret=SECRET, timeout_s=2.0, retries=2,
                                 backoff_s=0.05)}
    try:
        yield w
    finally:
        await http.stop()
        smtp.stop()
        await pool.close()
        conn = await asyncpg.connect(database_url)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


async def add_policy(pool: asyncpg.Pool, **body: Any) -> None:
    async with pool.acquire() as conn:
        await store.add_policy(conn, check_policy_body(body), "test")


async def add_shift(pool: asyncpg.Pool, jurisdiction: str, officer: str, **contacts: str) -> None:
    start = utc(T0) - timedelta(hours=4)
    async with pool.acquire() as conn:
        await store.add_shift(conn, jurisdiction, officer, start, start + timedelta(hours=8),
                              contacts, "test")


async def running(w: dict[str, Any], group: str) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop, task, _ = await running_parts(w, group)
    return stop, task


async def running_parts(w: dict[str, Any], group: str) -> tuple[asyncio.Event, asyncio.Task[None], Any]:
    app, parts = build(w["settings"], w["config"], group=group, concurrency=4,
                       alerts_topic=w["topic"], deadletter_topic=f"dl-{w['schema']}")
    stop = asyncio.Event()
    return stop, asyncio.create_task(run(app, parts, stop)), parts


async def deliveries(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        return await store.list_deliveries(conn, "", None, None, 1000)


async def test_red_alert_pages_duty_officer_and_city_on_escalation(world: dict[str, Any]) -> None:
    w = world
    http: HttpReceiver = w["http"]
    smtp: SmtpSink = w["smtp"]
    await add_shift(w["pool"], "320102", "officer-li", email="li@county.test",
                    webhook=http.url("/li"), sms="+8613800000001")
    await add_shift(w["pool"], "320100", "officer-wang", email="wang@city.test",
                    dingtalk=http.url("/robot/wang"))
    await add_shift(w["pool"], "320105", "officer-elsewhere", email="other@county.test")
    await add_policy(w["pool"], jurisdiction_prefix="3201", channel="email", recipient="duty",
                     severities=["red", "orange"])
    await add_policy(w["pool"], jurisdiction_prefix="3201", channel="webhook", recipient="duty")
    await add_policy(w["pool"], jurisdiction_prefix="3201", channel="sms", recipient="duty")
    await add_policy(w["pool"], jurisdiction_prefix="32", channel="email", recipient="duty",
                     tier="city")
    await add_policy(w["pool"], jurisdiction_prefix="32", channel="dingtalk", recipient="duty",
                     tier="city")
    # quiet hours all day: a yellow alert is held back, a red one is not
    await add_policy(w["pool"], jurisdiction_prefix="", channel="webhook",
                     recipient=http.url("/quiet"), quiet_start="00:00", quiet_end="23:59",
                     quiet_tz="UTC")
    stop, task = await running(w, f"g-{w['schema']}")
    try:
        red = record("opened", alert_id="A-red", severity="red")
        yellow = record("opened", alert_id="A-yellow", severity="yellow")
        await produce(w["settings"].kafka, w["topic"],
                      [json.dumps(red).encode(), json.dumps(yellow).encode(), b"{not json"],
                      ["A-red", "A-yellow", "bad"])
        await wait_for(lambda: _true(len(smtp.inbox) >= 1 and len(http.on("/li")) >= 2
                                     and len(http.on("/sms")) >= 1), timeout=60)
        assert [m.rcpt for m in smtp.inbox] == [["li@county.test"]]
        assert "[RED]" in smtp.inbox[0].subject
        li = {h.json["alert"]["alert_id"] for h in http.on("/li")}
        assert li == {"A-red", "A-yellow"}
        hit = next(h for h in http.on("/li") if h.json["alert"]["alert_id"] == "A-red")
        assert hit.headers["X-Wardstream-Signature"] == sign(SECRET, hit.body)
        assert hit.headers["X-Wardstream-Delivery"] == "A-red/opened/officer-li/webhook"
        await wait_for(lambda: _true(len(http.on("/sms")) >= 2), timeout=20)
        assert [h.json["to"] for h in http.on("/sms")] == ["+8613800000001"] * 2
        # quiet hours: only the red alert reached the quiet-hours receiver
        await wait_for(lambda: _true(len(http.on("/quiet")) >= 1), timeout=20)
        assert {h.json["alert"]["alert_id"] for h in http.on("/quiet")} == {"A-red"}
        assert not any(m.rcpt == ["other@county.test"] for m in smtp.inbox)

        # as the escalator writes it: the tier reached is on the record
        esc = {**record("escalated", alert_id="A-red", severity="red", at=T0 + 120_000),
               "tier": "city"}
        await produce(w["settings"].kafka, w["topic"], [json.dumps(esc).encode()], ["A-red"])
        await wait_for(lambda: _true(any(m.rcpt == ["wang@city.test"] for m in smtp.inbox)
                                     and http.on("/robot/wang")), timeout=30)
        robot = http.on("/robot/wang")[0].json
        assert robot["msgtype"] == "text" and "A-red" in robot["text"]["content"]
        # the county officer is not paged again for the city step
        assert sum(m.rcpt == ["li@county.test"] for m in smtp.inbox) == 1
    finally:
        stop.set()
        await task
    rows = await deliveries(w["pool"])
    assert all(r["status"] == "sent" for r in rows), rows
    steps = {(r["alert_id"], r["step"], r["recipient"], r["channel"]) for r in rows}
    assert ("A-red", "escalated:city", "officer-wang", "email") in steps
    assert ("A-red", "opened", "officer-li", "sms") in steps


async def test_replay_from_the_start_pages_nobody_twice(world: dict[str, Any]) -> None:
    w = world
    http: HttpReceiver = w["http"]
    await add_policy(w["pool"], jurisdiction_prefix="", channel="webhook",
                     recipient=http.url("/hook"), events=["opened", "cleared"])
    recs = [record("opened", alert_id=f"A-{i}", severity="orange") for i in range(10)]
    await produce(w["settings"].kafka, w["topic"], [json.dumps(r).encode() for r in recs],
                  [f"A-{i}" for i in range(10)])
    stop, task = await running(w, f"g1-{w['schema']}")
    try:
        await wait_for(lambda: _true(len(http.on("/hook")) >= 10), timeout=60)
    finally:
        stop.set()
        await task
    # a second consumer group reads the whole topic again
    assert await _all_sent(w["pool"])
    stop, task, parts = await running_parts(w, f"g2-{w['schema']}")
    try:
        await wait_for(lambda: _true(parts.metrics.skipped._value.get() >= 10), timeout=60)
    finally:
        stop.set()
        await task
    ids = [h.json["alert"]["alert_id"] for h in http.on("/hook")]
    assert sorted(ids) == sorted(f"A-{i}" for i in range(10))


async def test_red_page_that_keeps_failing_pages_the_next_tier(world: dict[str, Any]) -> None:
    w = world
    http: HttpReceiver = w["http"]
    http.fail.add("/county-down")
    await add_policy(w["pool"], jurisdiction_prefix="3201", channel="webhook",
                     recipient=http.url("/county-down"))
    await add_shift(w["pool"], "320100", "officer-wang", webhook=http.url("/city"))
    await add_policy(w["pool"], jurisdiction_prefix="3201", channel="webhook", recipient="duty",
                     tier="city")
    stop, task = await running(w, f"g-{w['schema']}")
    try:
        await produce(w["settings"].kafka, w["topic"],
                      [json.dumps(record("opened", alert_id="A-f", severity="red")).encode()],
                      ["A-f"])
        await wait_for(lambda: _true(http.on("/city")), timeout=60)
    finally:
        stop.set()
        await task
    rows = {(r["step"], r["recipient"]): r for r in await deliveries(w["pool"])}
    failed = rows[("opened", http.url("/county-down"))]
    assert failed["status"] == "failed" and failed["attempts"] == 3
    assert "503" in failed["error"]
    assert rows[("fallback:city", "officer-wang")]["status"] == "sent"


async def _all_sent(pool: asyncpg.Pool) -> bool:
    rows = await deliveries(pool)
    return len(rows) == 10 and all(r["status"] == "sent" for r in rows)


async def _true(value: bool) -> bool:
    return value



async def test_records_the_notifier_cannot_use_go_to_dead_letters_and_block_nothing(
    world: dict[str, Any],
) -> None:
    from aiokafka import AIOKafkaConsumer

    w = world
    http: HttpReceiver = w["http"]
    await add_policy(w["pool"], jurisdiction_prefix="", channel="webhook",
                     recipient=http.url("/hook"))
    nul = record("opened", alert_id="A-\u0000-nul")
    good = record("opened", alert_id="A-good")
    await produce(w["settings"].kafka, w["topic"],
                  [b"[1, 2]", b'{"event": "paged", "alert": {}}', json.dumps(nul).encode(),
                   json.dumps(good).encode()], ["k", "k", "k", "k"])
    stop, task = await running(w, f"g-{w['schema']}")
    try:
        await wait_for(lambda: _true(len(http.on("/hook")) >= 1), timeout=60)
    finally:
        stop.set()
        await task
    assert [h.json["alert"]["alert_id"] for h in http.on("/hook")] == ["A-good"]
    consumer = AIOKafkaConsumer(f"dl-{w['schema']}", bootstrap_servers=w["settings"].kafka,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        got = await consumer.getmany(timeout_ms=5000, max_records=10)
    finally:
        await consumer.stop()
    reasons = [json.loads(r.value)["reason"] for part in got.values() for r in part]
    assert sorted(reasons) == ["bad_event", "not_an_object", "refused_by_store"]  # in flight together
