"""JT/T 808 location reports: 0x0200 bodies, 0x0704 batches and their items.

A location body is 28 fixed bytes followed by additional-information items
(``id``, ``length``, value); the standard items wardstream reads are
decoded, vendor items are judged by the device model's profile
(:mod:`devices.vendor`), and the rest are kept raw. A location becomes one
fix plus one device event per alarm bit and vendor flag.
:func:`decode_report` is the gateway's fast path for the commonest frame.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from devices import vendor
from devices.codec import bcd_time_ms, ms_to_bcd_time, xor8
from devices.errors import FrameError
from devices.jt808.codes import MSG_BATCH, MSG_LOCATION
from devices.jt808.framing import ESC, FLAG, device_id_of, frame
from geofence.model import DeviceEvent, Fix, Telemetry

ALARM_EVENTS: Mapping[int, str] = {
    0: "sos", 7: "battery_low", 8: "power_off", 15: "vibration", 16: "removed",
    17: "tamper", 18: "battery_low", 29: "fall", 30: "fall",
}
"""Default alarm-bit -> device-event mapping (the table in :mod:`devices.jt808`)."""

STATUS_FIX = 1 << 1
STATUS_SOUTH = 1 << 2
STATUS_WEST = 1 << 3

TLV_MILEAGE = 0x01
TLV_SIGNAL = 0x30
TLV_SATELLITES = 0x31
TLV_BATTERY = 0xFE

DEFAULT_TZ_OFFSET_H = 8.0


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
