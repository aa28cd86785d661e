"""A JT/T 808 frame to canonical telemetry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from devices import vendor
from devices.errors import FrameError
from devices.jt808.codes import MSG_BATCH, MSG_HEARTBEAT, MSG_LOCATION
from devices.jt808.framing import Message, parse_content, parse_frame
from devices.jt808.location import ALARM_EVENTS, DEFAULT_TZ_OFFSET_H, decode_batch, decode_location
from geofence.model import DeviceEvent, Telemetry


@dataclass(slots=True)
class Decoded:
    """What one frame means: the message, its canonical telemetry and per-item errors."""

    message: Message
    telemetry: list[Telemetry] = field(default_factory=list)
    errors: list[FrameError] = field(default_factory=list)
    backfill: bool = False


def decode(frame: bytes, *, tz_offset_h: float = DEFAULT_TZ_OFFSET_H,
           now_ms: int | None = None, alarm_map: Mapping[int, str] = ALARM_EVENTS,
           escaped: bool = True, model: str | None = None,
           models: Mapping[str, vendor.Profile] = vendor.MODELS) -> Decoded:
    """Decode a frame into canonical telemetry.

    0x0200 gives a fix plus alarm and vendor-item events, 0x0704 one fix
    (plus events) per item, 0x0002 a ``heartbeat`` event stamped ``now_ms``
    (when given). Other messages decode to no telemetry. ``model`` (the
    device model as provisioned) picks the vendor profile from ``models``.
    """
    msg = parse_frame(frame) if escaped else parse_content(frame)
    h = msg.header
    if h.packet_total is not None and h.packet_total > 1:
        raise FrameError("unsupported", f"sub-packaged message 0x{h.msg_id:04X} "
                         f"({h.packet_index}/{h.packet_total}): join it with a Reassembler")
    return decode_message(msg, tz_offset_h=tz_offset_h, now_ms=now_ms, alarm_map=alarm_map,
                          profile=vendor.profile_of(model, models))


def decode_message(msg: Message, *, tz_offset_h: float = DEFAULT_TZ_OFFSET_H,
                   now_ms: int | None = None, alarm_map: Mapping[int, str] = ALARM_EVENTS,
                   profile: vendor.Profile = vendor.DEFAULT) -> Decoded:
    """Canonical telemetry of a parsed (or reassembled) message; see :func:`decode`."""
    out = Decoded(msg)
    h = msg.header
    if h.msg_id == MSG_LOCATION:
        out.telemetry = decode_location(msg.body, tz_offset_h).telemetry(
            h.device_id, alarm_map, profile)
    elif h.msg_id == MSG_BATCH:
        kind, items = decode_batch(msg.body, tz_offset_h)
        out.backfill = kind == 1
        for item in items:
            if isinstance(item, FrameError):
                out.errors.append(item)
            else:
                out.telemetry.extend(item.telemetry(h.device_id, alarm_map, profile))
    elif h.msg_id == MSG_HEARTBEAT and now_ms is not None:
        out.telemetry = [DeviceEvent(device_id=h.device_id, ts=now_ms, event="heartbeat")]
    return out
