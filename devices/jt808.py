"""JT/T 808 (China's road-transport terminal protocol): decoder and encoder.

Pure: bytes in, typed objects out, and the reverse. No sockets, no Kafka.
Used by the gateway's JT/T 808 server, ``wardstream decode --protocol jt808``,
the simulators (which build real terminal traffic with the ``encode_*``
functions) and the pursuit-mode downlink (:func:`encode_report_interval`).

Frame layout (JT/T 808-2013 section 4.4, 2019 section 4.4)::

    7E | header | body | check code | 7E

- Inside the flags ``0x7E`` is escaped as ``7D 02`` and ``0x7D`` as ``7D 01``.
- The check code is the XOR of header and body bytes.
- Header 2013: message id (WORD), properties (WORD: bits 0-9 body length,
  10-12 encryption, 13 sub-package, 14 reserved), terminal phone number
  (6 BCD bytes), serial number (WORD), optional packet total/index.
- Header 2019: property bit 14 set, then a protocol-version BYTE and a
  10-byte BCD terminal phone number.

Device ids: the phone number's BCD digits. A 2019 number (20 digits) has its
leading zeros dropped down to 12 digits, so one terminal gets the same id
whichever header version it speaks (``00000000013912344329`` and
``013912344329`` are both ``"013912344329"``).

Times in location reports are BCD ``YYMMDDhhmmss`` in Beijing time (UTC+8)
unless configured otherwise (``WARDSTREAM_JT808_TZ_OFFSET_H``).

Alarm bits -> device events (:data:`ALARM_EVENTS`, overridable per call):

====  ============================================  ===============
bit   meaning (standard / vendor)                   event
====  ============================================  ===============
0     emergency alarm (SOS button), standard        ``sos``
7     terminal main power under-voltage, standard   ``battery_low``
8     terminal main power cut, standard             ``power_off``
15    vendor: vibration (reserved in 2013)          ``vibration``
16    vendor: wristband strap off the body          ``removed``
17    vendor: case opened / strap cut               ``tamper``
18    vendor: low battery                           ``battery_low``
29    collision warning, standard; wearables: fall  ``fall``
30    rollover warning, standard; wearables: fall   ``fall``
====  ============================================  ===============

Bits 15-18 are reserved in the 2013 standard; wristband vendors use them for
the events above (Traccar's Huabao decoder reads 15 as vibration, 16-17 as
tampering and 18 as low battery; bit 17 as tamper is confirmed by a capture
in its tests). A deployment whose devices differ passes its own mapping.

Status bits read: 1 = positioned (fix valid), 2 = south latitude, 3 = west
longitude. Additional-information items read: 0x01 mileage (1/10 km), 0x30
signal strength, 0x31 GNSS satellites, 0xFE battery percent (vendor item,
as in Traccar's captures); the rest are kept raw in :attr:`Location.extras`.

Vendor items -> device events: wristbands that report strap removal,
vibration or tamper in vendor additional-information items (``0xEB``
sub-items, ``0xD0``) get those events beside the fix, as the device model's
profile in :mod:`devices.vendor` says (``model`` and ``models`` arguments);
a model's profile may also replace the alarm-bit map above.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from devices import vendor
from devices.codec import bcd_time_ms, digits_bcd, ms_to_bcd_time, xor8
from devices.errors import FrameError
from geofence.model import DeviceEvent, Fix, Telemetry

FLAG = 0x7E
ESC = 0x7D

# terminal -> platform
MSG_TERMINAL_RESPONSE = 0x0001
MSG_HEARTBEAT = 0x0002
MSG_LOGOUT = 0x0003
MSG_REGISTER = 0x0100
MSG_AUTH = 0x0102
MSG_LOCATION = 0x0200
MSG_BATCH = 0x0704
# platform -> terminal
MSG_PLATFORM_RESPONSE = 0x8001
MSG_REGISTER_RESPONSE = 0x8100
MSG_SET_PARAMS = 0x8103

PARAM_REPORT_INTERVAL = 0x0029
"""Parameter id of the default time-based reporting interval (DWORD, seconds)."""

RESULT_OK = 0
RESULT_FAILURE = 1
RESULT_BAD_MESSAGE = 2
RESULT_UNSUPPORTED = 3
REGISTER_NO_SUCH_TERMINAL = 4
"""0x8100 result: the terminal is not in the platform's database."""

ALARM_EVENTS: Mapping[int, str] = {
    0: "sos", 7: "battery_low", 8: "power_off", 15: "vibration", 16: "removed",
    17: "tamper", 18: "battery_low", 29: "fall", 30: "fall",
}
"""Default alarm-bit -> device-event mapping (see the module docstring)."""

STATUS_FIX = 1 << 1
STATUS_SOUTH = 1 << 2
STATUS_WEST = 1 << 3

