"""Turn one alert lifecycle record into pages, each claimed in the delivery log first.

For each record the notifier finds the matching policies and the officers on
duty, claims each page in the delivery log (a page already done is skipped,
so a restart or a replay of the topic never pages twice; a page that was on
the wire when a notifier stopped is sent again with the same delivery id and
logged ``resent``, so no page is lost and a repeat is recognisable), sends
all pages of the step concurrently with retries and exponential backoff, and
records the outcome. A red alert whose
page still fails after its retries pages the next tier up (city, then
province) as step ``fallback:TIER``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Histogram

from alerts.notify import store
from alerts.notify.channels import ChannelError, Channels, ChannelTimeout
from alerts.notify.policy import TIERS, Target, targets, tier_jurisdiction
from geofence.errors import ValidationError
from geofence.model import parse_ts

log = logging.getLogger("wardstream.notifier")


class NotifierMetrics:
    """Prometheus metrics of the notifier."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sent = Counter("wardstream_notify_sent_total", "Pages delivered", ["channel"],
                            registry=r)
        self.failed = Counter("wardstream_notify_failed_total", "Pages given up after retries",
                              ["channel"], registry=r)
        self.retried = Counter("wardstream_notify_retried_total", "Page attempts retried",
                               ["channel"], registry=r)
        self.skipped = Counter("wardstream_notify_skipped_total",
                               "Pages found already sent in the delivery log", registry=r)
        self.resent = Counter(
            "wardstream_notify_resent_total",
            "Pages sent again that may have arrived already (a notifier stopped mid-attempt,"
            " or an attempt got no answer in time)", ["channel"], registry=r)
        self.latency = Histogram(
            "wardstream_notify_latency_seconds",
            "Time from the lifecycle record to its page's delivery", ["channel"], registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))


def _parse_time(value: Any) -> float | None:
    """Epoch seconds of a record's RFC 3339 time; None when it has none that is valid."""
    if not isinstance(value, str):
        return None
    try:
        return parse_ts(value) / 1000.0
    except ValidationError:
        return None


class Notifier:
    """Pages for lifecycle records; shared by the Faust agent, tests and the benchmark."""

    def __init__(self, pool: asyncpg.Pool, channels: Channels, metrics: NotifierMetrics) -> None:
        self.pool = pool
        self.channels = channels
        self.metrics = metrics

    async def handle(self, record: Mapping[str, Any], produced_at: float | None = None) -> list[bool]:
        """Deliver one lifecycle record; returns each page's outcome (True = sent now)."""
        event = str(record["event"])
        alert = record["alert"]
        if record.get("tier") in TIERS:  # an escalation names the tier it reaches on the record
            alert = {**alert, "tier": record["tier"]}
        at = _parse_time(record.get("at")) or _parse_time(alert.get("opened_at")) or time.time()
        start = produced_at if produced_at is not None else time.time()
        pages = await self._plan(event, alert, at)
        results = await asyncio.gather(*(self._page(t, event, alert, start) for t in pages))
        out = [r for r in results if r is not None]
        if alert.get("severity") == "red" and any(r is False for r in out):
            out += await self._fallback(alert, at, start)
        return out

    async def _plan(self, event: str, alert: Mapping[str, Any], at: float) -> list[Target]:
        jurisdiction = str(alert.get("jurisdiction") or "")
        async with self.pool.acquire() as conn:
            policies = await store.candidate_policies(conn, jurisdiction)
            places = sorted({tier_jurisdiction(jurisdiction, t) for t in TIERS})
            shifts = await store.shifts_at(conn, places, datetime.fromtimestamp(at, UTC))
        return targets(event, alert, at, policies, shifts)

    async def _fallback(self, alert: Mapping[str, Any], at: float, start: float) -> list[bool]:
        """Page the tiers above the alert's own, until one page gets through."""
        tier = alert.get("tier") or "county"
        out: list[bool] = []
        for up in TIERS[TIERS.index(tier) + 1:]:
            lifted = {**alert, "tier": up}
            pages = [Target(t.alert_id, f"fallback:{up}", t.recipient, t.channel, t.address,
                            t.policy_id) for t in await self._plan("escalated", lifted, at)]
            results = await asyncio.gather(*(self._page(t, "escalated", lifted, start)
                                             for t in pages))
            got = [r for r in results if r is not None]
            out += got
            if any(got):
                break
        return out

    async def _page(self, t: Target, event: str, alert: Mapping[str, Any],
                    start: float) -> bool | None:
        """Claim, send with retries, record; None when the log says it is done already."""
        jurisdiction = str(alert.get("jurisdiction") or "")
        async with self.pool.acquire() as conn:
            claimed = await store.claim(conn, t, jurisdiction, str(alert.get("severity") or ""))
        if claimed is None:
            self.metrics.skipped.inc()
            return None
        resent = claimed == "resend"
        if resent:
            self._resending(t, "it was on the wire when a notifier stopped")
        cfg = self.channels.config
        error: str | None = None
        attempts = 0
        timed_out = False
        t0 = time.monotonic()
        for attempt in range(cfg.retries + 1):
            attempts = attempt + 1
            if attempt:  # the claim marked the first attempt
                async with self.pool.acquire() as conn:
                    await store.handing(conn, t, True, repeat=timed_out)
                if timed_out and not resent:
                    resent = True
                    self._resending(t, "its last attempt got no answer in time")
            try:
                await self.channels.send(t.channel, t.address, t.delivery_id, event, alert)
                error = None
                break
            except ChannelTimeout as exc:  # the channel may still take it
                error, timed_out = str(exc), True
            except ChannelError as exc:
                error = str(exc)
            except Exception as exc:  # a channel library's own error: recorded, never raised
                error = f"{t.channel}: {type(exc).__name__}: {exc}"[:300]
            if attempt < cfg.retries:
                async with self.pool.acquire() as conn:  # the attempt is over, counted as failed
                    await store.handing(conn, t, False)
                self.metrics.retried.labels(t.channel).inc()
                await asyncio.sleep(cfg.backoff_s * (2 ** attempt))
        ok = error is None
        latency_ms = (time.monotonic() - t0) * 1000.0
        async with self.pool.acquire() as conn:
            await store.finish(conn, t, ok, attempts, latency_ms, error)
        if ok:
            self.metrics.sent.labels(t.channel).inc()
            self.metrics.latency.labels(t.channel).observe(max(0.0, time.time() - start))
        else:
            self.metrics.failed.labels(t.channel).inc()
            log.warning("page %s on %s to %s failed after %d attempts: %s", t.step, t.channel,
                        t.recipient, attempts, error)
        return ok

    def _resending(self, t: Target, why: str) -> None:
        self.metrics.resent.labels(t.channel).inc()
        log.warning("page %s on %s to %s is sent again with the same delivery id because %s;"
                    " it may arrive twice", t.step, t.channel, t.recipient, why)
