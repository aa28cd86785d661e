"""Per-connection protocol state machines (pure: frames in, outcomes out).

A session turns each frame of one connection into an :class:`Outcome`: the
canonical telemetry to publish, the replies to send *after* Kafka accepted
that telemetry (or at once when there is none), dead letters, and the
device the connection now speaks for. The servers own the sockets; the
sessions own the protocol rules:

- JT/T 808: a terminal registers (0x0100 -> 0x8100 with an auth code, or
  result 4 "no such terminal" for a device no active order names), then
  authenticates (0x0102 -> 0x8001). Location, batch and heartbeat messages
  before authentication are refused (0x8001 result 1) and dead-lettered as
  ``not_authenticated``.
- GT06: data before a login is dead-lettered (``not_authenticated``); an
  unknown device's login gets no acknowledgement.
- watch, H02: every frame names its device; unknown devices get no reply.

Every frame from a device that no active order names is dead-lettered with
reason ``unknown_device`` (its decoded telemetry as the raw text, so it can
be replayed once an order exists) and never reaches the telemetry topic.
Telemetry more than ``future_skew_ms`` ahead of its arrival at the gateway is
dead-lettered as ``future_timestamp``.

When the registry carries a provisioning, a device identifies itself (a
watch or H02 frame naming it, a GT06 login, a JT/T 808 registration or
authentication) only if it is provisioned for the protocol
(``not_provisioned``), from one of its networks (``source_refused``), with
its provisioned JT/T 808 registration fields (``registration_mismatch``),
and while no other connection speaks for it (``device_conflict``: the
outcome's ``conflict`` names the device, and the server raises a
``device_conflict`` device event for it).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from devices import gt06, h02, jt808, vendor, watch
from devices.codec import xor8
from devices.errors import FrameError
from devices.registry import Registry
from devices.wire import encode_messages, encode_one
from geofence.model import Telemetry, format_ts

REGISTER_TERMINAL_REGISTERED = 3
"""0x8100 result: the terminal is already registered (here: connected elsewhere)."""
DEFAULT_FUTURE_SKEW_MS = 300_000
"""Default lead of event time over arrival before a message is ``future_timestamp``."""

_RESP_BODY = struct.Struct(">HHHBB")
"""0x8001 body (serial, answered serial, answered id, result) and the check code."""


def too_far_ahead(msg: Telemetry, now_ms: int, skew_ms: int) -> str | None:
    """Why ``msg`` is a ``future_timestamp``: its event time leads its arrival at the
    gateway (``now_ms``) by more than ``skew_ms``; None when it does not."""
    if msg.ts <= now_ms + skew_ms:
        return None
    return (f"`ts` {format_ts(msg.ts)} is more than {skew_ms // 1000} s ahead of its arrival "
            f"at the gateway ({format_ts(now_ms)})")


@dataclass(slots=True)
class DeadEntry:
    """A dead letter produced by a frame."""

    reason: str
    detail: str
    raw: str


@dataclass(slots=True)
class Outcome:
    """What the server must do with one frame."""

    result: str = "ok"
    """Metric label: ``ok``, ``unknown_device``, ``not_authenticated``, ``auth_failed``,
    ``unsupported``, ``ignored`` or a frame-error reason."""
    telemetry: list[Telemetry] = field(default_factory=list)
    replies: list[bytes] = field(default_factory=list)
    dead: list[DeadEntry] = field(default_factory=list)
    error: FrameError | None = None
    device_id: str | None = None
    conflict: str | None = None
    """A device that tried to speak here while another connection speaks for it."""

    @property
    def bad(self) -> bool:
        """A frame that counts towards closing the connection."""
        return self.error is not None


def _raw_text(frame: bytes, text: bool) -> str:
    return frame[:4096].decode("latin-1") if text else frame[:2048].hex()


class Session:
    """Base class: shared screening of telemetry."""

    protocol = "base"
    text = False

    def __init__(self, registry: Registry, *, future_skew_ms: int = DEFAULT_FUTURE_SKEW_MS,
                 source_ip: str = "",
                 elsewhere: Callable[[str], str | None] | None = None) -> None:
        self.registry = registry
        self.future_skew_ms = future_skew_ms
        self.device_id: str | None = None
        self.source_ip = source_ip
        """Address the connection comes from (checked against provisioned networks)."""
        self.elsewhere: Callable[[str], str | None] = elsewhere or (lambda _dev: None)
        """``elsewhere(device_id)``: where another live connection speaks for it, or None."""

    def on_frame(self, frame: bytes, now_ms: int) -> Outcome:
        """Handle one complete frame; never raises for bad input."""
        try:
            return self._on_frame(frame, now_ms)
        except FrameError as exc:
            return Outcome(result=exc.reason, error=exc, dead=[
                DeadEntry(exc.reason, exc.detail, _raw_text(frame, self.text))])
        except (ValueError, IndexError, KeyError, UnicodeError) as exc:  # decoder gap: never fatal
            err = FrameError("malformed", f"{type(exc).__name__}: {exc}")
            return Outcome(result="malformed", error=err, dead=[
                DeadEntry("malformed", err.detail, _raw_text(frame, self.text))])

    def _on_frame(self, frame: bytes, now_ms: int) -> Outcome:  # pragma: no cover - abstract
        raise NotImplementedError

    def command(self, command: str, interval_s: int) -> bytes | None:
        """Downlink bytes asking the device to report every ``interval_s`` s (None: unsupported)."""
        return None

    def _unknown(self, out: Outcome, device_id: str, frame: bytes,
                 telemetry: list[Telemetry]) -> Outcome:
        raw = encode_messages(telemetry).decode() if telemetry else _raw_text(frame, self.text)
        out.result = "unknown_device"
        out.dead.append(DeadEntry(
            "unknown_device", f"{self.protocol} device {device_id!r} is named by no active order",
            raw))
        return out

    def _admit(self, out: Outcome, dev: str, frame: bytes,
               telemetry: list[Telemetry]) -> bool:
        """Whether ``dev`` may identify itself here (provisioning, source, conflict).

        On refusal ``out`` carries the result and a dead letter.
        """
        refusal = self.registry.refusal(dev, self.protocol, self.source_ip)
        if refusal is not None:
            reason, detail = refusal
        else:
            where = self.elsewhere(dev)
            if where is None:
                return True
            reason = "device_conflict"
            detail = (f"{self.protocol} device {dev!r} from {self.source_ip or '?'} refused: "
                      f"already connected from {where}")
            out.conflict = dev
        out.result = reason
        raw = encode_messages(telemetry).decode() if telemetry else _raw_text(frame, self.text)
        out.dead.append(DeadEntry(reason, detail, raw))
        return False

    def _screen(self, out: Outcome, telemetry: list[Telemetry], now_ms: int) -> None:
        for msg in telemetry:
            ahead = too_far_ahead(msg, now_ms, self.future_skew_ms)
            if ahead is not None:
                out.dead.append(DeadEntry("future_timestamp", ahead, encode_one(msg).decode()))
            else:
                out.telemetry.append(msg)


class Jt808Session(Session):
    """JT/T 808 terminal session: register, authenticate, report."""

    protocol = "jt808"

    def __init__(self, registry: Registry, *, tz_offset_h: float = jt808.DEFAULT_TZ_OFFSET_H,
                 alarm_map: Mapping[int, str] = jt808.ALARM_EVENTS,
                 models: Mapping[str, vendor.Profile] | None = None, **kw: Any) -> None:
        super().__init__(registry, **kw)
        self.tz_offset_h = tz_offset_h
        self.alarm_map = alarm_map
        self.models = vendor.MODELS if models is None else models
        """Vendor alarm profiles by device model (:mod:`devices.vendor`)."""
        self.phone = ""
        self.version = 2013
        self._serial = 0
        self._heads: dict[tuple[str, int], tuple[bytes, int]] = {}
        self._head_phone, self._head_version, self._head = "", 0, (b"", 0)
        self._packets = jt808.Reassembler()

    def _next_serial(self) -> int:
        self._serial = (self._serial + 1) & 0xFFFF
        return self._serial

    def _resp(self, h: jt808.Header, result: int) -> bytes:
        """0x8001 answering the message of header ``h``."""
        return self._reply(h.phone, h.version, h.serial, h.msg_id, result)

    def _reply(self, phone: str, version: int, ack: int, mid: int, result: int) -> bytes:
        """0x8001 (flag, header and its check code cached: this runs once per report).

        The cached part (message id, properties, BCD phone) never holds 0x7D
        or 0x7E, so only the 7 body bytes may need escaping.
        """
        if phone == self._head_phone and version == self._head_version:
            prefix, check = self._head
        else:
            key = (phone, version)
            cached = self._heads.get(key)
            if cached is None:
                head = jt808.response_head(phone, version)
                cached = self._heads[key] = (b"\x7e" + head, xor8(head))
            self._head_phone, self._head_version, self._head = phone, version, cached
            prefix, check = cached
        self._serial = serial = (self._serial + 1) & 0xFFFF
        # XOR of the 7 body bytes without materialising them twice
        x = serial ^ ack ^ mid
        check ^= (x >> 8) ^ (x & 0xFF) ^ result
        body = _RESP_BODY.pack(serial, ack, mid, result, check)
        if b"\x7e" in body or b"\x7d" in body:
            body = jt808.escape(body)
        return prefix + body + b"\x7e"

    def report(self, frame: bytes, now_ms: int) -> tuple[list[Telemetry], bytes] | None:
        """The fast lane: ``frame`` is one plain 0x0200 report of the authenticated terminal.

        Returns its telemetry and the 0x8001 to send once Kafka accepted it,
        exactly what :meth:`on_frame` gives for such a frame, or ``None``
        for anything else (several frames or a partial one, another message,
        another or an unknown device, a fault, a time too far ahead): the
        caller then frames the bytes and calls :meth:`on_frame`.
        """
        if self.device_id is None:
            return None
        profile = vendor.profile_of(self.registry.model_of(self.device_id), self.models)
        fast = jt808.decode_report(frame, self.tz_offset_h, self.alarm_map, profile)
        if fast is None:
            return None
        phone, version, serial, telemetry = fast
        first = telemetry[0]
        dev = first.device_id  # type: ignore[union-attr]
        if (dev != self.device_id or not self.registry.is_accepted(dev, now_ms)
                or first.ts > now_ms + self.future_skew_ms):
            return None
        return telemetry, self._reply(phone, version, serial, jt808.MSG_LOCATION,
                                      jt808.RESULT_OK)

    def _on_frame(self, frame: bytes, now_ms: int) -> Outcome:
        # an authenticated terminal's plain location report: most of the traffic; anything
        # else (another device, an unknown one, a future time, a fault): the full path
        fast = self.report(frame, now_ms)
        if fast is not None:
            return Outcome(telemetry=fast[0], replies=[fast[1]])
        msg = jt808.parse_frame(frame)
        if msg.header.packet_total is not None and msg.header.packet_total > 1:
            return self._on_packet(msg, frame, now_ms)
        return self._dispatch(self._decode(msg, now_ms), frame, now_ms)

    def _decode(self, msg: jt808.Message, now_ms: int) -> jt808.Decoded:
        profile = vendor.profile_of(self.registry.model_of(msg.header.device_id), self.models)
        return jt808.decode_message(msg, tz_offset_h=self.tz_offset_h, now_ms=now_ms,
                                    alarm_map=self.alarm_map, profile=profile)

    def _on_packet(self, msg: jt808.Message, frame: bytes, now_ms: int) -> Outcome:
        """One packet of a sub-packaged message.

        Packets are acknowledged only together, once the whole message is
        joined (and, when it carries telemetry, once Kafka accepted it): an
        acknowledged packet must not be lost if the connection drops before
        the rest arrives. Messages not completed in time are dead-lettered
        as ``truncated``; the terminal resends them.
        """
        h = msg.header
        dev = h.device_id
        out = Outcome()
        if not self.registry.is_accepted(dev, now_ms):
            out.replies.append(self._resp(h, jt808.RESULT_FAILURE))
            return self._unknown(out, dev, frame, [])
        if self.device_id != dev:
            out.result = "not_authenticated"
            out.replies.append(self._resp(h, jt808.RESULT_FAILURE))
            out.dead.append(DeadEntry("not_authenticated", f"jt808 device {dev!r} sent a "
                                      f"0x{h.msg_id:04X} packet before authenticating",
                                      _raw_text(frame, False)))
            return out
        joined, given_up = self._packets.add(msg, now_ms)
        dead = [DeadEntry(e.reason, e.detail, "") for e in given_up]
        if joined is None:
            out.dead = dead
            return out  # held: no reply before the whole message
        whole = self._dispatch(self._decode(joined.message, now_ms), frame, now_ms)
        code = {"ok": jt808.RESULT_OK, "unsupported": jt808.RESULT_UNSUPPORTED}.get(
            whole.result, jt808.RESULT_FAILURE)
        whole.replies = [self._reply(h.phone, h.version, serial, h.msg_id, code)
                         for serial in joined.serials]
        whole.dead[:0] = dead
        return whole

    def _dispatch(self, d: jt808.Decoded, frame: bytes, now_ms: int) -> Outcome:
        h = d.message.header
        dev = h.device_id
        out = Outcome()
        mid = h.msg_id
        if mid == jt808.MSG_TERMINAL_RESPONSE:
            return out
        accepted = self.registry.is_accepted(dev, now_ms)
        if mid == jt808.MSG_REGISTER:
            if not accepted:
                out.replies.append(jt808.encode_register_response(
                    h.phone, self._next_serial(), h.serial, jt808.REGISTER_NO_SUCH_TERMINAL,
                    version=h.version))
                return self._unknown(out, dev, frame, [])
            refused = self._check_registration(out, d, frame)
            if refused is not None:
                out.replies.append(jt808.encode_register_response(
                    h.phone, self._next_serial(), h.serial, refused, version=h.version))
                return out
            out.replies.append(jt808.encode_register_response(
                h.phone, self._next_serial(), h.serial, jt808.RESULT_OK,
                self.registry.auth_code(dev), version=h.version))
            return out
        if not accepted:
            out.replies.append(self._resp(h, jt808.RESULT_FAILURE))
            return self._unknown(out, dev, frame, d.telemetry)
        if mid == jt808.MSG_AUTH:
            code = jt808.decode_auth(d.message.body, h.version)
            if self.device_id != dev and not self._admit(out, dev, frame, []):
                out.replies.append(self._resp(h, jt808.RESULT_FAILURE))
                return out
            if self.registry.check_auth(dev, code):
                self.device_id, self.phone, self.version = dev, h.phone, h.version
                out.device_id = dev
                out.replies.append(self._resp(h, jt808.RESULT_OK))
            else:
                out.result = "auth_failed"
                out.replies.append(self._resp(h, jt808.RESULT_FAILURE))
                out.dead.append(DeadEntry("auth_failed", f"jt808 device {dev!r} sent a wrong "
                                          "authentication code", _raw_text(frame, False)))
            return out
        if mid == jt808.MSG_LOGOUT:
            self.device_id = None
            out.replies.append(self._resp(h, jt808.RESULT_OK))
            return out
        if mid in (jt808.MSG_LOCATION, jt808.MSG_BATCH, jt808.MSG_HEARTBEAT):
            if self.device_id != dev:
                out.result = "not_authenticated"
                out.replies.append(self._resp(h, jt808.RESULT_FAILURE))
                raw = encode_messages(d.telemetry).decode() if d.telemetry else _raw_text(frame, False)
                out.dead.append(DeadEntry("not_authenticated", f"jt808 device {dev!r} sent "
                                          f"0x{mid:04X} before authenticating", raw))
                return out
            self._screen(out, d.telemetry, now_ms)
            for err in d.errors:
                out.dead.append(DeadEntry(err.reason, err.detail, _raw_text(frame, False)))
            out.replies.append(self._resp(h, jt808.RESULT_OK))
            return out
        out.result = "unsupported"
        out.replies.append(self._resp(h, jt808.RESULT_UNSUPPORTED))
        return out

    def _check_registration(self, out: Outcome, d: jt808.Decoded, frame: bytes) -> int | None:
        """The 0x8100 result refusing this registration, or None to hand out the code."""
        h = d.message.header
        dev = h.device_id
        if self.device_id != dev and not self._admit(out, dev, frame, []):
            return (REGISTER_TERMINAL_REGISTERED if out.result == "device_conflict"
                    else jt808.REGISTER_NO_SUCH_TERMINAL)
        entry = self.registry.provisioned(dev)
        if entry is None or entry.jt808 is None:
            return None
        reg = jt808.decode_register(d.message.body, h.version)
        wrong = entry.jt808.mismatches(reg.province, reg.city, reg.maker, reg.model,
                                       reg.terminal_id, reg.plate)
        if not wrong:
            return None
        out.result = "registration_mismatch"
        out.dead.append(DeadEntry("registration_mismatch", f"jt808 device {dev!r} registered "
                                  f"with {', '.join(wrong)} other than provisioned",
                                  _raw_text(frame, False)))
        return jt808.REGISTER_NO_SUCH_TERMINAL

    def command(self, command: str, interval_s: int) -> bytes | None:
        if self.device_id is None:
            return None
        return jt808.encode_report_interval(self.phone, self._next_serial(), interval_s,
                                            version=self.version)


class WatchSession(Session):
    """Watch-protocol session."""

    protocol = "watch"
    text = True

    def __init__(self, registry: Registry, *, tz_offset_h: float = 0.0,
                 status_map: Mapping[int, str] = watch.STATUS_EVENTS, **kw: Any) -> None:
        super().__init__(registry, **kw)
        self.tz_offset_h = tz_offset_h
        self.status_map = status_map
        self.maker = "3G"
        self.index: str | None = None

    def _on_frame(self, frame: bytes, now_ms: int) -> Outcome:
        d = watch.decode(frame, tz_offset_h=self.tz_offset_h, now_ms=now_ms,
                         status_map=self.status_map)
        dev = d.frame.device_id
        out = Outcome()
        if not self.registry.is_accepted(dev, now_ms):
            return self._unknown(out, dev, frame, d.telemetry)
        if dev != self.device_id and not self._admit(out, dev, frame, d.telemetry):
            return out
        self.device_id, self.maker, self.index = dev, d.frame.maker, d.frame.index
        out.device_id = dev
        self._screen(out, d.telemetry, now_ms)
        if d.reply is not None:
            out.replies.append(d.reply)
        if not d.telemetry and d.reply is None:
            out.result = "ignored"
        return out

    def command(self, command: str, interval_s: int) -> bytes | None:
        if self.device_id is None:
            return None
        return watch.encode_upload_interval(self.maker, self.device_id, interval_s, self.index)


class Gt06Session(Session):
    """GT06 session: login first, then locations, alarms and status."""

    protocol = "gt06"

    def _on_frame(self, frame: bytes, now_ms: int) -> Outcome:
        d = gt06.decode(frame)
        out = Outcome()
        if d.login_id is not None:
            if not self.registry.is_accepted(d.login_id, now_ms):
                return self._unknown(out, d.login_id, frame, [])
            if d.login_id != self.device_id and not self._admit(out, d.login_id, frame, []):
                return out
            self.device_id = out.device_id = d.login_id
            if d.reply:
                out.replies.append(d.reply)
            return out
        if self.device_id is None:
            out.result = "not_authenticated"
            out.dead.append(DeadEntry("not_authenticated", "gt06 data before a login",
                                      _raw_text(frame, False)))
            return out
        telemetry = d.telemetry(self.device_id, now_ms)
        if not self.registry.is_accepted(self.device_id, now_ms):
            return self._unknown(out, self.device_id, frame, telemetry)
        self._screen(out, telemetry, now_ms)
        if d.reply:
            out.replies.append(d.reply)
        if not telemetry and not d.reply:
            out.result = "ignored"
        return out


class H02Session(Session):
    """H02 text session (no replies)."""

    protocol = "h02"
    text = True

    def _on_frame(self, frame: bytes, now_ms: int) -> Outcome:
        d = h02.decode(frame, now_ms=now_ms)
        out = Outcome()
        if not self.registry.is_accepted(d.device_id, now_ms):
            return self._unknown(out, d.device_id, frame, d.telemetry)
        if d.device_id != self.device_id and not self._admit(out, d.device_id, frame,
                                                             d.telemetry):
            return out
        self.device_id = out.device_id = d.device_id
        self._screen(out, d.telemetry, now_ms)
        if not d.telemetry:
            out.result = "ignored"
        return out
