"""GT06 (Concox and compatible) binary protocol: decoder and encoder.

Frame: ``78 78 LEN PROTO ... SERIAL(2) CRC(2) 0D 0A`` (``79 79`` with a
2-byte length on newer firmware). The CRC is CRC-ITU over LEN..SERIAL.

Messages handled:

- ``0x01`` login: 8-byte BCD IMEI -> the device id (leading zero dropped);
  the server answers ``0x01`` with the same serial.
- ``0x12`` / ``0x22`` GPS + LBS location; ``0x16`` / ``0x26`` alarm
  (GPS + LBS + status); ``0x13`` status/heartbeat (answered with ``0x13``);
  alarms answered with their protocol number.

Location times are UTC (GT06 sheet). Course/status word: bit 12 GPS
positioned, bit 11 west longitude, bit 10 north latitude (0 = south), bits
0-9 course. Coordinates are minutes x 30000 (``value / 1_800_000`` degrees).

Alarm/language byte of ``0x16`` (GT06 sheet): ``01`` SOS -> ``sos``, ``02``
power cut -> ``power_off``, ``03`` shock -> ``vibration``, ``0E``/``19``
low battery -> ``battery_low``, ``13`` tamper -> ``tamper``, ``18`` removed
-> ``removed``, ``23`` fall -> ``fall`` (the last four are wearable-firmware
codes as in Traccar's GT06 decoder). Terminal-information bits 3-5 give
``100`` SOS, ``011`` low battery, ``010`` power cut, ``001`` shock, and on
wearable firmware ``111`` taken off (a capture in Traccar's GT06 tests).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from devices.codec import crc_itu, epoch_ms
from devices.errors import FrameError
from geofence.model import DeviceEvent, Fix, Telemetry

MSG_LOGIN = 0x01
MSG_GPS = 0x12
MSG_STATUS = 0x13
MSG_ALARM = 0x16
MSG_GPS_2 = 0x22
MSG_ALARM_2 = 0x26
MSG_COMMAND = 0x80

ALARM_CODES: Mapping[int, str] = {
    0x01: "sos", 0x02: "power_off", 0x03: "vibration", 0x0E: "battery_low",
    0x13: "tamper", 0x18: "removed", 0x19: "battery_low", 0x23: "fall",
}
TERMINAL_INFO_ALARMS: Mapping[int, str] = {
    4: "sos", 3: "battery_low", 2: "power_off", 1: "vibration", 7: "removed",
}


@dataclass(frozen=True, slots=True)
class Gt06Frame:
    """One GT06 frame: protocol number, content (between it and the serial), serial."""

    protocol: int
    content: bytes
    serial: int


def parse_frame(frame: bytes) -> Gt06Frame:
    """Check length, terminator and CRC; split the frame.

    Raises
    ------
    FrameError
        ``malformed``, ``truncated``, ``length_mismatch``, ``bad_checksum``.
    """
    if len(frame) < 10 or frame[:2] not in (b"\x78\x78", b"\x79\x79"):
        raise FrameError("malformed", "a GT06 frame starts with 7878 or 7979")
    long_form = frame[0] == 0x79
    head = 4 if long_form else 3
    length = int.from_bytes(frame[2:4], "big") if long_form else frame[2]
    expected = head + length + 2
    if len(frame) != expected:
        raise FrameError("truncated" if len(frame) < expected else "length_mismatch",
                         f"length field {length} means {expected} bytes, got {len(frame)}")
    if frame[-2:] != b"\r\n":
        raise FrameError("malformed", "a GT06 frame ends with 0D0A")
    crc = crc_itu(frame[2:-4])
    got = int.from_bytes(frame[-4:-2], "big")
    if crc != got:
        raise FrameError("bad_checksum", f"CRC 0x{got:04X}, computed 0x{crc:04X}")
    serial = int.from_bytes(frame[-6:-4], "big")
    return Gt06Frame(frame[head], frame[head + 1:-6], serial)


def encode(protocol: int, content: bytes, serial: int) -> bytes:
    """Build a short-form frame (``7878``)."""
    body = bytes((len(content) + 5, protocol)) + content + struct.pack(">H", serial & 0xFFFF)
    return b"\x78\x78" + body + struct.pack(">H", crc_itu(body)) + b"\r\n"


def encode_ack(protocol: int, serial: int) -> bytes:
    """Server acknowledgement of ``protocol`` (login, status, alarm)."""
    return encode(protocol, b"", serial)


def encode_login(imei: str, serial: int = 1) -> bytes:
    """A device's login frame (for tests and simulators)."""
    return encode(MSG_LOGIN, bytes.fromhex(imei.rjust(16, "0")), serial)


def imei_of(content: bytes) -> str:
    """Device id from a login's 8 BCD bytes."""
    if len(content) < 8:
        raise FrameError("truncated", f"login IMEI of {len(content)} bytes < 8")
    digits = content[:8].hex()
    if not digits.isdigit():
        raise FrameError("malformed", f"IMEI {digits!r} is not BCD")
    return digits[1:] if digits[0] == "0" else digits


