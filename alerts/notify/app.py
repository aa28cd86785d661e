"""``wardstream notifier``: a Faust agent from ``wardstream.alerts`` to the people on call.

The notifier is a Faust (faust-streaming) application: one agent consumes
the alert lifecycle records at least once (offsets are committed after a
record's pages are logged), several records in flight per process, and a
Faust web view serves ``/metrics`` and ``/healthz``. It runs on Apache
Kafka and on the embedded broker alike: it needs no idempotent or
transactional producer and keeps no Faust tables, so nothing depends on the
features the embedded broker lacks. A malformed record goes to
``wardstream.deadletter`` with its reason and never blocks a partition.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import faust
from prometheus_client import generate_latest

from alerts.db import create_pool, system_clock
from alerts.notify.channels import ChannelConfig, Channels
from alerts.notify.notifier import Notifier, NotifierMetrics
from alerts.notify.policy import EVENTS
from alerts.sink import database_unavailable
from geofence.errors import WardstreamError
from geofence.model import DeadLetter, encode, format_ts
from stream.settings import Settings
from stream.topics import ALERTS, DEADLETTER

log = logging.getLogger("wardstream.notifier")


def check_record(raw: bytes | None) -> tuple[dict[str, Any] | None, str, str]:
    """A lifecycle record, or ``(None, reason, detail)`` saying why it is refused."""
    try:
        rec = json.loads(raw or b"")
    except ValueError as exc:
        return None, "not_json", str(exc)[:200]
    if not isinstance(rec, dict):
        return None, "not_an_object", type(rec).__name__
    if rec.get("event") not in EVENTS:
        return None, "bad_event", f"event {str(rec.get('event'))[:40]!r}"
    alert = rec.get("alert")
    if not isinstance(alert, dict) or not isinstance(alert.get("alert_id"), str):
        return None, "bad_alert", "alert must be an object with an alert_id"
    return rec, "", ""


def build(settings: Settings, config: ChannelConfig, *, group: str = "wardstream-notifier",
          concurrency: int = 16, web_port: int | None = None, web_host: str = "127.0.0.1",
          alerts_topic: str = ALERTS, deadletter_topic: str = DEADLETTER,
          demo_inbox: bool = False) -> tuple[faust.App, Any]:
    """The Faust app and a holder of its running parts (pool, notifier)."""
    app = faust.App(
        group, broker=f"kafka://{settings.kafka}", value_serializer="raw", key_serializer="raw",
        store="memory://", topic_allow_declare=False, topic_disable_leader=True,
        consumer_auto_offset_reset="earliest", producer_acks=-1,
        broker_session_timeout=10.0, broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=10.0, broker_commit_every=100, broker_commit_interval=0.5,
        web_enabled=web_port is not None, web_port=web_port or 6066, web_bind=web_host,
        web_in_thread=False,
    )
    metrics = NotifierMetrics()

    class Parts:
        def __init__(self) -> None:
            self.notifier: Notifier | None = None
            self.inbox: Any = None
            self.ready = asyncio.Event()  # one per app: set once its store is open

    parts = Parts()
    source = app.topic(alerts_topic, value_type=bytes, key_type=bytes)
    deadletters = app.topic(deadletter_topic, value_type=bytes, key_type=bytes)

    @app.task
    async def open_store() -> None:
        pool = await create_pool(settings.database_url, settings.database_schema)
        cfg = config
        if demo_inbox:
            from alerts.notify.demo import DemoInbox, seed

            parts.inbox = DemoInbox()
            await parts.inbox.start()
            cfg = replace(config, smtp=parts.inbox.smtp_url)
            await seed(pool, parts.inbox)
        channels = Channels(cfg)
        await channels.start()
        parts.notifier = Notifier(pool, channels, metrics)
        parts.ready.set()

    async def dead_letter(msg: Any, reason: str, detail: str) -> None:
        await deadletters.send(value=encode(DeadLetter(
            reason=reason, raw=(msg.value or b"")[:4096].decode("utf-8", errors="replace"),
            detail=detail, source=f"{msg.topic}:{msg.partition}@{msg.offset}",
            at=format_ts(system_clock()))))

    @app.agent(source, concurrency=concurrency)
    async def deliver(stream: Any) -> None:
        await parts.ready.wait()
        async for event in stream.events():
            msg = event.message
            rec, reason, detail = check_record(msg.value)
            if rec is None:
                await dead_letter(msg, reason, detail)
                continue
            assert parts.notifier is not None
            pause = 0.2
            while True:  # the database is away: hold this record (at least once), retry
                try:
                    await parts.notifier.handle(rec, produced_at=msg.timestamp)
                    break
                except Exception as exc:
                    if not database_unavailable(exc):  # the record itself is refused
                        await dead_letter(msg, "refused_by_store",
                                          f"{type(exc).__name__}: {exc}"[:300])
                        break
                    log.warning("notifier: record %s held, retrying in %.1f s: %s",
                                rec["alert"]["alert_id"], pause, exc)
                    await asyncio.sleep(pause)
                    pause = min(10.0, pause * 2)

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(metrics.registry), content_type="text/plain")

    @app.page("/healthz")
    async def health_view(web: Any, request: Any) -> Any:
        return web.json({"ok": parts.ready.is_set()})

    parts.metrics = metrics  # type: ignore[attr-defined]
    return app, parts


async def run(app: faust.App, parts: Any, stop: asyncio.Event) -> None:
    """Run the Faust app until ``stop`` is set, then close it and the store."""
    runner = asyncio.create_task(app.start())
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await app.stop()
        runner.cancel()
        with contextlib.suppress(BaseException):
            await runner
        if parts.notifier is not None:
            await parts.notifier.channels.close()
            await parts.notifier.pool.close()
        if parts.inbox is not None:
            await parts.inbox.stop()


def main(argv: Sequence[str]) -> int:
    """``wardstream notifier [--group G] [--concurrency N] [--web-port N]``."""
    ap = argparse.ArgumentParser(
        prog="wardstream notifier",
        description="Page the people that notification policies and duty rosters name, for "
                    "each alert lifecycle record. Channels are configured with "
                    "WARDSTREAM_NOTIFY_SMTP, _SMS, _MQTT and _WEBHOOK_SECRET.")
    ap.add_argument("--group", default="wardstream-notifier", help="Kafka consumer group")
    ap.add_argument("--concurrency", type=int, default=16, help="records in flight per process")
    ap.add_argument("--web-port", type=int, default=None,
                    help="serve /metrics and /healthz on PORT")
    ap.add_argument("--web-host", default="127.0.0.1", help="bind address of the web port")
    ap.add_argument("--demo-inbox", action="store_true",
                    help="for the demo: page a local SMTP sink and webhook receiver, print "
                         "what they get, and add demo duty officers if no policy exists")
    args = ap.parse_args(list(argv))
    logging.basicConfig(level=os.environ.get("WARDSTREAM_LOG_LEVEL", "WARNING"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        settings = Settings.from_env()
        config = ChannelConfig.from_settings(settings)
    except (WardstreamError, ValueError) as exc:
        print(f"wardstream notifier: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    if not settings.kafka:
        print("wardstream notifier: WARDSTREAM_KAFKA is not set", file=sys.stderr)
        return 2
    if args.concurrency < 1:
        print("wardstream notifier: --concurrency must be at least 1", file=sys.stderr)
        return 2
    app, parts = build(settings, config, group=args.group, concurrency=args.concurrency,
                       web_port=args.web_port, web_host=args.web_host, demo_inbox=args.demo_inbox)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(app, parts, stop)

    asyncio.run(go())
    return 0
