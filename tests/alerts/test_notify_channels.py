"""Channels against real local parts: Mosquitto, robot receivers, a slow endpoint."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import uuid

import aiomqtt
import asyncpg
import pytest
from alerts_testkit import record
from notify_kit import HttpReceiver, SmtpSink

from alerts.notify import store
from alerts.notify.channels import ChannelConfig, ChannelError, Channels, message_id, page_ref
from alerts.notify.notifier import Notifier, NotifierMetrics
from alerts.notify.policy import check_policy_body

ALERT = record("opened", alert_id="A-ch", severity="red")["alert"]


async def test_mqtt_page_reaches_a_subscriber_on_mosquitto() -> None:
    topic = f"wardstream/test/{uuid.uuid4().hex[:8]}"
    ch = Channels(ChannelConfig(mqtt=f"mqtt://127.0.0.1:1883/{topic}", timeout_s=10))
    await ch.start()
    try:
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            await client.subscribe(topic, qos=1)
            await asyncio.sleep(0.2)
            await ch.send("mqtt", "", "A-ch/opened/x/mqtt", "opened", ALERT)
            msg = await asyncio.wait_for(anext(aiter(client.messages)), 10)
    finally:
        await ch.close()
    text = bytes(msg.payload).decode()  # type: ignore[arg-type]
    assert f"[ref {page_ref('A-ch/opened/x/mqtt')}] Alert A-ch " in text


async def test_robots_get_their_text_message_and_dingtalk_is_signed() -> None:
    http = HttpReceiver()
    await http.start()
    ch = Channels(ChannelConfig(timeout_s=5))
    await ch.start()
    try:
        await ch.send("wecom", http.url("/wecom?key=k1"), "d", "opened", ALERT)
        before = int(time.time() * 1000)
        await ch.send("dingtalk", http.url("/ding?access_token=t1") + "#SECsecret", "d", "opened",
                      ALERT)
        http.fail.add("/down")
        with pytest.raises(ChannelError, match="HTTP 503"):
            await ch.send("wecom", http.url("/down"), "d", "opened", ALERT)
    finally:
        await ch.close()
        await http.stop()
    wecom, ding = http.on("/wecom"), http.on("/ding")
    assert wecom[0].json["msgtype"] == "text"
    assert f"[ref {page_ref('d')}] Alert A-ch " in wecom[0].json["text"]["content"]
    assert ding[0].json["msgtype"] == "text"
    # the robot's address keeps its token and gains a valid DingTalk signature
    q = ding[0].query
    assert q["access_token"] == "t1" and int(q["timestamp"]) >= before
    assert q["sign"] == _ding_sign("SECsecret", q["timestamp"])
    assert wecom[0].query == {"key": "k1"}


async def test_an_email_page_has_one_stable_message_id_and_keeps_the_configured_headers() -> None:
    smtp = SmtpSink()
    smtp.start()
    url = smtp.url + "&cc=desk@county.test&+X-Centre=320102&+Message-ID=<other@example.org>"
    ch = Channels(ChannelConfig(smtp=url, timeout_s=5))
    await ch.start()
    try:
        for _ in range(2):  # a page sent twice is the same message to a mail store
            await ch.send("email", "li@duty.test", "A-ch/opened/li/email", "opened", ALERT)
    finally:
        await ch.close()
        smtp.stop()
    import email
    import email.policy

    first, second = smtp.inbox
    assert first.message_id == second.message_id == message_id("A-ch/opened/li/email")
    msg = email.message_from_bytes(first.raw, policy=email.policy.default)
    assert msg.get_all("Message-ID") == [first.message_id]  # exactly one
    assert msg["X-Wardstream-Delivery"] == "A-ch/opened/li/email"
    assert msg["X-Centre"] == "320102" and msg["Cc"] == "desk@county.test"
    assert msg["From"] == "alerts@wardstream.test" and msg["To"] == "li@duty.test"
    assert sorted(first.rcpt) == ["desk@county.test", "li@duty.test"]
    assert first.subject == "[RED] " + first.subject.split("] ", 1)[1]
    assert f"[ref {page_ref('A-ch/opened/li/email')}] Alert A-ch " in first.body


async def test_a_retry_after_an_attempt_without_answer_is_logged_as_a_possible_repeat(
    database_url: str,
) -> None:
    from alerts.db import create_pool

    schema = "t_" + uuid.uuid4().hex[:12]
    pool = await create_pool(database_url, schema)
    slow = HttpReceiver(delay_s=1.0)
    await slow.start()
    ch = Channels(ChannelConfig(timeout_s=0.3, retries=1, backoff_s=0.05))
    await ch.start()
    try:
        async with pool.acquire() as conn:
            await store.add_policy(conn, check_policy_body(
                {"channel": "webhook", "recipient": slow.url("/slow")}), "test")
        notifier = Notifier(pool, ch, NotifierMetrics())
        results = await notifier.handle(record("opened", alert_id="A-t", severity="orange"))
        async with pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM notify_deliveries")
    finally:
        await ch.close()
        await slow.stop()
        await pool.close()
        conn2 = await asyncpg.connect(database_url)
        await conn2.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn2.close()
    assert results == [False]
    assert (row["status"], row["attempts"], row["resent"]) == ("failed", 2, True)
    assert "no answer within" in row["error"]
    assert notifier.metrics.resent.labels("webhook")._value.get() == 1


async def test_a_slow_channel_does_not_hold_up_the_others(database_url: str) -> None:
    from alerts.db import create_pool

    schema = "t_" + uuid.uuid4().hex[:12]
    pool = await create_pool(database_url, schema)
    slow, fast = HttpReceiver(delay_s=3.0), HttpReceiver()
    await slow.start()
    await fast.start()
    ch = Channels(ChannelConfig(timeout_s=1.0, retries=0))
    await ch.start()
    try:
        async with pool.acquire() as conn:
            for url in (slow.url("/slow"), fast.url("/fast")):
                await store.add_policy(conn, check_policy_body(
                    {"channel": "webhook", "recipient": url}), "test")
        notifier = Notifier(pool, ch, NotifierMetrics())
        t0 = time.monotonic()
        task = asyncio.create_task(notifier.handle(record("opened", alert_id="A-s",
                                                          severity="orange")))
        while not fast.hits and time.monotonic() - t0 < 5:
            await asyncio.sleep(0.02)
        fast_after = time.monotonic() - t0
        results = await task
    finally:
        await ch.close()
        await slow.stop()
        await fast.stop()
        await pool.close()
        conn2 = await asyncpg.connect(database_url)
        await conn2.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn2.close()
    assert fast_after < 0.9, fast_after  # before the slow page's 1 s timeout
    assert sorted(results) == [False, True]


def _ding_sign(secret: str, ts: str) -> str:
    mac = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()

