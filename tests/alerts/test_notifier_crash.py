"""A notifier killed mid-delivery and restarted: nothing lost, every repeat recognisable.

The notifier runs as ``wardstream notifier`` in a child process against its
own embedded broker and a fresh schema; a slow webhook receiver and a slow
SMTP server keep pages in flight when the process gets SIGKILL. As
docs/notifications.md says: every page arrives at least once on every
channel; a page on the wire at the kill is sent again, with the same
delivery id (webhook header, e-mail Message-ID), and is logged ``resent``;
every other page arrives exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from alerts_testkit import T0, create_topic, produce, record, wait_for
from notify_kit import HttpReceiver, SmtpSink

from alerts.db import create_pool, utc
from alerts.notify import store
from alerts.notify.channels import ChannelConfig, Channels, message_id, page_ref
from alerts.notify.notifier import Notifier, NotifierMetrics
from alerts.notify.policy import Target, check_policy_body
from stream.broker import EmbeddedBroker
from stream.topics import ALERTS

ROOT = Path(__file__).resolve().parents[2]
N = 40


def start_notifier(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "stream.cli", "notifier", "--group", "crash",
                             "--concurrency", "8"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow  # two notifier processes start and join their group: about 35 s
async def test_killed_mid_delivery_then_restarted_loses_nothing_and_repeats_only_the_wire(
    database_url: str,
) -> None:
    schema = "t_" + uuid.uuid4().hex[:12]
    broker = EmbeddedBroker()
    broker.start_sync()
    http = HttpReceiver(delay_s=0.25)
    await http.start()
    smtp = SmtpSink(delay_s=0.5)
    smtp.start()
    pool = await create_pool(database_url, schema)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        await create_topic(broker.bootstrap, ALERTS, partitions=2)
        async with pool.acquire() as conn:
            await store.add_policy(conn, check_policy_body(
                {"channel": "webhook", "recipient": http.url("/hook")}), "test")
            await store.add_policy(conn, check_policy_body(
                {"channel": "email", "recipient": "duty@county.test"}), "test")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "WARDSTREAM_KAFKA": broker.bootstrap,
               "WARDSTREAM_DATABASE_URL": database_url, "WARDSTREAM_DATABASE_SCHEMA": schema,
               "WARDSTREAM_NOTIFY_TIMEOUT_S": "5", "WARDSTREAM_NOTIFY_SMTP": smtp.url}
        recs = [record("opened", alert_id=f"A-{i:03d}", person_id=f"P-{i:03d}", severity="red")
                for i in range(N)]
        await produce(broker.bootstrap, ALERTS, [json.dumps(r).encode() for r in recs],
                      [f"A-{i:03d}" for i in range(N)])

        procs.append(start_notifier(env))
        await wait_for(lambda: _count(http, 5), timeout=90)
        # kill while a webhook and an e-mail page are both being handed over: the
        # process is frozen before its delivery log is read, so the log read is the
        # log at the kill however late this test's own loop gets to run
        await _freeze_with_both_on_wire(procs[0], pool, timeout=30)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(timeout=10)
        async with pool.acquire() as conn:
            on_wire = await conn.fetch("SELECT * FROM notify_deliveries WHERE status = 'sending'"
                                       " AND handed_at IS NOT NULL")
        hooks_on_wire = {_key(r) for r in on_wire if r["channel"] == "webhook"}
        mails_on_wire = {_key(r) for r in on_wire if r["channel"] == "email"}
        assert len(http.hits) < N, "the notifier finished before it was killed; nothing was tested"
        assert hooks_on_wire and mails_on_wire, "no page was on the wire at the kill"

        procs.append(start_notifier(env))
        await wait_for(lambda: _distinct(http, N), timeout=120)
        await wait_for(lambda: _true(len({m.message_id for m in smtp.inbox}) >= N), timeout=60)
        await wait_for(lambda: _settled(pool, 2 * N), timeout=60)
        await asyncio.sleep(1.0)  # anything sent twice would arrive now
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        await http.stop()
        smtp.stop()
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT * FROM notify_deliveries")
        await pool.close()
        conn2 = await asyncpg.connect(database_url)
        await conn2.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn2.close()
        broker.stop_sync()
    hook_ids = {f"A-{i:03d}/opened/{http.url('/hook')}/webhook" for i in range(N)}
    mail_ids = {f"A-{i:03d}/opened/duty@county.test/email" for i in range(N)}

    # webhook: every page arrived; only a page on the wire at the kill
    # arrived twice, and its repeat carried the same delivery id
    hooks = Counter(h.headers["X-Wardstream-Delivery"] for h in http.hits)
    assert set(hooks) == hook_ids
    hooks_doubled = {k for k, n in hooks.items() if n > 1}
    assert hooks_doubled <= hooks_on_wire, (hooks_doubled, hooks_on_wire)

    # e-mail: the same, by the stable Message-ID; each message names its
    # page in the X-Wardstream-Delivery header and the page reference in its text
    by_msgid = {message_id(d): d for d in mail_ids}
    assert all(m.rcpt == ["duty@county.test"] for m in smtp.inbox)
    mails = Counter(by_msgid[m.message_id] for m in smtp.inbox)  # KeyError: an unknown id
    assert set(mails) == mail_ids, "an e-mail page was lost"
    for m in smtp.inbox:
        page = by_msgid[m.message_id]
        assert f"[ref {page_ref(page)}] Alert {page.split('/', 1)[0]} " in m.body
    mails_doubled = {k for k, n in mails.items() if n > 1}
    assert mails_doubled <= mails_on_wire, (mails_doubled, mails_on_wire)
    print(f"on the wire at the kill: {len(hooks_on_wire)} webhook ({len(hooks_doubled)} arrived"
          f" twice), {len(mails_on_wire)} e-mail ({len(mails_doubled)} arrived twice)")

    # the delivery log: every page sent; exactly those on the wire at the
    # kill are marked resent (they may have arrived twice)
    assert {_key(r) for r in rows} == hook_ids | mail_ids
    assert all(r["status"] == "sent" and r["handed_at"] is None for r in rows)
    assert {_key(r) for r in rows if r["resent"]} == hooks_on_wire | mails_on_wire


async def _true(value: bool) -> bool:
    return value


def _key(row: asyncpg.Record) -> str:
    return f"{row['alert_id']}/{row['step']}/{row['recipient']}/{row['channel']}"


async def _settled(pool: asyncpg.Pool, n: int) -> bool:
    async with pool.acquire() as conn:
        return bool(await conn.fetchval(
            "SELECT count(*) = $1 AND bool_and(status <> 'sending') FROM notify_deliveries", n))


async def _both_on_wire(pool: asyncpg.Pool) -> bool:
    async with pool.acquire() as conn:
        return bool(await conn.fetchval(
            "SELECT count(DISTINCT channel) = 2 FROM notify_deliveries"
            " WHERE status = 'sending' AND handed_at IS NOT NULL"))


def _stopped(pid: int) -> bool:
    """Whether the kernel has stopped ``pid`` (state ``T`` in /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")


async def _freeze_with_both_on_wire(proc: subprocess.Popen[bytes], pool: asyncpg.Pool,
                                    timeout: float) -> None:
    """Leave ``proc`` stopped (SIGSTOP) at a moment its log has a page of each channel on the wire."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        proc.send_signal(signal.SIGSTOP)
        while not _stopped(proc.pid):
            await asyncio.sleep(0.001)
        if await _both_on_wire(pool):
            return
        proc.send_signal(signal.SIGCONT)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no webhook and e-mail page were on the wire together in {timeout} s")
        await asyncio.sleep(0.02)


async def _count(http: HttpReceiver, n: int) -> bool:
    return len(http.hits) >= n


async def _distinct(http: HttpReceiver, n: int) -> bool:
    return len({h.headers["X-Wardstream-Delivery"] for h in http.hits}) >= n


async def test_a_page_left_on_the_wire_is_sent_again_with_the_same_message_id(
    database_url: str,
) -> None:
    schema = "t_" + uuid.uuid4().hex[:12]
    pool = await create_pool(database_url, schema)
    smtp = SmtpSink()
    smtp.start()
    channels = Channels(ChannelConfig(smtp=smtp.url, timeout_s=5.0, retries=0))
    await channels.start()
    try:
        start = utc(T0) - timedelta(hours=1)
        async with pool.acquire() as conn:
            for place, officer in (("320102", "li"), ("320100", "wang")):
                await store.add_shift(conn, place, officer, start, start + timedelta(hours=2),
                                      {"email": f"{officer}@duty.test"}, "test")
            for tier in ("county", "city"):
                await store.add_policy(conn, check_policy_body(
                    {"channel": "email", "recipient": "duty", "tier": tier}), "test")
            # a previous notifier claimed li's e-mail, the SMTP server took
            # it, and the notifier was killed before it heard the answer
            page = Target("A-u", "opened", "li", "email", "li@duty.test", 1)
            assert await store.claim(conn, page, "320102", "red") == "send"
        alert = record("opened", alert_id="A-u", severity="red")
        await channels.send("email", page.address, page.delivery_id, "opened", alert["alert"])
        notifier = Notifier(pool, channels, NotifierMetrics())
        results = await notifier.handle(alert)
        again = await notifier.handle(alert)  # a replay: the page is done now
        async with pool.acquire() as conn:
            rows = {(r["step"], r["recipient"]): (r["status"], r["resent"])
                    for r in await conn.fetch("SELECT * FROM notify_deliveries")}
    finally:
        await channels.close()
        smtp.stop()
        await pool.close()
        conn2 = await asyncpg.connect(database_url)
        await conn2.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn2.close()
    # sent again, not given up: the red alert does not page the city
    assert (results, again) == ([True], [])
    assert [m.rcpt for m in smtp.inbox] == [["li@duty.test"]] * 2
    assert {m.message_id for m in smtp.inbox} == {message_id(page.delivery_id)}
    assert all(f"[ref {page_ref(page.delivery_id)}]" in m.body for m in smtp.inbox)
    assert rows == {("opened", "li"): ("sent", True)}
    assert notifier.metrics.resent.labels("email")._value.get() == 1