TLV_MILEAGE = 0x01
TLV_SIGNAL = 0x30
TLV_SATELLITES = 0x31
TLV_BATTERY = 0xFE

DEFAULT_TZ_OFFSET_H = 8.0


# --------------------------------------------------------------------------- framing


def unescape(data: bytes) -> bytes:
    """Undo 0x7D escaping (``7D 02`` -> ``7E``, ``7D 01`` -> ``7D``).

    Raises
    ------
    FrameError
        ``bad_escape`` for ``7D`` followed by anything else or at the end.
    """
    if ESC not in data:
        return data
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        j = data.find(ESC, i)
        if j < 0:
            out += data[i:]
            break
        out += data[i:j]
        if j + 1 >= n:
            raise FrameError("bad_escape", f"0x7D at offset {j} ends the frame")
        nxt = data[j + 1]
        if nxt == 0x02:
            out.append(FLAG)
        elif nxt == 0x01:
            out.append(ESC)
        else:
            raise FrameError("bad_escape", f"0x7D followed by 0x{nxt:02X} at offset {j}")
        i = j + 2
    return bytes(out)


def escape(data: bytes) -> bytes:
    """Escape 0x7D and 0x7E for transmission."""
    if ESC not in data and FLAG not in data:
        return data
    return data.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")


@dataclass(slots=True)
class Header:
    """A decoded message header."""

    msg_id: int
    version: int
    """2013 (also used for 2011) or 2019."""
    phone: str
    """The terminal phone number's BCD digits as sent."""
    serial: int
    protocol_version: int = 0
    encryption: int = 0
    packet_total: int | None = None
    packet_index: int | None = None

    @property
    def device_id(self) -> str:
        """The device id used by wardstream (see the module docstring)."""
        return device_id_of(self.phone)


def device_id_of(phone: str) -> str:
    """Canonical device id of a terminal phone number (leading zeros beyond 12 digits dropped).

    Examples
    --------
    >>> device_id_of("00000000013912344329"), device_id_of("013511221122")
    ('013912344329', '013511221122')
    """
    if len(phone) > 12:
        stripped = phone.lstrip("0")
        return stripped.rjust(12, "0") if len(stripped) <= 12 else stripped
    return phone


@dataclass(slots=True)
class Message:
    """One JT/T 808 message: its header and (unescaped) body."""

    header: Header
    body: bytes


def parse_frame(frame: bytes) -> Message:
    """Parse one frame as it appears on the wire (``7E ... 7E``, escaped).

    Raises
    ------
    FrameError
        ``malformed`` (no flags), ``bad_escape``, ``truncated``,
        ``length_mismatch``, ``bad_checksum``.
    """
    if len(frame) < 2 or frame[0] != FLAG or frame[-1] != FLAG:
        raise FrameError("malformed", "a JT/T 808 frame starts and ends with 0x7E")
    return parse_content(unescape(frame[1:-1]))


def parse_content(content: bytes) -> Message:
    """Parse an unescaped frame without its flags: header, body and check code."""
    n = len(content)
    if n < 13:
        raise FrameError("truncated", f"{n} bytes is shorter than the smallest header + check code")
    if xor8(content):  # the XOR over the bytes and their check code is 0 when they agree
        check = xor8(content[:-1])
        raise FrameError(
            "bad_checksum", f"check code 0x{content[-1]:02X}, computed 0x{check:02X}")
    msg_id, props = struct.unpack_from(">HH", content, 0)
    body_len = props & 0x3FF
    encryption = (props >> 10) & 0x7
    split = bool(props & 0x2000)
    if props & 0x4000:
        if n < 18:
            raise FrameError("truncated", f"{n} bytes is shorter than a 2019 header")
        version, proto = 2019, content[4]
        phone = content[5:15].hex()
        (serial,) = struct.unpack_from(">H", content, 15)
        pos = 17
    else:
        version, proto = 2013, 0
        phone = content[4:10].hex()
        (serial,) = struct.unpack_from(">H", content, 10)
        pos = 12
    total = index = None
    if split:
        if n < pos + 5:
            raise FrameError("truncated", "sub-package fields missing")
        total, index = struct.unpack_from(">HH", content, pos)
        pos += 4
    expected = pos + body_len + 1
    if n != expected:
        raise FrameError(
            "truncated" if n < expected else "length_mismatch",
            f"header says {body_len} body bytes, frame holds {n - pos - 1}")
    header = Header(msg_id, version, phone, serial, proto, encryption, total, index)
    return Message(header, content[pos:-1])


# --------------------------------------------------------------------------- location


