"""The "watch" protocol of 3G/4G wristbands and kids' watches (SeTracker family).

Frames are text ``[VV*ID*LLLL*CONTENT]`` or, on some firmware, with an index
field ``[VV*ID*NNNN*LLLL*CONTENT]``: ``VV`` the maker code (``SG``, ``3G``,
``CS``, ``ZJ``...), ``ID`` the device id, ``LLLL`` the content length in hex.
Binary payloads inside CONTENT escape the bracket and separator bytes with
``0x7D`` (``7D 01``->``7D``, ``7D 02``->``[``, ``7D 03``->``]``, ``7D 04``->``,``,
``7D 05``->``*``).

Position messages (``UD``, ``UD2``, ``UD3``, ``UD_LTE``, ``UD_WCDMA``, ``WT``,
``AL`` and vendor ``AL...`` alarms) carry::

    date(ddmmyy),time(hhmmss),A|V,lat,N|S,lon,E|W,speed km/h,course,altitude,
    satellites,gsm,battery %,steps,tumbles,status(hex),cells/wifi...

Times are UTC unless configured (most firmware sends UTC; Traccar reads
them so). The status word's alarm bits (Traccar's watch decoder and the
SeTracker protocol sheet) map to device events:

===  ===================================  ===============
bit  meaning                              event
===  ===================================  ===============
0    low battery (state)                  ``battery_low``
14   power cut                            ``power_off``
16   SOS alarm                            ``sos``
17   low battery alarm                    ``battery_low``
20   watch taken off the wrist            ``removed``
21   fall alarm                           ``fall``
22   fall alarm (second sensor)           ``fall``
===  ===================================  ===============

Replies the devices expect: ``LK`` -> ``[VV*ID*0002*LK]``, ``AL*`` ->
``[VV*ID*0002*AL]``, ``INIT,...`` -> ``[VV*ID*0006*INIT,1]``, ``TKQ``/``TKQ2``
echoed. Pursuit mode uses ``UPLOAD,<seconds>``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from devices.codec import epoch_ms
from devices.errors import FrameError
from geofence.model import DeviceEvent, Fix, Telemetry

STATUS_EVENTS: Mapping[int, str] = {
    0: "battery_low", 14: "power_off", 16: "sos", 17: "battery_low",
    20: "removed", 21: "fall", 22: "fall",
}
"""Default status-bit -> device-event mapping."""

POSITION_TYPES = frozenset({"UD", "UD2", "UD3", "UD_LTE", "UD_WCDMA", "WT", "AL", "AL_LTE"})

_UNESCAPE = {0x01: 0x7D, 0x02: 0x5B, 0x03: 0x5D, 0x04: 0x2C, 0x05: 0x2A}
_HEX = frozenset(b"0123456789abcdefABCDEF")


def unescape(data: bytes) -> bytes:
    """Undo the watch protocol's 0x7D escaping."""
    if 0x7D not in data:
        return data
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b == 0x7D:
            if i + 1 >= n or data[i + 1] not in _UNESCAPE:
                raise FrameError("bad_escape", f"0x7D not followed by 01..05 at offset {i}")
            out.append(_UNESCAPE[data[i + 1]])
            i += 2
        else:
            out.append(b)
            i += 1
    return bytes(out)


def escape(data: bytes) -> bytes:
    """Escape ``0x7D [ ] , *`` for a binary payload."""
    table = {v: k for k, v in _UNESCAPE.items()}
    out = bytearray()
    for b in data:
        if b in table:
            out += bytes((0x7D, table[b]))
        else:
            out.append(b)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class WatchFrame:
    """One watch frame."""

    maker: str
    device_id: str
    length: int
    content: bytes
    index: str | None = None

    @property
    def kind(self) -> str:
        """The message type: content up to the first comma (``UD``, ``LK``, ...)."""
        head = self.content.split(b",", 1)[0]
        return head.decode("latin-1")

    @property
    def fields(self) -> list[str]:
        """Comma-separated fields after the type (text messages only)."""
        parts = self.content.decode("latin-1").split(",")
        return parts[1:]


def _is_hex4(b: bytes) -> bool:
    return len(b) == 4 and all(c in _HEX for c in b)


