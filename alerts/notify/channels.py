"""Delivery channels: webhook, e-mail, SMS gateway, DingTalk / WeCom robots, MQTT.

E-mail, SMS (an HTTP SMS gateway taking JSON) and MQTT go through apprise;
the webhook is signed here (HMAC-SHA256 over the body in
``X-Wardstream-Signature: sha256=HEX``, the page's identity in
``X-Wardstream-Delivery`` so a receiver can drop a repeat), and DingTalk /
WeCom group robots get their text message posted to the robot's webhook
address as the group settings show it. Every attempt runs under its own
timeout and every page of a step runs concurrently, so a slow channel never
holds up another.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from alerts.errors import AlertsError
from stream.settings import Settings, catalogue_key

RECOGNISES_REPEATS = frozenset({"webhook"})
"""Channels whose receiver can drop a repeated page by its delivery identity
(``X-Wardstream-Delivery``): only these are sent again when a notifier stopped
while handing the page over."""


class ChannelError(AlertsError):
    """A channel refused or could not take a page (the reason is in the message)."""


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


def message_text(event: str, alert: Mapping[str, Any]) -> tuple[str, str]:
    """Title and body of a page for people (e-mail, SMS, robots)."""
    sev = str(alert.get("severity", "")).upper()
    title = f"[{sev}] {alert.get('kind', 'alert')} {event} - {alert.get('person_id') or '?'}"
    body = (f"Alert {alert.get('alert_id')} ({alert.get('kind')}, {alert.get('severity')}) "
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
            raise ChannelError(f"{channel}: no answer within {self.config.timeout_s:g} s") from None
        except aiohttp.ClientError as exc:
            raise ChannelError(f"{channel}: {type(exc).__name__}: {exc}"[:300]) from None

    async def _send(self, channel: str, address: str, delivery_id: str, event: str,
                    alert: Mapping[str, Any]) -> None:
        if channel == "webhook":
            await self._webhook(address, delivery_id, event, alert)
        elif channel in ("dingtalk", "wecom"):
            await self._robot(channel, address, event, alert)
        elif channel == "email":
            await self._apprise(self._with_param(self._need("smtp"), "to", address), event, alert)
        elif channel == "sms":
            await self._apprise(self._with_param(self._need("sms"), ":to", address), event, alert)
        elif channel == "mqtt":
            await self._apprise(self._need("mqtt"), event, alert)
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

    async def _robot(self, channel: str, url: str, event: str, alert: Mapping[str, Any]) -> None:
        """DingTalk and WeCom group robots share the text message format."""
        assert self._http is not None
        title, text = message_text(event, alert)
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

    async def _apprise(self, url: str, event: str, alert: Mapping[str, Any]) -> None:
        import apprise

        title, text = message_text(event, alert)
        ap = apprise.Apprise()
        if not ap.add(url):
            scheme = url.split(":", 1)[0]
            raise ChannelError(f"apprise does not accept the {scheme}:// address configured")
        ok = await ap.async_notify(body=text, title=title)
        if not ok:
            raise ChannelError(f"{url.split(':', 1)[0]}: not delivered")