@dataclass(slots=True)
class Location:
    """A decoded location report (0x0200 body or one 0x0704 item)."""

    alarm: int
    status: int
    lat: float
    lon: float
    altitude_m: int
    speed_kmh: float
    course: int
    ts: int
    valid: bool
    battery_pct: float | None = None
    mileage_km: float | None = None
    satellites: int | None = None
    signal: int | None = None
    extras: dict[int, bytes] = field(default_factory=dict)
    items: list[tuple[int, bytes]] = field(default_factory=list)
    """Every additional-information item as sent, ``(id, value)`` in order."""

    def events(self, alarm_map: Mapping[int, str] = ALARM_EVENTS) -> list[str]:
        """Device events of the alarm dword, each once, in bit order."""
        return _alarm_events(self.alarm, alarm_map)

    def telemetry(self, device_id: str, alarm_map: Mapping[int, str] = ALARM_EVENTS,
                  profile: vendor.Profile = vendor.DEFAULT) -> list[Telemetry]:
        """Canonical messages: one fix, then one device event per alarm and vendor flag.

        ``profile`` (the device model's, :func:`devices.vendor.profile_of`)
        names the vendor item flags and may replace ``alarm_map``.
        """
        return _telemetry(device_id, self.ts, self.lat, self.lon, self.valid, self.speed_kmh,
                          self.course, self.altitude_m, self.battery_pct, self.alarm,
                          alarm_map if profile.alarm_bits is None else profile.alarm_bits,
                          vendor.item_events(self.items, profile))


def _alarm_events(alarm: int, alarm_map: Mapping[int, str]) -> list[str]:
    out: list[str] = []
    if not alarm:
        return out
    for bit, name in sorted(alarm_map.items()):
        if alarm >> bit & 1 and name not in out:
            out.append(name)
    return out


def _telemetry(device_id: str, ts: int, lat: float, lon: float, valid: bool, speed_kmh: float,
               course: int, altitude_m: int, battery_pct: float | None, alarm: int,
               alarm_map: Mapping[int, str], flagged: Sequence[tuple[str, str]] = ()
               ) -> list[Telemetry]:
    """The canonical messages of one location: a fix, then one event per alarm bit, then one
    per vendor item flag (``flagged``: ``(event, detail)``) whose event the alarms did not give."""
    fix = Fix(
        device_id=device_id, ts=ts, lat=lat, lon=lon, valid=valid,
        speed_mps=round(speed_kmh / 3.6, 3) if speed_kmh <= 3600 else None,
        heading_deg=float(course) if 0 <= course <= 360 else None,
        altitude_m=float(altitude_m) if -1000 <= altitude_m <= 20000 else None,
        battery_pct=battery_pct,
        source="gnss" if valid else None,
    )
    out: list[Telemetry] = [fix]
    names: list[str] = []
    if alarm:
        detail = f"jt808 alarm 0x{alarm:08X}"
        names = _alarm_events(alarm, alarm_map)
        for name in names:
            out.append(DeviceEvent(device_id=device_id, ts=ts, event=name,  # type: ignore[arg-type]
                                   detail=detail))
    for name, detail in flagged:
        if name not in names:
            out.append(DeviceEvent(device_id=device_id, ts=ts, event=name,  # type: ignore[arg-type]
                                   detail=detail))
    return out


_LOC = struct.Struct(">IIIIhHH6s")


def decode_location(body: bytes, tz_offset_h: float = DEFAULT_TZ_OFFSET_H) -> Location:
    """Decode a location information body (28 bytes + additional items).

    Raises
    ------
    FrameError
        ``truncated`` (short body or item), ``invalid_time``, ``out_of_range``.
    """
    if len(body) < 28:
        raise FrameError("truncated", f"location body of {len(body)} bytes < 28")
    alarm, status, lat_u, lon_u, alt, speed, course, when = _LOC.unpack_from(body, 0)
    lat = lat_u / 1e6
    lon = lon_u / 1e6
    if lat > 90.0 or lon > 180.0:
        raise FrameError("out_of_range", f"latitude {lat} or longitude {lon} out of range")
    if status & STATUS_SOUTH:
        lat = -lat
    if status & STATUS_WEST:
        lon = -lon
    ts = _TIMES.get(when) if tz_offset_h == _TIMES_TZ[0] else None
    if ts is None:
        ts = bcd_time_ms(when, tz_offset_h, "location time")
    loc = Location(alarm, status, lat, lon, alt, speed / 10.0, course, ts,
                   bool(status & STATUS_FIX))
    pos, n = 28, len(body)
    while pos + 2 <= n:
        tid, tlen = body[pos], body[pos + 1]
        value = body[pos + 2:pos + 2 + tlen]
        if len(value) != tlen:
            raise FrameError("truncated", f"additional item 0x{tid:02X} wants {tlen} bytes, "
                             f"{len(value)} left")
        pos += 2 + tlen
        loc.items.append((tid, value))
        if tid == TLV_MILEAGE and tlen == 4:
            loc.mileage_km = int.from_bytes(value, "big") / 10.0
        elif tid == TLV_SIGNAL and tlen == 1:
            loc.signal = value[0]
        elif tid == TLV_SATELLITES and tlen == 1:
            loc.satellites = value[0]
        elif tid == TLV_BATTERY and tlen == 1 and value[0] <= 100:
            loc.battery_pct = float(value[0])
        else:
            loc.extras[tid] = value
    return loc