def parse_frame(frame: bytes) -> WatchFrame:
    """Parse ``[VV*ID*LLLL*CONTENT]`` (or with the index field).

    Raises
    ------
    FrameError
        ``malformed`` when brackets, separators or the hex length are wrong.
    """
    if len(frame) < 2 or frame[0] != 0x5B or frame[-1] != 0x5D:
        raise FrameError("malformed", "a watch frame is enclosed in [ ]")
    inner = frame[1:-1]
    parts = inner.split(b"*", 4)
    index = None
    if len(parts) == 5 and _is_hex4(parts[2]) and _is_hex4(parts[3]):
        maker, dev, idx, length, content = parts
        index = idx.decode()
    else:
        parts = inner.split(b"*", 3)
        if len(parts) != 4:
            raise FrameError("malformed", f"expected VV*ID*LLLL*CONTENT, got {inner[:40]!r}")
        maker, dev, length, content = parts
    if not _is_hex4(length):
        raise FrameError("malformed", f"length field {length[:8]!r} is not 4 hex digits")
    if not dev or len(dev) > 32 or not dev.isalnum():
        raise FrameError("malformed", f"device id {dev[:40]!r} is not 1-32 letters or digits")
    return WatchFrame(maker.decode("latin-1"), dev.decode(), int(length, 16),
                      unescape(content), index)


def _num(value: str, what: str) -> float:
    try:
        v = float(value.strip())
    except ValueError:
        raise FrameError("malformed", f"{what} {value[:40]!r} is not a number") from None
    if not math.isfinite(v):
        raise FrameError("non_finite_number", f"{what} is {value[:40]!r}")
    return v


@dataclass(slots=True)
class WatchPosition:
    """A decoded position message."""

    ts: int
    valid: bool
    lat: float
    lon: float
    speed_kmh: float
    course: float
    altitude_m: float
    satellites: int
    battery_pct: float | None
    status: int
    extras: dict[str, str] = field(default_factory=dict)

    def events(self, status_map: Mapping[int, str] = STATUS_EVENTS) -> list[str]:
        """Device events of the status word, each once."""
        out: list[str] = []
        for bit, name in sorted(status_map.items()):
            if self.status >> bit & 1 and name not in out:
                out.append(name)
        return out


def decode_position(fields: list[str], tz_offset_h: float = 0.0) -> WatchPosition:
    """Decode the fields of a UD/UD2/AL... message."""
    if len(fields) < 16:
        raise FrameError("truncated", f"position message has {len(fields)} fields, needs 16")
    d, t = fields[0].strip(), fields[1].strip()
    if len(d) != 6 or len(t) != 6 or not (d + t).isascii() or not (d + t).isdigit():
        raise FrameError("invalid_time", f"date {d!r} time {t!r} are not ddmmyy hhmmss")
    ts = epoch_ms(2000 + int(d[4:6]), int(d[2:4]), int(d[0:2]),
                  int(t[0:2]), int(t[2:4]), int(t[4:6]), tz_offset_h, "watch time")
    lat = _num(fields[3], "latitude")
    lon = _num(fields[5], "longitude")
    if fields[4].strip() == "S":
        lat = -abs(lat)
    if fields[6].strip() == "W":
        lon = -abs(lon)
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise FrameError("out_of_range", f"latitude {lat} or longitude {lon} out of range")
    battery = _num(fields[12], "battery")
    try:
        status = int(fields[15].strip() or "0", 16)
    except ValueError:
        raise FrameError("malformed", f"status {fields[15]!r} is not hex") from None
    return WatchPosition(
        ts=ts, valid=fields[2].strip() == "A", lat=lat, lon=lon,
        speed_kmh=_num(fields[7], "speed"), course=_num(fields[8], "course"),
        altitude_m=_num(fields[9], "altitude"), satellites=int(_num(fields[10], "satellites")),
        battery_pct=battery if 0 <= battery <= 100 else None, status=status,
        extras={"gsm": fields[11].strip(), "steps": fields[13].strip()},
    )


@dataclass(slots=True)
class Decoded:
    """What one watch frame means."""

    frame: WatchFrame
    telemetry: list[Telemetry] = field(default_factory=list)
    reply: bytes | None = None


