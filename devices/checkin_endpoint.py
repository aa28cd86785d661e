"""``POST /checkin``: phone check-ins through the gateway's OsmAnd HTTP server.

Answers (JSON bodies):

- 200 ``{"accepted": N}``: N check-ins are in Kafka (``wardstream.telemetry``,
  keyed by the person's partition key like every other gateway input);
  members of an array that were refused are listed under ``rejected``
  with their reason (and dead-lettered);
- 400 ``{"error": reason, "detail": ...}``: nothing usable in the body
  (malformed JSON, not a check-in, a field out of range, a time too far
  ahead); dead-lettered with the same reason, source ``checkin:<address>``;
- 401 ``missing_key`` / ``bad_key``: no bearer key, or not the device's;
- 403 ``not_provisioned`` / ``device_mismatch`` / ``unknown_device``: the
  device is not provisioned for check-ins, the key belongs to another
  phone, or no active order names the device;
- 429 ``rate_limited``: the phone exceeds the gateway's per-device rate
  (the same token bucket as every device input);
- 503: Kafka did not take the check-ins (the phone should send them again).

Refusals are dead-lettered too (the key is never part of a dead letter).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import TYPE_CHECKING, Any

from devices import checkin
from devices.errors import FrameError
from devices.provisioning import Provisioning
from devices.sessions import too_far_ahead
from geofence.model import CheckIn, encode

if TYPE_CHECKING:
    from aiohttp import web

    from devices.servers import Hub

log = logging.getLogger(__name__)

PROTOCOL = "checkin"
"""The metrics label and dead-letter source prefix of the check-in input."""


def checkin_handler(hub: Hub, provisioning: Provisioning | None) -> Any:
    """The aiohttp handler of ``POST /checkin`` (see the module docstring)."""
    from aiohttp import web

    from devices.servers import telemetry_key

    metrics = hub.metrics
    owners = checkin.KeyOwners()

    def answer(status: int, reason: str, detail: str = "",
               headers: dict[str, str] | None = None) -> web.Response:
        metrics.frames.labels(PROTOCOL, reason).inc()
        body: dict[str, Any] = {"error": reason}
        if detail:
            body["detail"] = detail
        return web.Response(status=status, body=encode(body), content_type="application/json",
                            headers=headers)

    async def handle(request: web.Request) -> web.Response:
        try:
            return await _handle(request)
        except web.HTTPException:
            raise
        except Exception as exc:  # one bad request never takes the endpoint down
            log.exception("check-in request from %s could not be handled", request.remote)
            hub.dead("internal_error", f"{type(exc).__name__}: {exc}", "",
                     f"{PROTOCOL}:{request.remote}", None)
            return answer(500, "internal_error")

    async def _handle(request: web.Request) -> web.Response:
        received = time.monotonic()
        now = int(time.time() * 1000)
        source = f"{PROTOCOL}:{request.remote}"
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            hub.dead("payload_too_large", f"request body over {checkin.MAX_BODY} bytes", "",
                     source, None)
            return answer(413, "payload_too_large", f"at most {checkin.MAX_BODY} bytes")
        metrics.bytes.labels(PROTOCOL, "in").inc(len(raw))
        raw_text = raw[:4096].decode("utf-8", errors="replace")
        try:
            body = checkin.decode_body(raw)
        except FrameError as exc:
            hub.dead(exc.reason, exc.detail, raw_text, source, None)
            return answer(400, exc.reason, exc.detail)
        key = checkin.bearer(request.headers.get("Authorization"))
        refused = checkin.refusal(provisioning, owners, body.checkins, key)
        if refused is not None:
            hub.dead(refused.reason, refused.detail, raw_text, source, None)
            headers = ({"WWW-Authenticate": 'Bearer realm="wardstream"'}
                       if refused.status == 401 else None)
            return answer(refused.status, refused.reason, refused.detail, headers)
        bad = list(body.refused)
        skew_ms = int(hub.config.future_skew_s * 1000)
        good: list[CheckIn] = []
        for msg in body.checkins:
            ahead = too_far_ahead(msg, now, skew_ms)
            if ahead is not None:
                bad.append(checkin.Refused("future_timestamp", ahead, encode(msg).decode()))
            else:
                good.append(msg)
        for r in bad:
            hub.dead(r.reason, r.detail, r.raw, source, None)
        if not good:
            first = bad[0]
            return answer(400, first.reason, first.detail)
        for msg in good:
            if not hub.registry.is_accepted(msg.device_id, now):
                detail = f"device {msg.device_id!r} is named by no active order"
                hub.dead("unknown_device", detail, raw_text, source, msg.device_id)
                return answer(403, "unknown_device", detail)
        dev = hub.over_rate(PROTOCOL, collections.Counter(m.device_id for m in good), received,
                            raw_text, source)
        if dev is not None:
            return answer(429, "rate_limited", f"device {dev!r} sends too often",
                          {"Retry-After": "1"})
        await hub.publisher.wait_space()
        futs = [hub.publisher.submit(telemetry_key(hub.registry, m), [m], received)
                for m in good]
        try:
            await asyncio.gather(*futs)
        except Exception as exc:
            return answer(503, "publish_failed", f"not stored: {exc}")
        metrics.frames.labels(PROTOCOL, "ok").inc()
        return web.Response(status=200, body=checkin.accepted_body(len(good), bad),
                            content_type="application/json")

    return handle