def decode_batch(body: bytes, tz_offset_h: float = DEFAULT_TZ_OFFSET_H
                 ) -> tuple[int, list[Location | FrameError]]:
    """Decode a 0x0704 batch upload: ``(type, items)``; type 1 = blind-area backfill.

    A bad item becomes a :class:`FrameError` in the list; the others still decode.
    """
    if len(body) < 3:
        raise FrameError("truncated", f"batch body of {len(body)} bytes < 3")
    count, kind = struct.unpack_from(">HB", body, 0)
    pos, n = 3, len(body)
    items: list[Location | FrameError] = []
    for i in range(count):
        if pos + 2 > n:
            raise FrameError("truncated", f"batch says {count} items, body ends after {i}")
        (size,) = struct.unpack_from(">H", body, pos)
        chunk = body[pos + 2:pos + 2 + size]
        if len(chunk) != size:
            raise FrameError("truncated", f"batch item {i} wants {size} bytes, {len(chunk)} left")
        pos += 2 + size
        try:
            items.append(decode_location(chunk, tz_offset_h))
        except FrameError as exc:
            items.append(FrameError(exc.reason, f"batch item {i}: {exc.detail}"))
    return kind, items


# --------------------------------------------------------------------------- other bodies


@dataclass(frozen=True, slots=True)
class Registration:
    """A 0x0100 terminal registration body."""

    province: int
    city: int
    maker: str
    model: str
    terminal_id: str
    plate_color: int
    plate: str


def _text(raw: bytes) -> str:
    raw = raw.rstrip(b"\x00")
    try:
        return raw.decode("gbk")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def decode_register(body: bytes, version: int) -> Registration:
    """Decode a registration body (2013 and 2019 field widths; 2011's short model too)."""
    if version == 2019:
        widths = (11, 30, 30)
    elif len(body) >= 37:
        widths = (5, 20, 7)
    else:
        widths = (5, 8, 7)  # 2011
    need = 4 + sum(widths) + 1
    if len(body) < need:
        raise FrameError("truncated", f"registration body of {len(body)} bytes < {need}")
    province, city = struct.unpack_from(">HH", body, 0)
    pos = 4
    parts = []
    for w in widths:
        parts.append(_text(body[pos:pos + w]))
        pos += w
    return Registration(province, city, parts[0], parts[1], parts[2], body[pos], _text(body[pos + 1:]))


def decode_auth(body: bytes, version: int) -> str:
    """The authentication code of a 0x0102 body (2019: length-prefixed, then IMEI and version)."""
    if version == 2019 and body:
        n = body[0]
        if len(body) < 1 + n:
            raise FrameError("truncated", f"auth code of {n} bytes, body holds {len(body) - 1}")
        return _text(body[1:1 + n])
    return _text(body)


def decode_general_response(body: bytes) -> tuple[int, int, int]:
    """``(ack_serial, ack_msg_id, result)`` of a 0x8001 or 0x0001 body."""
    if len(body) < 5:
        raise FrameError("truncated", f"general response body of {len(body)} bytes < 5")
    serial, msg_id, result = struct.unpack_from(">HHB", body, 0)
    return serial, msg_id, result


def decode_register_response(body: bytes) -> tuple[int, int, str]:
    """``(ack_serial, result, auth_code)`` of a 0x8100 body."""
    if len(body) < 3:
        raise FrameError("truncated", f"register response body of {len(body)} bytes < 3")
    serial, result = struct.unpack_from(">HB", body, 0)
    return serial, result, _text(body[3:])


def decode_set_params(body: bytes) -> dict[int, bytes]:
    """Parameters of a 0x8103 body as ``{param_id: raw value}``."""
    if not body:
        raise FrameError("truncated", "empty parameter body")
    count, pos, out = body[0], 1, {}
    for _ in range(count):
        if pos + 5 > len(body):
            raise FrameError("truncated", "parameter list ends early")
        pid, plen = struct.unpack_from(">IB", body, pos)
        out[pid] = body[pos + 5:pos + 5 + plen]
        pos += 5 + plen
    return out


# --------------------------------------------------------------------------- decode to telemetry


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


# --------------------------------------------------------------------------- sub-packages


@dataclass(slots=True)
class Joined:
    """A message put back together from its packets."""

    message: Message
    """The whole message: the first packet's header (serial = the first packet's serial,
    no packet fields) and the packets' bodies in index order."""
    serials: list[int]
    """Serial numbers of the packets, in the order they arrived (each wants its reply)."""