def _position_type(kind: str) -> bool:
    return kind in POSITION_TYPES or kind.startswith("AL")


def decode(frame: bytes, *, tz_offset_h: float = 0.0, now_ms: int | None = None,
           status_map: Mapping[int, str] = STATUS_EVENTS) -> Decoded:
    """Decode one frame into canonical telemetry and the reply it calls for."""
    wf = parse_frame(frame)
    out = Decoded(wf)
    kind = wf.kind
    dev = wf.device_id
    if _position_type(kind):
        pos = decode_position(wf.fields, tz_offset_h)
        heading = pos.course if 0 <= pos.course <= 360 else None
        alt = pos.altitude_m if -1000 <= pos.altitude_m <= 20000 else None
        out.telemetry.append(Fix(
            device_id=dev, ts=pos.ts, lat=pos.lat, lon=pos.lon, valid=pos.valid,
            speed_mps=round(pos.speed_kmh / 3.6, 3) if 0 <= pos.speed_kmh <= 3600 else None,
            heading_deg=heading,
            altitude_m=alt, battery_pct=pos.battery_pct, source="gnss" if pos.valid else None))
        for name in pos.events(status_map):
            out.telemetry.append(DeviceEvent(device_id=dev, ts=pos.ts, event=name,  # type: ignore[arg-type]
                                             detail=f"watch status 0x{pos.status:08X}"))
        if kind.startswith("AL"):
            out.reply = reply(wf, "AL")
    elif kind == "LK":
        if now_ms is not None:
            out.telemetry.append(DeviceEvent(device_id=dev, ts=now_ms, event="heartbeat"))
        out.reply = reply(wf, "LK")
    elif kind == "INIT":
        out.reply = reply(wf, "INIT,1")
    elif kind in ("TKQ", "TKQ2"):
        out.reply = reply(wf, kind)
    return out


def reply(wf: WatchFrame, content: str) -> bytes:
    """A reply in the frame's own shape (maker code, id, index field if it had one)."""
    return encode(wf.maker, wf.device_id, content, wf.index)


def encode(maker: str, device_id: str, content: str | bytes, index: str | None = None) -> bytes:
    """Build ``[VV*ID*LLLL*CONTENT]`` (or with ``index``).

    Examples
    --------
    >>> encode("SG", "8800000015", "LK")
    b'[SG*8800000015*0002*LK]'
    >>> encode("3G", "1234567890", "UPLOAD,15")
    b'[3G*1234567890*0009*UPLOAD,15]'
    """
    raw = content.encode("latin-1") if isinstance(content, str) else escape(content)
    head = f"[{maker}*{device_id}*" + (f"{index}*" if index is not None else "")
    return head.encode() + f"{len(raw):04X}*".encode() + raw + b"]"


def encode_upload_interval(maker: str, device_id: str, interval_s: int,
                           index: str | None = None) -> bytes:
    """Pursuit-mode command: report every ``interval_s`` seconds."""
    return encode(maker, device_id, f"UPLOAD,{int(interval_s)}", index)


def encode_position(maker: str, device_id: str, ts_ms: int, lat: float, lon: float, *,
                    kind: str = "UD", valid: bool = True, speed_kmh: float = 0.0,
                    course: float = 0.0, altitude_m: float = 0.0, satellites: int = 8,
                    battery_pct: int = 90, status: int = 0) -> bytes:
    """A position message as a wristband would send it (for tests and simulators)."""
    import time as _time

    t = _time.gmtime(ts_ms // 1000)
    content = (
        f"{kind},{t.tm_mday:02d}{t.tm_mon:02d}{t.tm_year % 100:02d},"
        f"{t.tm_hour:02d}{t.tm_min:02d}{t.tm_sec:02d},{'A' if valid else 'V'},"
        f"{abs(lat):.6f},{'N' if lat >= 0 else 'S'},{abs(lon):.6f},{'E' if lon >= 0 else 'W'},"
        f"{speed_kmh:.2f},{course:.1f},{altitude_m:.1f},{satellites},100,{battery_pct},0,0,"
        f"{status:08X},0,0")
    return encode(maker, device_id, content)
