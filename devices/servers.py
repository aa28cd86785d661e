"""The gateway's network edge: TCP servers, the OsmAnd HTTP endpoint, downlink.

Each TCP protocol (jt808, watch, gt06, h02) runs an asyncio server whose
connections feed a framer (:mod:`devices.framing`) and a protocol session
(:mod:`devices.sessions`). Robustness rules, the same for every protocol:

- frames split across reads, several per read and garbage between frames
  are handled by the framer; frames larger than ``max_frame`` are dropped;
- a connection is closed after ``max_bad_frames`` consecutive bad frames
  (garbage, checksum failures, malformed frames) or refused frames (unknown
  device, not authenticated, wrong auth code), and after ``idle_timeout_s``
  without a byte;
- no input can raise out of a connection handler: decoder gaps become
  ``malformed`` frames;
- replies that acknowledge telemetry are written only after Kafka accepted
  it, in frame order;
- when the publisher's queue is full the connection stops reading
  (``pause_reading``) until it drains.

Who may send (see docs/security.md):

- a listener with an allow-list (``ServerConfig.allow_networks``) closes a
  connection from any other source at once (``source_refused``);
- one live connection per device: a second connection speaking for a
  device that another live connection speaks for is refused, dead-lettered
  and closed, and a ``device_conflict`` device event is published for the
  device (a connection silent for ``takeover_idle_s`` no longer counts as
  live: the device reconnected and the old one is closed as ``replaced``);
- each device's telemetry passes a token bucket (``rate_per_s``,
  ``rate_burst``); frames beyond it are dropped unacknowledged (the device
  resends them later), HTTP requests beyond it (OsmAnd, check-ins) are
  answered 429 (:meth:`Hub.over_rate`), counted in ``wardstream_gateway_rate_limited_total``
  and dead-lettered ``rate_limited`` once per burst.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from devices import framing, osmand, ratelimit, vendor
from devices.errors import FrameError
from devices.metrics import GatewayMetrics
from devices.provisioning import Network, Provisioning, in_networks
from devices.publisher import Publisher
from devices.registry import Registry
from devices.sessions import (
    Gt06Session,
    H02Session,
    Jt808Session,
    Outcome,
    Session,
    WatchSession,
    too_far_ahead,
)
from devices.wire import encode_messages, encode_one
from geofence.model import DeadLetter, DeviceEvent, Telemetry, format_ts

log = logging.getLogger(__name__)

TCP_PROTOCOLS = ("jt808", "watch", "gt06", "h02")
CONFLICT_EVENT_INTERVAL_S = 10.0
"""At most one ``device_conflict`` event per device this often (every refusal is still
dead-lettered and counted): repeated attempts cannot flood the telemetry topic."""
REFUSED = frozenset({"unknown_device", "not_authenticated", "auth_failed", "not_provisioned",
                     "source_refused", "registration_mismatch", "device_conflict"})


@dataclass
class ServerConfig:
    """Limits shared by the servers."""

    host: str = "0.0.0.0"
    max_frame: int = framing.DEFAULT_MAX_FRAME
    max_bad_frames: int = 10
    idle_timeout_s: float = 300.0
    jt808_tz_offset_h: float = 8.0
    watch_tz_offset_h: float = 0.0
    future_skew_s: float = 300.0
    """Telemetry more than this ahead of its arrival is dead-lettered ``future_timestamp``."""
    allow_networks: dict[str, tuple[Network, ...]] = field(default_factory=dict)
    """Per protocol: the source networks its listener accepts (absent or empty: any)."""
    rate_per_s: float = 5.0
    """Sustained telemetry messages a second per device (0: no limit)."""
    rate_burst: int = 500
    """Messages a device may send at once (a backfill after a gap in coverage)."""
    takeover_idle_s: float = 120.0
    max_unread_bytes: int = 256 * 1024
    """Replies a device has not read (beyond the kernel's buffers) before it is closed."""
    """A device's connection silent this long yields to a new connection of the device."""
    ports: dict[str, int] = field(default_factory=dict)
    reuse_port: bool = False
    """SO_REUSEPORT: several gateway processes share the device ports (Linux)."""
    jt808_models: Mapping[str, vendor.Profile] | None = None
    """JT/T 808 vendor alarm profiles by device model (None: the built-in ones)."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _log_refused(exc: BaseException | None) -> None:
    if exc is not None:
        log.error("a device_conflict event was not accepted by Kafka: %s", exc)


class Hub:
    """What every connection shares: registry, publisher, metrics, live devices."""

    def __init__(self, registry: Registry, publisher: Publisher, metrics: GatewayMetrics,
                 config: ServerConfig) -> None:
        self.registry = registry
        self.publisher = publisher
        self.metrics = metrics
        self.config = config
        self.by_device: dict[str, DeviceConnection] = {}
        self.buckets: dict[str, ratelimit.TokenBucket] = {}
        self._conflict_at: dict[str, float] = {}
        self.connections: set[DeviceConnection] = set()
        # hot-path tallies, folded into Prometheus by flush_metrics() (about once a second)
        self.tally: dict[str, list[int]] = {p: [0, 0, 0] for p in TCP_PROTOCOLS}

    def flush_metrics(self) -> None:
        """Fold the hot-path tallies (bytes in, frames ok, bytes out) into Prometheus."""
        m = self.metrics
        m.queue_depth.set(self.publisher.depth)
        for proto, t in self.tally.items():
            bytes_in, frames_ok, bytes_out = t
            if bytes_in:
                m.bytes.labels(proto, "in").inc(bytes_in)
            if frames_ok:
                m.frames.labels(proto, "ok").inc(frames_ok)
            if bytes_out:
                m.bytes.labels(proto, "out").inc(bytes_out)
            t[0] = t[1] = t[2] = 0

    def session_for(self, protocol: str) -> Session:
        """A fresh session for a new connection."""
        c = self.config
        skew = int(c.future_skew_s * 1000)
        if protocol == "jt808":
            return Jt808Session(self.registry, tz_offset_h=c.jt808_tz_offset_h,
                                models=c.jt808_models, future_skew_ms=skew)
        if protocol == "watch":
            return WatchSession(self.registry, tz_offset_h=c.watch_tz_offset_h,
                                future_skew_ms=skew)
        if protocol == "gt06":
            return Gt06Session(self.registry, future_skew_ms=skew)
        if protocol == "h02":
            return H02Session(self.registry, future_skew_ms=skew)
        raise ValueError(f"unknown protocol {protocol!r}")

    def bucket_of(self, device_id: str) -> ratelimit.TokenBucket:
        """The device's token bucket (kept across its reconnections)."""
        bucket = self.buckets.get(device_id)
        if bucket is None:
            c = self.config
            burst = c.rate_burst if c.rate_per_s > 0 else float("inf")  # 0: no limit
            bucket = self.buckets[device_id] = ratelimit.TokenBucket(
                c.rate_per_s, burst, time.monotonic())
        return bucket

    def over_rate(self, protocol: str, counts: Mapping[str, int], received: float, raw: str,
                  source: str) -> str | None:
        """The first device (in name order) whose messages in an HTTP request
        (``counts``: messages per device) exceed its allowance
        (:meth:`bucket_of`), else ``None``. The request is admitted or refused
        whole: a refused one spends no device's tokens. A refusal is counted,
        and the first of a burst is dead-lettered ``rate_limited`` with ``raw``."""
        devices = sorted(counts)
        for dev in devices:
            bucket = self.bucket_of(dev)
            if not bucket.admits(received):
                verdict = bucket.take(counts[dev], received)  # refused: marks the burst
                n = sum(counts.values())
                self.rate_refused(protocol, dev, n, verdict == ratelimit.FIRST_REFUSAL,
                                  lambda: raw, source)
                return dev
        for dev in devices:
            self.bucket_of(dev).take(counts[dev], received)
        return None

    def rate_refused(self, protocol: str, device_id: str | None, n: int, first: bool,
                     raw: Callable[[], str], source: str, then: str = "") -> None:
        """Count ``n`` messages refused for the device's rate and dead-letter the
        first refusal of a burst (``raw`` is asked for only then; ``then`` says
        what happens to the rest)."""
        self.metrics.rate_limited.labels(protocol).inc(n)
        if first:
            c = self.config
            self.dead("rate_limited", f"{protocol} device {device_id!r} exceeded "
                      f"{c.rate_per_s:g} messages/s (burst {c.rate_burst}){then}", raw(), source,
                      device_id)

    def conflict(self, protocol: str, device_id: str, detail: str) -> None:
        """Count a refused conflicting connection and publish a ``device_conflict`` event.

        At most one event per device every ``CONFLICT_EVENT_INTERVAL_S``.
        """
        self.metrics.conflicts.labels(protocol).inc()
        now = time.monotonic()
        last = self._conflict_at.get(device_id)
        if last is not None and now - last < CONFLICT_EVENT_INTERVAL_S:
            return
        self._conflict_at[device_id] = now
        event = DeviceEvent(device_id=device_id, ts=_now_ms(), event="device_conflict",
                            detail=detail[:256])
        self.publisher.submit_cb(self.registry.key_of(device_id), [event], _log_refused)

    def framer_for(self, protocol: str) -> framing.Framer:
        """A fresh framer for a new connection."""
        m = self.config.max_frame
        if protocol == "jt808":
            return framing.FlagFramer(0x7E, m)
        if protocol == "watch":
            return framing.StartEndFramer(b"[", b"]", m)
        if protocol == "gt06":
            return framing.Gt06Framer(m)
        if protocol == "h02":
            return framing.StartEndFramer(b"*", b"#", m)
        raise ValueError(f"unknown protocol {protocol!r}")

    def dead(self, reason: str, detail: str, raw: str, source: str, key: str | None) -> None:
        """Send a dead letter."""
        self.publisher.dead_letter(
            DeadLetter(reason=reason, raw=raw, source=source, detail=detail,
                       at=format_ts(_now_ms())), key)

    def deliver(self, device_id: str, command: str, interval_s: int) -> str:
        """Send a pursuit/normal command to a connected device; returns the result label."""
        conn = self.by_device.get(device_id)
        if conn is None:
            result = "not_connected"
        else:
            data = conn.session.command(command, interval_s)
            if data is None:
                result = "unsupported"
            else:
                conn.write(data)
                result = "delivered"
        self.metrics.commands.labels(result).inc()
        return result

    def sweep_idle(self) -> int:
        """Close connections idle for longer than the timeout; returns how many."""
        limit = time.monotonic() - self.config.idle_timeout_s
        stale = [c for c in self.connections if c.last_seen < limit]
        for conn in stale:
            conn.close("idle")
        return len(stale)


class DeviceConnection(asyncio.Protocol):
    """One device's TCP connection."""

    def __init__(self, hub: Hub, protocol: str) -> None:
        self.hub = hub
        self.protocol = protocol
        self.session = hub.session_for(protocol)
        self.framer = hub.framer_for(protocol)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.last_seen = time.monotonic()
        self.bad_in_a_row = 0
        self.closed = False
        self.paused = False
        # replies in frame order; a slot is [state, replies], state 0 = waiting for Kafka,
        # 1 = send, 2 = Kafka refused (send nothing: the device will resend); replies is a
        # list of frames, or one frame (bytes) from the fast lane
        self._replies: collections.deque[list[Any]] = collections.deque()
        self._tally = hub.tally[protocol]
        # telemetry and replies of the frames of the current read, not yet submitted:
        # (key, messages, replies); frames of one read under one key share a submission
        self._group: tuple[str, list[Telemetry], list[bytes]] | None = None
        # the JT/T 808 fast lane (see data_received): the session's report() and the
        # framer's buffer, which must be empty for a read to be one whole frame
        self._lane: Callable[[bytes, int], tuple[list[Telemetry], bytes] | None] | None = None
        self._framer_buf: bytearray = bytearray()
        if isinstance(self.session, Jt808Session) and isinstance(self.framer,
                                                                 framing.FlagFramer):
            self._lane = self.session.report
            self._framer_buf = self.framer.pending
        self._max_frame = hub.config.max_frame
        self._max_unread = hub.config.max_unread_bytes
        self._publisher = hub.publisher
        self._registry = hub.registry
        # Kafka key of the session's device, valid for that device id object and registry
        # version (a reload of the orders may move a device to another key)
        self._key = ""
        self._key_dev: str | None = None
        self._key_version = -1
        self._bucket = ratelimit.TokenBucket(0.0, 0.0, 0.0)  # the device's, from _refresh_key

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        host = str(peer[0]) if isinstance(peer, tuple) else ""
        self.hub.connections.add(self)
        self.hub.metrics.connections.labels(self.protocol).inc()
        allowed = self.hub.config.allow_networks.get(self.protocol)
        if allowed and not in_networks(host, allowed):
            log.info("%s connection from %s refused: outside the listener's networks",
                     self.protocol, self.peer)
            self.close("source_refused")
            return
        self.session.source_ip = host
        self.session.elsewhere = self._elsewhere

    def _elsewhere(self, device_id: str) -> str | None:
        """Where another live connection speaks for ``device_id`` (None: nowhere)."""
        other = self.hub.by_device.get(device_id)
        if other is None or other is self or other.closed:
            return None
        if time.monotonic() - other.last_seen > self.hub.config.takeover_idle_s:
            return None  # stale: the device reconnected; _handle closes the old one
        return other.peer

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.hub.metrics.connections_closed.labels(self.protocol, "peer").inc()
        self.hub.connections.discard(self)
        self.hub.metrics.connections.labels(self.protocol).dec()
        dev = self.session.device_id
        if dev is not None and self.hub.by_device.get(dev) is self:
            del self.hub.by_device[dev]
        if self.paused:
            self.hub.metrics.paused.dec()
            self.paused = False

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        received = time.monotonic()
        self.last_seen = received
        self._tally[0] += len(data)
        lane = self._lane
        if lane is not None and not self._framer_buf and len(data) <= self._max_frame:
            # the fast lane: the read is one plain 0x0200 of the authenticated terminal
            # (what a terminal waiting for each acknowledgement sends); the same effects as
            # the framer, on_frame, _handle and _submit_group below, without their objects
            try:
                fast = lane(data, int(time.time() * 1000))
            except Exception:  # the full path below logs it and dead-letters the frame
                fast = None
            if fast is not None:
                self._tally[1] += 1
                self.bad_in_a_row = 0
                if (self._key_dev is not self.session.device_id
                        or self._key_version != self._registry.version):
                    self._refresh_key()
                verdict = self._bucket.take(len(fast[0]), received)
                if verdict:
                    self._rate_limited(fast[0], verdict == ratelimit.FIRST_REFUSAL)
                    return
                slot: list[Any] = [0, fast[1]]  # one reply: bytes, not a list
                self._replies.append(slot)
                publisher = self._publisher
                publisher.submit_cb(self._key, fast[0], functools.partial(self._acked, slot),
                                    received)
                if publisher.full and not self.paused:
                    self._pause()
                return
        frames, errors = self.framer.feed(data)
        for err in errors:
            self._bad(err, None)
            if self.closed:
                return
        now = _now_ms()
        try:
            for frame in frames:
                try:
                    out = self.session.on_frame(frame, now)
                except Exception as exc:  # a bug must not take the server down
                    log.exception("%s session failed on a frame from %s", self.protocol,
                                  self.peer)
                    out = Outcome(result="malformed", error=FrameError("malformed", repr(exc)))
                self._handle(out, frame)
                if self.closed:
                    return
        finally:
            # the telemetry of every good frame of this read goes to Kafka as one submission
            # (one completion, one acknowledgement write), even if a later frame closed us
            if self._group is not None:
                self._submit_group(received)
        if self._publisher.full and not self.paused:
            self._pause()

    # -- helpers
    def _pause(self) -> None:
        """Stop reading until the publisher's queue drains (backpressure)."""
        if self.transport is None:
            return
        self.paused = True
        self.hub.metrics.paused.inc()
        self.hub.metrics.pauses.inc()
        self.transport.pause_reading()
        self.hub.publisher.add_waiter(self.resume)

    def _refresh_key(self) -> None:
        """Look up the Kafka key of the session's device (the fast lane caches it)."""
        dev = self.session.device_id
        assert dev is not None
        self._key = self._registry.key_of(dev)
        self._key_dev, self._key_version = dev, self._registry.version
        self._bucket = self.hub.bucket_of(dev)

    def _rate_limited(self, telemetry: list[Telemetry], first: bool) -> None:
        """Drop the telemetry of a frame over the device's rate (no acknowledgement)."""
        self.hub.rate_refused(
            self.protocol, self.session.device_id, len(telemetry), first,
            lambda: encode_messages(telemetry)[:4096].decode(errors="replace"), self._source(),
            "; further messages of this burst are dropped without acknowledgement")

    def resume(self) -> None:
        """Resume reading after backpressure."""
        if self.paused and not self.closed and self.transport is not None:
            self.paused = False
            self.hub.metrics.paused.dec()
            self.transport.resume_reading()

    def _source(self) -> str:
        return f"{self.protocol}:{self.peer}"

    def _bad(self, err: FrameError, frame: bytes | None) -> None:
        self.hub.metrics.frames.labels(self.protocol, err.reason).inc()
        self.bad_in_a_row += 1
        if frame is None:  # garbage and framing errors: dead-letter a sample
            self.hub.dead(err.reason, err.detail, "", self._source(), None)
        if self.bad_in_a_row >= self.hub.config.max_bad_frames:
            log.info("closing %s connection %s after %d bad frames", self.protocol, self.peer,
                     self.bad_in_a_row)
            self.close("bad_frames")

    def _handle(self, out: Outcome, frame: bytes) -> None:
        hub = self.hub
        dev = out.device_id or self.session.device_id
        for d in out.dead:
            hub.dead(d.reason, d.detail, d.raw, self._source(), dev)
        if out.conflict is not None:
            hub.metrics.frames.labels(self.protocol, out.result).inc()
            hub.conflict(self.protocol, out.conflict,
                         out.dead[-1].detail if out.dead else f"{self.protocol} conflict")
            self.write(b"".join(out.replies))
            self.close("device_conflict")
            return
        if out.error is not None:
            self._bad(out.error, frame)
            return
        if out.result == "ok":
            self._tally[1] += 1
            self.bad_in_a_row = 0
        else:
            hub.metrics.frames.labels(self.protocol, out.result).inc()
            if out.result in REFUSED:
                # a refused device that keeps sending is closed like a garbage source,
                # which also bounds the dead letters one connection can cause
                self.bad_in_a_row += 1
                if self.bad_in_a_row >= hub.config.max_bad_frames:
                    self.write(b"".join(out.replies))
                    self.close("refused")
                    return
            else:
                self.bad_in_a_row = 0
        if out.device_id is not None and hub.by_device.get(out.device_id) is not self:
            old = hub.by_device.get(out.device_id)
            hub.by_device[out.device_id] = self
            if old is not None:
                old.close("replaced")
        if out.telemetry:
            if (self._key_dev is not self.session.device_id
                    or self._key_version != self._registry.version):
                self._refresh_key()
            verdict = self._bucket.take(len(out.telemetry), self.last_seen)
            if verdict:
                self._rate_limited(out.telemetry, verdict == ratelimit.FIRST_REFUSAL)
                return
            key = telemetry_key(hub.registry, out.telemetry[0])
            group = self._group
            if group is not None and group[0] == key:
                group[1].extend(out.telemetry)
                group[2].extend(out.replies)
            else:
                if group is not None:
                    self._submit_group(self.last_seen)
                # the outcome's lists are fresh for each frame: the group takes them over
                self._group = (key, out.telemetry, out.replies)
        elif out.replies:
            if self._group is not None:
                self._group[2].extend(out.replies)  # in frame order, after that telemetry
            elif self._replies:
                self._replies.append([1, out.replies])
            else:
                self.write(b"".join(out.replies))

    def _submit_group(self, received: float) -> None:
        """Submit the pending telemetry of this read; its replies wait for Kafka."""
        group = self._group
        assert group is not None
        self._group = None
        key, messages, replies = group
        slot: list[Any] = [0, replies]
        self._replies.append(slot)
        self.hub.publisher.submit_cb(key, messages, functools.partial(self._acked, slot),
                                     received)

    def _acked(self, slot: list[Any], exc: BaseException | None) -> None:
        q = self._replies
        if exc is None and len(q) == 1:  # the common case: nothing else outstanding here
            q.clear()
            transport = self.transport
            if transport is not None and not self.closed and not transport.is_closing():
                data = slot[1]  # one reply (the fast lane) or a list of them
                if type(data) is list:
                    data = b"".join(data)
                self._tally[2] += len(data)
                transport.write(data)
                if transport.get_write_buffer_size() > self._max_unread:
                    self._not_reading()
            return
        if exc is None:
            slot[0] = 1
        else:
            slot[0] = 2
            log.warning("%s %s: telemetry not accepted by Kafka, device not acknowledged",
                        self.protocol, self.peer)
        if q[0] is not slot:
            if q[0][0] == 0:
                return  # an earlier frame still waits for Kafka
        elif len(q) == 1:  # refused, nothing else outstanding: nothing to send
            q.clear()
            return
        out: list[bytes] = []
        while q and q[0][0]:
            state, replies = q.popleft()
            if state == 1:
                if type(replies) is list:
                    out.extend(replies)
                else:
                    out.append(replies)
        if out:
            self.write(b"".join(out))

    def write(self, data: bytes) -> None:
        """Write to the device unless the connection is gone."""
        if self.transport is not None and not self.closed and not self.transport.is_closing():
            self._tally[2] += len(data)
            self.transport.write(data)
            if self.transport.get_write_buffer_size() > self._max_unread:
                self._not_reading()

    def _not_reading(self) -> None:
        """Close a device that does not read its replies (they would pile up in memory)."""
        log.info("closing %s connection %s: more than %d bytes of replies unread",
                 self.protocol, self.peer, self._max_unread)
        self.close("not_reading", abort=True)  # close() would wait for the device to read

    def close(self, reason: str, *, abort: bool = False) -> None:
        """Close the connection, counting why (``abort``: drop unsent bytes at once)."""
        if self.closed:
            return
        self.closed = True
        self.hub.metrics.connections_closed.labels(self.protocol, reason).inc()
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()


def telemetry_key(registry: Registry, msg: Telemetry) -> str:
    """Kafka key of a canonical message."""
    dev = getattr(msg, "device_id", None)
    if dev is None:
        return str(getattr(msg, "camera_id", ""))
    return registry.key_of(dev)


async def start_tcp(hub: Hub, protocol: str, port: int) -> asyncio.Server:
    """Listen for ``protocol`` devices on ``port`` (0 picks a free port)."""
    loop = asyncio.get_running_loop()
    factory: Callable[[], DeviceConnection] = lambda: DeviceConnection(hub, protocol)  # noqa: E731
    return await loop.create_server(factory, hub.config.host, port, backlog=4096,
                                    reuse_address=True, reuse_port=hub.config.reuse_port or None)


# --------------------------------------------------------------------------- OsmAnd HTTP


def osmand_key_refusal(provisioning: Provisioning, messages: Sequence[Telemetry],
                       key: str | None) -> tuple[str, str] | None:
    """Why an OsmAnd request is not authenticated (reason, detail), or ``None`` if it is."""
    if key is None:
        return "missing_key", "no device key (key= query parameter or Authorization: Bearer)"
    for msg in messages:
        dev = getattr(msg, "device_id", "")
        device = provisioning.for_protocol(dev, "osmand")
        if device is None:
            return "bad_key", f"device {dev!r} is not provisioned for osmand"
        if not device.check_secret(key):
            return "bad_key", f"the key does not match device {dev!r}"
    return None


def osmand_app(hub: Hub, provisioning: Provisioning | None = None) -> object:
    """The aiohttp application of the OsmAnd endpoint (GET query, form or JSON POST).

    With ``provisioning``, every request must carry the device's key (``key=``
    query parameter, which is all an OsmAnd client can configure, or an
    ``Authorization: Bearer`` header) and the device must be provisioned for
    ``osmand``: otherwise 401 and a dead letter (``missing_key``, ``bad_key``).
    Without it any device an order names is accepted (an explicit insecure mode).
    ``POST /checkin`` takes phone check-ins (:mod:`devices.checkin_endpoint`).
    """
    from aiohttp import web

    metrics = hub.metrics

    async def handle(request: web.Request) -> web.Response:
        try:
            return await _handle(request)
        except web.HTTPException:
            raise
        except Exception as exc:  # one bad request never takes the endpoint down
            log.exception("OsmAnd request from %s could not be handled", request.remote)
            metrics.frames.labels("osmand", "internal_error").inc()
            hub.dead("internal_error", f"{type(exc).__name__}: {exc}",
                     osmand.redact_key(request.rel_url.raw_path_qs[:4096]),
                     f"osmand:{request.remote}", None)
            return web.Response(status=500, text="internal_error\n")

    async def checkin_get(request: web.Request) -> web.Response:
        raise web.HTTPMethodNotAllowed("GET", ["POST"])

    async def _handle(request: web.Request) -> web.Response:
        received = time.monotonic()
        now = _now_ms()
        source = f"osmand:{request.remote}"
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            metrics.frames.labels("osmand", "payload_too_large").inc()
            hub.dead("payload_too_large", f"request body over {osmand.MAX_BODY} bytes",
                     osmand.redact_key(request.rel_url.raw_path_qs[:4096]), source, None)
            return web.Response(status=413, text="payload_too_large\n")
        metrics.bytes.labels("osmand", "in").inc(len(raw) + len(request.rel_url.raw_path_qs))
        raw_text = osmand.redact_key(
            (raw or request.rel_url.raw_path_qs.encode())[:4096].decode("latin-1"))
        key = osmand.request_key(request.rel_url.raw_path_qs, raw.decode("latin-1"),
                                 request.headers.get("Authorization"))
        try:
            if request.method == "POST" and raw.lstrip().startswith(b"{"):
                messages = osmand.decode_json(raw, now)
            elif request.method == "POST" and raw:
                messages = osmand.decode_query(raw.decode("latin-1"), now)
            else:
                messages = osmand.decode_query(request.rel_url.raw_path_qs, now)
        except FrameError as exc:
            metrics.frames.labels("osmand", exc.reason).inc()
            hub.dead(exc.reason, exc.detail, raw_text, source, None)
            return web.Response(status=400, text=f"{exc.reason}: {exc.detail}\n")
        if provisioning is not None:
            refused = osmand_key_refusal(provisioning, messages, key)
            if refused is not None:
                metrics.frames.labels("osmand", refused[0]).inc()
                hub.dead(refused[0], refused[1], raw_text, source, None)
                return web.Response(status=401, text=f"{refused[0]}\n",
                                    headers={"WWW-Authenticate": 'Bearer realm="wardstream"'})
        accepted: list[Telemetry] = []
        ahead = 0
        skew_ms = int(hub.config.future_skew_s * 1000)
        for msg in messages:
            dev = getattr(msg, "device_id", "")
            detail = too_far_ahead(msg, now, skew_ms)
            if detail is not None:
                ahead += 1
                hub.dead("future_timestamp", detail, encode_one(msg).decode(), source, dev)
            elif hub.registry.is_accepted(dev, now):
                accepted.append(msg)
            else:
                hub.dead("unknown_device", f"osmand device {dev!r} is named by no active order",
                         encode_one(msg).decode(), source, dev)
        if not accepted:
            all_ahead = bool(messages) and ahead == len(messages)
            reason = "future_timestamp" if all_ahead else "unknown_device"
            metrics.frames.labels("osmand", reason).inc()
            return web.Response(status=400 if all_ahead else 403, text=f"{reason}\n")
        per_device = collections.Counter(str(getattr(m, "device_id", "")) for m in accepted)
        if hub.over_rate("osmand", per_device, received, raw_text, source) is not None:
            metrics.frames.labels("osmand", "rate_limited").inc()
            return web.Response(status=429, text="rate_limited\n",
                                headers={"Retry-After": "1"})
        await hub.publisher.wait_space()
        futs = [hub.publisher.submit(telemetry_key(hub.registry, m), [m], received)
                for m in accepted]
        try:
            await asyncio.gather(*futs)
        except Exception as exc:
            metrics.frames.labels("osmand", "publish_failed").inc()
            return web.Response(status=503, text=f"not stored: {exc}\n")
        metrics.frames.labels("osmand", "ok").inc()
        return web.Response(status=200, text="OK\n")

    from devices.checkin_endpoint import checkin_handler

    app = web.Application(client_max_size=osmand.MAX_BODY)
    app.router.add_route("POST", "/checkin", checkin_handler(hub, provisioning))
    app.router.add_route("GET", "/checkin", checkin_get)
    app.router.add_route("GET", "/{tail:.*}", handle)
    app.router.add_route("POST", "/{tail:.*}", handle)
    return app