@dataclass(slots=True)
class Gt06Position:
    """The GPS part of a location or alarm packet."""

    ts: int
    lat: float
    lon: float
    speed_kmh: int
    course: int
    valid: bool
    satellites: int
    events: list[str] = field(default_factory=list)


def decode_gps(content: bytes) -> Gt06Position:
    """Decode date (UTC), satellites, coordinates, speed and course/status."""
    if len(content) < 18:
        raise FrameError("truncated", f"GPS block of {len(content)} bytes < 18")
    y, mo, d, h, mi, s = content[:6]
    ts = epoch_ms(2000 + y, mo, d, h, mi, s, 0.0, "GT06 time")
    sats = content[6] & 0x0F
    lat_raw, lon_raw, speed, flags = struct.unpack_from(">IIBH", content, 7)
    lat = lat_raw / 1_800_000.0
    lon = lon_raw / 1_800_000.0
    if lat > 90.0 or lon > 180.0:
        raise FrameError("out_of_range", f"latitude {lat} or longitude {lon} out of range")
    if not flags & (1 << 10):
        lat = -lat
    if flags & (1 << 11):
        lon = -lon
    return Gt06Position(ts, round(lat, 7), round(lon, 7), speed, flags & 0x3FF,
                        bool(flags & (1 << 12)), sats)


def _alarm_events(content: bytes) -> list[str]:
    """Events of an alarm packet: terminal-info bits and the alarm byte after the LBS block."""
    pos = 18
    if len(content) <= pos:
        return []
    lbs_len = content[pos]
    pos += lbs_len if lbs_len else 1
    if len(content) < pos + 4:
        raise FrameError("truncated", "alarm packet status block missing")
    info, alarm = content[pos], content[pos + 3]
    out: list[str] = []
    name = TERMINAL_INFO_ALARMS.get((info >> 3) & 0x7)
    if name:
        out.append(name)
    name = ALARM_CODES.get(alarm)
    if name and name not in out:
        out.append(name)
    return out


@dataclass(slots=True)
class Decoded:
    """What one GT06 frame means (``device_id`` only set by a login)."""

    frame: Gt06Frame
    login_id: str | None = None
    position: Gt06Position | None = None
    heartbeat: bool = False
    reply: bytes | None = None

    def telemetry(self, device_id: str, now_ms: int | None = None) -> list[Telemetry]:
        """Canonical messages for ``device_id`` (known from the login)."""
        out: list[Telemetry] = []
        p = self.position
        if p is not None:
            out.append(Fix(device_id=device_id, ts=p.ts, lat=p.lat, lon=p.lon, valid=p.valid,
                           speed_mps=round(p.speed_kmh / 3.6, 3), heading_deg=float(p.course),
                           source="gnss" if p.valid else None))
            for name in p.events:
                out.append(DeviceEvent(device_id=device_id, ts=p.ts, event=name,  # type: ignore[arg-type]
                                       detail="gt06 alarm"))
        elif self.heartbeat and now_ms is not None:
            out.append(DeviceEvent(device_id=device_id, ts=now_ms, event="heartbeat"))
        return out


def decode(frame: bytes) -> Decoded:
    """Decode one frame."""
    f = parse_frame(frame)
    out = Decoded(f)
    if f.protocol == MSG_LOGIN:
        out.login_id = imei_of(f.content)
        out.reply = encode_ack(MSG_LOGIN, f.serial)
    elif f.protocol in (MSG_GPS, MSG_GPS_2):
        out.position = decode_gps(f.content)
    elif f.protocol in (MSG_ALARM, MSG_ALARM_2):
        out.position = decode_gps(f.content)
        out.position.events = _alarm_events(f.content)
        out.reply = encode_ack(f.protocol, f.serial)
    elif f.protocol == MSG_STATUS:
        out.heartbeat = True
        out.reply = encode_ack(MSG_STATUS, f.serial)
    return out


def encode_location(ts_ms: int, lat: float, lon: float, serial: int, *, speed_kmh: int = 0,
                    course: int = 0, valid: bool = True, satellites: int = 8) -> bytes:
    """A 0x12 GPS+LBS location frame (for tests and simulators)."""
    import time as _time

    t = _time.gmtime(ts_ms // 1000)
    flags = (course % 360) | (1 << 12 if valid else 0) | (1 << 10 if lat >= 0 else 0) | (
        1 << 11 if lon < 0 else 0)
    content = bytes((t.tm_year % 100, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                     0xC0 | (satellites & 0x0F)))
    content += struct.pack(">IIBH", round(abs(lat) * 1_800_000), round(abs(lon) * 1_800_000),
                           speed_kmh, flags)
    content += bytes.fromhex("01CC00287D001F71")  # LBS: MCC 460, MNC 0, LAC, cell id
    return encode(MSG_GPS, content, serial)