@dataclass(slots=True)
class _Partial:
    header: Header
    total: int
    started_ms: int
    parts: dict[int, bytes] = field(default_factory=dict)
    serials: list[int] = field(default_factory=list)


class Reassembler:
    """Joins the packets of sub-packaged messages (header property bit 13). Pure.

    A terminal splits a message whose body exceeds 1023 bytes (a long 0x0704
    backfill, a 0x0801 picture) into ``packet_total`` packets numbered from
    1; their serial numbers are consecutive, so the packets of one message
    share ``(phone, msg_id, serial - index + 1)``. One reassembler serves one
    connection. Bounded: at most ``max_packets`` packets per message (1023
    body bytes each) and ``max_pending`` unfinished messages; a message not
    complete within ``timeout_ms`` of its first packet, or pushed out by a
    newer one, is given up and reported as a ``truncated`` error.

    Examples
    --------
    >>> r = Reassembler()
    >>> a, b = encode_packets(MSG_BATCH, "013912344329", 10, bytes(1500))
    >>> r.add(parse_frame(a), 0)
    (None, [])
    >>> joined, errors = r.add(parse_frame(b), 0)
    >>> len(joined.message.body), joined.message.header.serial, joined.serials
    (1500, 10, [10, 11])
    """

    def __init__(self, *, max_packets: int = 64, max_pending: int = 4,
                 timeout_ms: int = 120_000) -> None:
        self.max_packets = max_packets
        self.max_pending = max_pending
        self.timeout_ms = timeout_ms
        self._pending: dict[tuple[str, int, int], _Partial] = {}

    @property
    def pending(self) -> int:
        """Unfinished messages held."""
        return len(self._pending)

    def _give_up(self, key: tuple[str, int, int], why: str) -> FrameError:
        p = self._pending.pop(key)
        return FrameError("truncated", f"sub-packaged message 0x{key[1]:04X} (serial {key[2]}):"
                          f" {len(p.parts)} of {p.total} packets, {why}")

    def add(self, msg: Message, now_ms: int) -> tuple[Joined | None, list[FrameError]]:
        """Add one packet: ``(the joined message once complete, messages given up)``.

        Raises
        ------
        FrameError
            ``malformed`` for a packet index outside ``1..packet_total`` or a
            total that disagrees with earlier packets; ``frame_too_large`` for
            more than ``max_packets`` packets.
        """
        h = msg.header
        total, index = h.packet_total or 1, h.packet_index or 1
        if not 1 <= index <= total:
            raise FrameError("malformed", f"packet {index} of {total}")
        if total > self.max_packets:
            raise FrameError("frame_too_large", f"{total} packets > limit {self.max_packets}")
        errors = [self._give_up(k, f"none for {self.timeout_ms // 1000} s")
                  for k, p in list(self._pending.items())
                  if now_ms - p.started_ms > self.timeout_ms]
        if total == 1:
            return Joined(msg, [h.serial]), errors
        key = (h.phone, h.msg_id, (h.serial - index + 1) & 0xFFFF)
        part = self._pending.get(key)
        if part is not None and part.total != total:
            errors.append(self._give_up(key, f"then a packet saying {total}"))
            part = None
        if part is None:
            while len(self._pending) >= self.max_pending:
                errors.append(self._give_up(next(iter(self._pending)), "pushed out by a newer one"))
            part = self._pending[key] = _Partial(h, total, now_ms)
        if index not in part.parts:
            part.serials.append(h.serial)
        part.parts[index] = msg.body  # a resent packet replaces its copy
        if len(part.parts) < total:
            return None, errors
        del self._pending[key]
        first = part.header
        head = Header(first.msg_id, first.version, first.phone, key[2], first.protocol_version,
                      first.encryption)
        body = b"".join(part.parts[i] for i in range(1, total + 1))
        return Joined(Message(head, body), part.serials), errors


_REPORT_2013 = struct.Struct(">H6sHIIIIhHH6s")
"""A 2013 0x0200 from its properties on: properties, phone, serial, the 28-byte location."""
_REPORT_2019 = struct.Struct(">HB10sHIIIIhHH6s")
"""The same for 2019 (protocol version byte, 10-byte phone)."""


