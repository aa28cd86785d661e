"""Small pure helpers shared by the protocol modules: checksums, BCD, time."""

from __future__ import annotations

import calendar
import functools

from devices.errors import FrameError

_MIN_TS_MS = 946_684_800_000  # 2000-01-01T00:00:00Z: trackers cannot report earlier


def xor8(data: bytes) -> int:
    """XOR of all bytes (the JT/T 808 check code).

    Reads the bytes as one little-endian integer and folds it onto its
    lowest byte with shifts by 2**k bytes (each byte lane below the next
    power of two lands on lane 0 exactly once; what lands above it is
    never read), about twice as fast in CPython as unpacking words and
    several times faster than a per-byte loop on 30-300 byte frames.

    Examples
    --------
    >>> xor8(bytes([0x01, 0x02, 0x04]))
    7
    >>> xor8(b"")
    0
    """
    v = int.from_bytes(data, "little")
    n = len(data)
    if n <= 64:  # a location report: unrolled
        v ^= v >> 256
        v ^= v >> 128
        v ^= v >> 64
        v ^= v >> 32
        v ^= v >> 16
        v ^= v >> 8
        return v & 0xFF
    shift = 4 << (n - 1).bit_length()  # half the next power of two, in bits
    while shift >= 8:
        v ^= v >> shift
        shift >>= 1
    return v & 0xFF


def _crc_itu_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc_itu_table()


def crc_itu(data: bytes) -> int:
    """CRC-ITU as GT06 uses it (CRC-16/X-25: reflected 0x1021, init and xorout 0xFFFF).

    Examples
    --------
    >>> hex(crc_itu(bytes.fromhex("0D01086471700328358100 09".replace(" ", ""))))
    '0x3f04'
    """
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFF


def bcd_digits(data: bytes) -> str:
    """BCD bytes as their digit string (``bytes.fromhex("0135")`` -> ``"0135"``)."""
    return data.hex()


def digits_bcd(digits: str, size: int) -> bytes:
    """A digit string as ``size`` BCD bytes, left-padded with zeros."""
    if not digits.isdigit():
        raise ValueError(f"BCD needs decimal digits, got {digits!r}")
    if len(digits) > size * 2:
        raise ValueError(f"{digits!r} does not fit in {size} BCD bytes")
    return bytes.fromhex(digits.rjust(size * 2, "0"))


def epoch_ms(year: int, month: int, day: int, hour: int, minute: int, second: int,
             tz_offset_h: float = 0.0, what: str = "time") -> int:
    """Local calendar time at ``UTC+tz_offset_h`` as epoch milliseconds.

    Raises
    ------
    FrameError
        ``invalid_time`` when a field is out of range or the date precedes 2000.
    """
    if not (1 <= month <= 12 and 1 <= day <= 31 and 0 <= hour <= 23
            and 0 <= minute <= 59 and 0 <= second <= 60):
        raise FrameError("invalid_time", f"{what} {year:04d}-{month:02d}-{day:02d} "
                         f"{hour:02d}:{minute:02d}:{second:02d} is not a valid time")
    if day > calendar.monthrange(year, month)[1]:
        raise FrameError("invalid_time", f"{what} {year:04d}-{month:02d}-{day:02d} does not exist")
    ms = (calendar.timegm((year, month, day, hour, minute, second)) - int(tz_offset_h * 3600)) * 1000
    if ms < _MIN_TS_MS:
        raise FrameError("invalid_time", f"{what} {year:04d}-{month:02d}-{day:02d} is before 2000")
    return ms


_BCD = [(b >> 4) * 10 + (b & 0x0F) if (b >> 4) < 10 and (b & 0x0F) < 10 else -1
        for b in range(256)]


@functools.lru_cache(maxsize=4096)
def _day_ms(y: int, mo: int, d: int) -> int:
    if not (1 <= mo <= 12 and 1 <= d <= calendar.monthrange(y, mo)[1]):
        return -1
    return calendar.timegm((y, mo, d, 0, 0, 0)) * 1000


def bcd_time_ms(data: bytes, tz_offset_h: float, what: str = "time") -> int:
    """Six BCD bytes ``YYMMDDhhmmss`` (local time at ``UTC+tz_offset_h``) as epoch ms.

    Raises
    ------
    FrameError
        ``invalid_time`` for non-BCD bytes, impossible dates or times.

    Examples
    --------
    >>> bcd_time_ms(bytes.fromhex("261122220330"), 8.0)
    1795356210000
    """
    if len(data) != 6:
        raise FrameError("invalid_time", f"{what} {data.hex()!r} is not 6 BCD bytes")
    bcd = _BCD
    y, mo, d, h, mi, s = bcd[data[0]], bcd[data[1]], bcd[data[2]], bcd[data[3]], bcd[data[4]], bcd[data[5]]
    day = _day_ms(2000 + y, mo, d) if min(y, mo, d, h, mi, s) >= 0 else -1
    if day < 0 or h > 23 or mi > 59 or s > 60:
        raise FrameError("invalid_time", f"{what} {data.hex()!r} is not a valid YYMMDDhhmmss")
    ms = day + ((h * 60 + mi) * 60 + s) * 1000 - int(tz_offset_h * 3_600_000)
    if ms < _MIN_TS_MS:
        raise FrameError("invalid_time", f"{what} {data.hex()!r} is before 2000")
    return ms


def ms_to_bcd_time(ts_ms: int, tz_offset_h: float) -> bytes:
    """Epoch ms as six BCD bytes ``YYMMDDhhmmss`` at ``UTC+tz_offset_h``."""
    import time as _time

    t = _time.gmtime(ts_ms // 1000 + int(tz_offset_h * 3600))
    return bytes.fromhex(
        f"{t.tm_year % 100:02d}{t.tm_mon:02d}{t.tm_mday:02d}{t.tm_hour:02d}{t.tm_min:02d}{t.tm_sec:02d}")
