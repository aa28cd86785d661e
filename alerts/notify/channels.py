"""Delivery channels: webhook, e-mail, SMS gateway, DingTalk / WeCom robots, MQTT.

Every page carries its identity, the delivery id, so that a page sent again
after a notifier stopped mid-attempt is recognisable as the same page: the
webhook has it in ``X-Wardstream-Delivery`` (and is signed, HMAC-SHA256 over
the body in ``X-Wardstream-Signature: sha256=HEX``); an e-mail has a stable
``Message-ID`` derived from it, so a mail store that collapses by Message-ID
shows one message; SMS, robot and MQTT texts start with a short page
reference (``[ref 1a2b3c4d]``) that a person can compare.

E-mail is composed here and handed to the SMTP server through apprise's SMTP
connection (apprise reads the configured ``mailto://`` address); SMS (an
HTTP SMS gateway taking JSON) and MQTT go through apprise; DingTalk / WeCom
group robots get their text message posted to the robot's webhook address
as the group settings show it. Every attempt runs under its own timeout and
every page of a step runs concurrently, so a slow channel never holds up
another.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

import aiohttp

from alerts.errors import AlertsError
from stream.settings import Settings, catalogue_key


class ChannelError(AlertsError):
    """A channel refused or could not take a page (the reason is in the message)."""


class ChannelTimeout(ChannelError):
    """A channel gave no answer in time: the page may still arrive."""


@dataclass(frozen=True)
class ChannelConfig:
    """Where the channels send, from the ``notify_*`` settings.

    ``smtp``: apprise e-mail URL without recipient, e.g.
    ``mailto://mail.example.org:25?from=alerts@example.org&mode=insecure``;
    ``sms``: apprise JSON URL of the SMS gateway (``json://gw:8080/send``), the
    phone number is added as ``to``; ``mqtt``: apprise MQTT URL with the topic
    (``mqtt://broker:1883/wardstream/pages``); ``webhook_secret``: HMAC key.
    """

    # addresses may carry credentials: kept out of repr() and so out of logs
    smtp: str = field(default="", repr=False)
    sms: str = field(default="", repr=False)
    mqtt: str = field(default="", repr=False)
    webhook_secret: str = field(default="", repr=False)
    timeout_s: float = 5.0
    retries: int = 3
    backoff_s: float = 0.5

    @classmethod
    def from_settings(cls, settings: Settings) -> ChannelConfig:
        """The channels' part of the settings (the ``notify_*`` keys)."""
        return cls(smtp=settings.notify_smtp, sms=settings.notify_sms,
                   mqtt=settings.notify_mqtt, webhook_secret=settings.notify_webhook_secret,
                   timeout_s=settings.notify_timeout_s, retries=settings.notify_retries)


def sign(secret: str, body: bytes) -> str:
    """The webhook signature header value of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _digest(delivery_id: str) -> str:
    return hashlib.sha256(delivery_id.encode()).hexdigest()[:32]


def page_ref(delivery_id: str) -> str:
    """The short reference of a page that people see in its text (8 hex digits)."""
    return _digest(delivery_id)[:8]


def message_id(delivery_id: str) -> str:
    """The e-mail ``Message-ID`` of a page: the same for every attempt at it."""
    return f"<{_digest(delivery_id)}@wardstream>"


def message_text(event: str, alert: Mapping[str, Any], delivery_id: str) -> tuple[str, str]:
    """Title and body of a page for people (e-mail, SMS, robots, MQTT)."""
    sev = str(alert.get("severity", "")).upper()
    title = f"[{sev}] {alert.get('kind', 'alert')} {event} - {alert.get('person_id') or '?'}"
    body = (f"[ref {page_ref(delivery_id)}] "
            f"Alert {alert.get('alert_id')} ({alert.get('kind')}, {alert.get('severity')}) "
            f"{event} in {alert.get('jurisdiction') or '-'} at tier {alert.get('tier') or 'county'}; "
            f"opened {alert.get('opened_at')}, position {alert.get('lat')},{alert.get('lon')}.")
    return title, body


class Channels:
    """Sends one page on one channel; raises :class:`ChannelError` on failure."""

    def __init__(self, config: ChannelConfig) -> None:
        self.config = config
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.config.timeout_s))

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def send(self, channel: str, address: str, delivery_id: str, event: str,
                   alert: Mapping[str, Any]) -> None:
        """One attempt, bounded by the channel timeout."""
        try:
            await asyncio.wait_for(self._send(channel, address, delivery_id, event, alert),
                                   self.config.timeout_s)
        except TimeoutError:
            raise ChannelTimeout(f"{channel}: no answer within {self.config.timeout_s:g} s") from None
        except aiohttp.ClientError as exc:
            raise ChannelError(f"{channel}: {type(exc).__name__}: {exc}"[:300]) from None

    async def _send(self, channel: str, address: str, delivery_id: str, event: str,
                    alert: Mapping[str, Any]) -> None:
        if channel == "webhook":
            await self._webhook(address, delivery_id, event, alert)
        elif channel in ("dingtalk", "wecom"):
            await self._robot(channel, address, delivery_id, event, alert)
        elif channel == "email":
            await self._email(address, delivery_id, event, alert)
        elif channel == "sms":
            await self._apprise(self._with_param(self._need("sms"), ":to", address),
                                delivery_id, event, alert)
        elif channel == "mqtt":
            await self._apprise(self._need("mqtt"), delivery_id, event, alert)
        else:
            raise ChannelError(f"unknown channel {channel!r}")

    def _need(self, name: str) -> str:
        value = str(getattr(self.config, name))
        if not value:
            raise ChannelError(f"{name} channel is not configured "
                               f"({catalogue_key('notify_' + name).env})")
        return value

    @staticmethod
    def _with_param(url: str, key: str, value: str) -> str:
        sep = "&" if "?" in url else "?"
        return f"{url}{sep}{urllib.parse.quote(key, safe=':')}={urllib.parse.quote(value, safe='')}"

    async def _webhook(self, url: str, delivery_id: str, event: str,
                       alert: Mapping[str, Any]) -> None:
        assert self._http is not None
        body = json.dumps({"event": event, "alert": dict(alert), "delivery": delivery_id},
                          separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "X-Wardstream-Delivery": delivery_id}
        if self.config.webhook_secret:
            headers["X-Wardstream-Signature"] = sign(self.config.webhook_secret, body)
        async with self._http.post(url, data=body, headers=headers) as resp:
            if resp.status >= 300:
                raise ChannelError(f"webhook: HTTP {resp.status}")

    async def _robot(self, channel: str, url: str, delivery_id: str, event: str,
                     alert: Mapping[str, Any]) -> None:
        """DingTalk and WeCom group robots share the text message format."""
        assert self._http is not None
        title, text = message_text(event, alert, delivery_id)
        if channel == "dingtalk" and "#" in url:  # "URL#SECRET": the robot's signing secret
            url, secret = url.split("#", 1)
            ts = str(int(time.time() * 1000))
            mac = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
            url = self._with_param(self._with_param(url, "timestamp", ts), "sign",
                                   base64.b64encode(mac).decode())
        payload = {"msgtype": "text", "text": {"content": f"{title}\n{text}"}}
        async with self._http.post(url, json=payload) as resp:
            if resp.status >= 300:
                raise ChannelError(f"{channel}: HTTP {resp.status}")
            with_body = await resp.json(content_type=None)
        code = with_body.get("errcode", 0) if isinstance(with_body, dict) else 0
        if code:
            raise ChannelError(f"{channel}: robot answered errcode {code}")

    async def _email(self, address: str, delivery_id: str, event: str,
                     alert: Mapping[str, Any]) -> None:
        """Compose the page with its stable Message-ID and hand it to the SMTP server.

        apprise reads the configured address (server, TLS mode, credentials,
        ``from``, ``cc``, ``bcc``, ``reply`` and ``+Header=value`` arguments)
        and holds the SMTP connection; the message is composed here because
        apprise gives every message a Message-ID of its own.
        """
        import apprise
        from apprise.plugins.email import NotifyEmail

        url = self._with_param(self._need("smtp"), "to", address)
        mailer = apprise.Apprise.instantiate(url)
        if not isinstance(mailer, NotifyEmail) or not mailer.targets:
            raise ChannelError("apprise does not accept the mailto:// address configured"
                               f" with recipient {address!r}")
        title, text = message_text(event, alert, delivery_id)
        msg = EmailMessage()
        msg["Subject"] = title
        from_name, sender = (str(v or "") for v in mailer.from_addr)
        to = [(str(n or ""), str(a)) for n, a in mailer.targets]
        msg["From"] = formataddr((from_name, sender))
        msg["To"] = ", ".join(formataddr(pair) for pair in to)
        if mailer.cc:
            msg["Cc"] = ", ".join(sorted(mailer.cc))
        if mailer.reply_to:
            msg["Reply-To"] = ", ".join(sorted(mailer.reply_to))
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = message_id(delivery_id)
        msg["X-Wardstream-Delivery"] = delivery_id
        for key, value in mailer.headers.items():  # the page's own headers take precedence
            if key not in msg:
                msg[key] = value
        msg.set_content(text)
        rcpts = [a for _, a in to] + sorted(mailer.cc) + sorted(mailer.bcc)
        await asyncio.to_thread(self._smtp, mailer, sender, rcpts, msg.as_string())

    def _smtp(self, mailer: Any, sender: str, rcpts: list[str], message: str) -> None:
        """One SMTP session (runs in a thread): connect, secure, log in, send."""
        from apprise.plugins.email.smtp import SMTP_EXCEPTIONS, AppriseSMTPController

        try:
            with AppriseSMTPController(
                host=mailer.smtp_host, port=mailer.port, secure_mode=mailer.secure_mode,
                user=mailer.user, password=mailer.password,
                verify_certificate=mailer.verify_certificate,
                socket_connect_timeout=max(1, math.ceil(self.config.timeout_s)),
            ) as smtp:
                if not smtp.sendmail(sender, rcpts, message):
                    raise ChannelError("email: the SMTP server did not accept the message")
        except SMTP_EXCEPTIONS as exc:
            raise ChannelError(f"email: {type(exc).__name__}: {exc}"[:300]) from None

    async def _apprise(self, url: str, delivery_id: str, event: str,
                       alert: Mapping[str, Any]) -> None:
        import apprise

        title, text = message_text(event, alert, delivery_id)
        ap = apprise.Apprise()
        if not ap.add(url):
            scheme = url.split(":", 1)[0]
            raise ChannelError(f"apprise does not accept the {scheme}:// address configured")
        ok = await ap.async_notify(body=text, title=title)
        if not ok:
            raise ChannelError(f"{url.split(':', 1)[0]}: not delivered")
