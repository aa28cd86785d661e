"""The demo's inbox: a local SMTP sink and webhook receiver, and a duty roster to page.

``wardstream notifier --demo-inbox`` starts both receivers in the notifier's
own process, points the e-mail and webhook channels at them, and (when the
store has no policy yet) adds a demo duty officer for every county in the
demo orders and for their city, with policies that page the county officer
by e-mail and webhook for red alerts and the city officer by e-mail when an
alert escalates to the city. Every page received is printed as one
``inbox:`` line, which ``wardstream demo`` shows.
"""

from __future__ import annotations

import asyncio
import email
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web

from alerts.notify import store
from alerts.notify.policy import check_policy_body, tier_jurisdiction
from stream.broker import free_port


def _say(line: str) -> None:
    print(f"inbox: {line}", flush=True)


class DemoInbox:
    """An SMTP sink and a webhook receiver on 127.0.0.1 that print what they get."""

    def __init__(self) -> None:
        self.smtp_port = free_port()
        self.http_port = free_port()
        self._smtp: Any = None
        self._runner: web.AppRunner | None = None

    @property
    def smtp_url(self) -> str:
        return f"mailto://127.0.0.1:{self.smtp_port}?from=alerts@demo.wardstream.local&mode=insecure"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/duty"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content)
        _say(f"e-mail to {', '.join(envelope.rcpt_tos)}: {msg.get('Subject', '')}")
        return "250 OK"

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        alert = body.get("alert", {})
        recipient = (str(body.get("delivery", "")).split("/")[2:3] or ["?"])[0]
        _say(f"webhook {body.get('event')} {alert.get('alert_id')} ({alert.get('severity')}, "
             f"{alert.get('jurisdiction')}) for {recipient}")
        return web.Response(status=204)

    async def start(self) -> None:
        from aiosmtpd.controller import Controller

        self._smtp = Controller(self, hostname="127.0.0.1", port=self.smtp_port)
        self._smtp.start()
        app = web.Application()
        app.router.add_post("/duty", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.http_port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._smtp is not None:
            await asyncio.to_thread(self._smtp.stop)


async def seed(pool: asyncpg.Pool, inbox: DemoInbox) -> int:
    """Demo duty officers and policies, unless the store has policies already."""
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval("SELECT count(*) FROM notify_policies"):
            return 0
        counties = [r["jurisdiction"] for r in await conn.fetch(
            "SELECT DISTINCT jurisdiction FROM persons WHERE jurisdiction <> ''")] or ["320102"]
        places = sorted(set(counties) | {tier_jurisdiction(c, "city") for c in counties})
        now = datetime.fromtimestamp(time.time(), UTC)
        for place in places:
            await store.add_shift(conn, place, f"duty-{place}", now - timedelta(days=1),
                                  now + timedelta(days=7),
                                  {"email": f"duty-{place}@demo.wardstream.local",
                                   "webhook": inbox.webhook_url}, "demo")
        for body in ({"channel": "email", "recipient": "duty", "severities": ["red"]},
                     {"channel": "webhook", "recipient": "duty", "severities": ["red"]},
                     {"channel": "email", "recipient": "duty", "tier": "city",
                      "events": ["escalated"]}):
            await store.add_policy(conn, check_policy_body(body), "demo")
    _say(json.dumps({"duty_officers": places}))
    return len(places)
