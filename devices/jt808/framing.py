"""JT/T 808 framing: flags, escaping, check code and the message header.

Frame layout and header fields are described in :mod:`devices.jt808`.
:func:`parse_frame` and :func:`frame` are each other's inverse;
sub-packaged messages are joined by :class:`devices.jt808.packets.Reassembler`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from devices.codec import digits_bcd, xor8
from devices.errors import FrameError
from devices.jt808.codes import MSG_PLATFORM_RESPONSE

FLAG = 0x7E
ESC = 0x7D


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
        """The device id used by wardstream (see :mod:`devices.jt808`)."""
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
