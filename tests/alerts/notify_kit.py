"""Real local receivers for the notification tests: an SMTP sink and an HTTP receiver."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller

from stream.broker import free_port


@dataclass
class Mail:
    rcpt: list[str]
    subject: str
    message_id: str = ""
    body: str = ""
    raw: bytes = b""


class SmtpSink:
    """aiosmtpd on 127.0.0.1 that keeps every message it receives; ``delay_s`` stalls its answer."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.port = free_port()
        self.inbox: list[Mail] = []
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import email
        import email.policy

        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = msg.get_body(("plain",))
        self.inbox.append(Mail(list(envelope.rcpt_tos), str(msg.get("Subject", "")),
                               str(msg.get("Message-ID", "")),
                               "" if body is None else str(body.get_content()),
                               bytes(envelope.content)))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return "250 OK"

    @property
    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=alerts@wardstream.test&mode=insecure"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    query: dict[str, str] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """An aiohttp server that records every POST; ``fail`` paths answer 503, ``delay_s`` stalls."""

    port: int = field(default_factory=free_port)
    hits: list[Hit] = field(default_factory=list)
    fail: set[str] = field(default_factory=set)
    delay_s: float = 0.0
    _runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if request.path in self.fail:
            return web.Response(status=503)
        self.hits.append(Hit(request.path, dict(request.headers), body, dict(request.query)))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