def decode_report(frame: bytes, tz_offset_h: float = DEFAULT_TZ_OFFSET_H,
                  alarm_map: Mapping[int, str] = ALARM_EVENTS,
                  profile: vendor.Profile = vendor.DEFAULT
                  ) -> tuple[str, int, int, list[Telemetry]] | None:
    """Fast path for the frame a gateway sees most: a plain 0x0200 location report.

    Returns ``(phone, version, serial, telemetry)``, the same header fields
    and canonical telemetry :func:`decode` gives for the frame, without the
    intermediate objects (header, message, :class:`Location`). Returns
    ``None`` for anything else: another message, escaped bytes, more or
    less than one whole frame, a sub-package, encryption, or any fault (check code, length, range, time,
    truncated item); the caller then uses :func:`decode`, which raises the
    right :class:`~devices.errors.FrameError`.

    Examples
    --------
    >>> f = encode_location("013912344329", 7, 1795356210000, 32.05, 118.79, battery_pct=80)
    >>> phone, version, serial, (fix,) = decode_report(f)
    >>> phone, version, serial, fix.ts, fix.lat, fix.battery_pct
    ('013912344329', 2013, 7, 1795356210000, 32.05, 80.0)
    """
    n = len(frame)
    if (n < 43 or frame[1] != 0x02 or frame[2] != 0x00 or frame[0] != FLAG
            or frame[n - 1] != FLAG or frame.find(ESC) >= 0 or frame.find(FLAG, 1, n - 1) >= 0):
        return None
    if xor8(frame):  # the two flags cancel out: this is the XOR of content and check code
        return None
    # offsets below are into the frame (content offset + 1 for the leading flag)
    if frame[3] & 0x40:  # 2019 header (version flag in the properties)
        if n < 48:
            return None
        (props, _pv, raw_phone, serial, alarm, status, lat_u, lon_u, alt, speed, course,
         when) = _REPORT_2019.unpack_from(frame, 3)
        version, pos = 2019, 18
        phone = raw_phone.hex()
        dev = device_id_of(phone)
    else:
        (props, raw_phone, serial, alarm, status, lat_u, lon_u, alt, speed, course,
         when) = _REPORT_2013.unpack_from(frame, 3)
        version, pos = 2013, 13
        dev = phone = raw_phone.hex()
    if props & 0x3C00:  # encryption bits or a sub-package
        return None
    end = pos + (props & 0x3FF)
    if end + 2 != n or end - pos < 28 or lat_u > 90_000_000 or lon_u > 180_000_000:
        return None
    ts = _TIMES.get(when) if tz_offset_h == _TIMES_TZ[0] else None
    if ts is None:
        ts = _report_time(when, tz_offset_h)
        if ts < 0:
            return None
    battery: float | None = None
    flag_items = profile.item_ids
    found: list[tuple[int, bytes]] = []
    i = pos + 28
    while i + 2 <= end:  # additional items: the battery and the profile's flag items
        tid, tlen = frame[i], frame[i + 1]
        if i + 2 + tlen > end:
            return None
        if tid == TLV_BATTERY and tlen == 1 and frame[i + 2] <= 100:
            battery = float(frame[i + 2])
        if tid in flag_items:
            found.append((tid, frame[i + 2:i + 2 + tlen]))
        i += 2 + tlen
    lat = lat_u / 1e6
    lon = lon_u / 1e6
    if status & STATUS_SOUTH:
        lat = -lat
    if status & STATUS_WEST:
        lon = -lon
    flagged = vendor.item_events(found, profile) if found else ()
    if alarm or flagged or speed > 36000 or course > 360 or not -1000 <= alt <= 20000:
        return phone, version, serial, _telemetry(
            dev, ts, lat, lon, bool(status & STATUS_FIX), speed / 10.0, course, alt, battery,
            alarm, alarm_map if profile.alarm_bits is None else profile.alarm_bits, flagged)
    # the common case, as _telemetry builds it: one fix, every optional field in range
    mps = _MPS.get(speed)
    if mps is None:
        mps = _MPS[speed] = round(speed / 10.0 / 3.6, 3)
    if status & STATUS_FIX:
        return phone, version, serial, [Fix(
            device_id=dev, ts=ts, lat=lat, lon=lon, valid=True, speed_mps=mps,
            heading_deg=float(course), altitude_m=float(alt), battery_pct=battery,
            source="gnss")]
    return phone, version, serial, [Fix(
        device_id=dev, ts=ts, lat=lat, lon=lon, valid=False, speed_mps=mps,
        heading_deg=float(course), altitude_m=float(alt), battery_pct=battery)]


_MPS: dict[int, float] = {}
"""0x0200 speed (0.1 km/h units, at most 36000 in range) -> m/s as :func:`_telemetry` rounds it."""


_TIMES: dict[bytes, int] = {}
"""Recently seen BCD report times -> epoch ms (live reports cluster around now), for the
time zone in :data:`_TIMES_TZ`."""
_TIMES_TZ: list[float] = [DEFAULT_TZ_OFFSET_H]


def _report_time(when: bytes, tz_offset_h: float) -> int:
    """:func:`~devices.codec.bcd_time_ms` of a report time, cached; -1 when it is invalid."""
    if tz_offset_h != _TIMES_TZ[0]:  # another zone than last time: start the cache over
        _TIMES.clear()
        _TIMES_TZ[0] = tz_offset_h
    ms = _TIMES.get(when)
    if ms is None:
        try:
            ms = bcd_time_ms(when, tz_offset_h, "location time")
        except FrameError:
            return -1
        if len(_TIMES) >= 4096:
            _TIMES.clear()
        _TIMES[when] = ms
    return ms


# --------------------------------------------------------------------------- encoders


def frame(msg_id: int, phone: str, serial: int, body: bytes = b"", version: int = 2013,
          protocol_version: int = 1, encryption: int = 0,
          packet: tuple[int, int] | None = None) -> bytes:
    """Build a complete, escaped frame (``7E ... 7E``).

    ``phone`` is the terminal number as decimal digits; it is left-padded to
    12 digits (2013) or 20 digits (2019). ``packet`` = ``(total, index)``
    makes it one packet of a sub-packaged message (see :func:`encode_packets`).

    Examples
    --------
    >>> frame(0x0002, "043048325465", 0xB7).hex()  # a heartbeat captured in Traccar's tests
    '7e0002000004304832546500b7ca7e'
    """
    if len(body) > 0x3FF:
        raise ValueError(f"body of {len(body)} bytes exceeds the 1023-byte limit")
    props = len(body) | (encryption & 0x7) << 10 | (0x2000 if packet else 0)
    if version == 2019:
        head = struct.pack(">HHB", msg_id, props | 0x4000, protocol_version) + digits_bcd(phone, 10)
    else:
        head = struct.pack(">HH", msg_id, props) + digits_bcd(phone, 6)
    content = head + struct.pack(">H", serial & 0xFFFF)
    if packet:
        content += struct.pack(">HH", *packet)
    content += body
    return b"\x7e" + escape(content + bytes((xor8(content),))) + b"\x7e"


def encode_packets(msg_id: int, phone: str, serial: int, body: bytes, *,
                   packet_size: int = 1023, version: int = 2013) -> list[bytes]:
    """A message as packets of at most ``packet_size`` body bytes (serials from ``serial``).

    One frame, without packet fields, when the body fits in one packet.
    """
    if len(body) <= packet_size:
        return [frame(msg_id, phone, serial, body, version)]
    chunks = [body[i:i + packet_size] for i in range(0, len(body), packet_size)]
    return [frame(msg_id, phone, serial + k, chunk, version, packet=(len(chunks), k + 1))
            for k, chunk in enumerate(chunks)]


def response_head(phone: str, version: int) -> bytes:
    """Header bytes of a 5-byte-body 0x8001 up to (not including) the serial number."""
    if version == 2019:
        return struct.pack(">HHB", MSG_PLATFORM_RESPONSE, 5 | 0x4000, 1) + digits_bcd(phone, 10)
    return struct.pack(">HH", MSG_PLATFORM_RESPONSE, 5) + digits_bcd(phone, 6)


def register_body(*, province: int = 32, city: int = 100, maker: str = "WSTRM",
                  model: str = "WB-1", terminal_id: str = "0000001", plate_color: int = 0,
                  plate: str = "", version: int = 2013) -> bytes:
    """A 0x0100 body with the field widths of ``version``."""
    widths = (11, 30, 30) if version == 2019 else (5, 20, 7)
    parts = [s.encode("gbk")[:w].ljust(w, b"\x00") for s, w in zip((maker, model, terminal_id), widths, strict=True)]
    return struct.pack(">HH", province, city) + b"".join(parts) + bytes((plate_color,)) + plate.encode("gbk")


def encode_register(phone: str, serial: int, *, version: int = 2013, **fields: Any) -> bytes:
    """Terminal registration frame (0x0100); ``fields`` as in :func:`register_body`."""
    return frame(MSG_REGISTER, phone, serial, register_body(version=version, **fields), version)


def encode_auth(phone: str, serial: int, code: str, *, version: int = 2013,
                imei: str = "", software: str = "") -> bytes:
    """Terminal authentication frame (0x0102) carrying the code from 0x8100."""
    raw = code.encode("gbk")
    if version == 2019:
        body = (bytes((len(raw),)) + raw + imei.encode()[:15].ljust(15, b"\x00")
                + software.encode()[:20].ljust(20, b"\x00"))
    else:
        body = raw
    return frame(MSG_AUTH, phone, serial, body, version)


def encode_heartbeat(phone: str, serial: int, *, version: int = 2013) -> bytes:
    """Terminal heartbeat frame (0x0002, empty body)."""
    return frame(MSG_HEARTBEAT, phone, serial, b"", version)


def location_body(ts_ms: int, lat: float, lon: float, *, alarm: int = 0,
                  status: int | None = None, valid: bool = True, altitude_m: int = 0,
                  speed_kmh: float = 0.0, course: int = 0, battery_pct: int | None = None,
                  mileage_km: float | None = None, satellites: int | None = None,
                  signal: int | None = None, tz_offset_h: float = DEFAULT_TZ_OFFSET_H,
                  extras: Iterable[tuple[int, bytes]] = ()) -> bytes:
    """A location information body (0x0200 body, or one 0x0704 item).

    ``status`` defaults to the fix-valid bit plus the south/west bits the
    signs of ``lat``/``lon`` call for.
    """
    if status is None:
        status = (STATUS_FIX if valid else 0) | (STATUS_SOUTH if lat < 0 else 0) | (
            STATUS_WEST if lon < 0 else 0)
    body = struct.pack(
        ">IIIIhHH", alarm & 0xFFFFFFFF, status & 0xFFFFFFFF, round(abs(lat) * 1e6),
        round(abs(lon) * 1e6), int(altitude_m), round(speed_kmh * 10), int(course) % 360,
    ) + ms_to_bcd_time(ts_ms, tz_offset_h)
    items: list[tuple[int, bytes]] = []
    if mileage_km is not None:
        items.append((TLV_MILEAGE, struct.pack(">I", round(mileage_km * 10))))
    if signal is not None:
        items.append((TLV_SIGNAL, bytes((signal,))))
    if satellites is not None:
        items.append((TLV_SATELLITES, bytes((satellites,))))
    if battery_pct is not None:
        items.append((TLV_BATTERY, bytes((int(battery_pct),))))
    items.extend(extras)
    for tid, value in items:
        body += bytes((tid, len(value))) + value
    return body


def encode_location(phone: str, serial: int, ts_ms: int, lat: float, lon: float, *,
                    version: int = 2013, **fields: Any) -> bytes:
    """Location report frame (0x0200); ``fields`` as in :func:`location_body`."""
    return frame(MSG_LOCATION, phone, serial, location_body(ts_ms, lat, lon, **fields), version)


def encode_batch(phone: str, serial: int, items: Sequence[bytes | Mapping[str, Any]], *,
                 backfill: bool = True, version: int = 2013) -> bytes:
    """Batch upload frame (0x0704). Items are location bodies or keyword dicts for
    :func:`location_body` (``{"ts_ms": ..., "lat": ..., "lon": ..., ...}``)."""
    parts = []
    for item in items:
        raw = item if isinstance(item, bytes) else location_body(**item)
        parts.append(struct.pack(">H", len(raw)) + raw)
    body = struct.pack(">HB", len(parts), 1 if backfill else 0) + b"".join(parts)
    return frame(MSG_BATCH, phone, serial, body, version)


def encode_general_response(phone: str, serial: int, ack_serial: int, ack_msg_id: int,
                            result: int = RESULT_OK, *, version: int = 2013) -> bytes:
    """Platform general response (0x8001)."""
    body = struct.pack(">HHB", ack_serial & 0xFFFF, ack_msg_id, result)
    return frame(MSG_PLATFORM_RESPONSE, phone, serial, body, version)


def encode_terminal_response(phone: str, serial: int, ack_serial: int, ack_msg_id: int,
                             result: int = RESULT_OK, *, version: int = 2013) -> bytes:
    """Terminal general response (0x0001), e.g. to a 0x8103."""
    body = struct.pack(">HHB", ack_serial & 0xFFFF, ack_msg_id, result)
    return frame(MSG_TERMINAL_RESPONSE, phone, serial, body, version)


def encode_register_response(phone: str, serial: int, ack_serial: int, result: int,
                             auth_code: str = "", *, version: int = 2013) -> bytes:
    """Registration response (0x8100); the auth code only with result 0."""
    body = struct.pack(">HB", ack_serial & 0xFFFF, result)
    if result == RESULT_OK:
        body += auth_code.encode("gbk")
    return frame(MSG_REGISTER_RESPONSE, phone, serial, body, version)


def encode_set_params(phone: str, serial: int, params: Mapping[int, int | bytes], *,
                      version: int = 2013) -> bytes:
    """Set terminal parameters (0x8103); an int value is sent as a DWORD."""
    body = bytearray((len(params),))
    for pid, value in params.items():
        raw = struct.pack(">I", value) if isinstance(value, int) else value
        body += struct.pack(">IB", pid, len(raw)) + raw
    return frame(MSG_SET_PARAMS, phone, serial, bytes(body), version)


def encode_report_interval(phone: str, serial: int, interval_s: int, *,
                           version: int = 2013) -> bytes:
    """0x8103 setting parameter 0x0029 (default time-based reporting interval)."""
    return encode_set_params(phone, serial, {PARAM_REPORT_INTERVAL: int(interval_s)},
                             version=version)
