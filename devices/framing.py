"""Stream framing: turn the bytes of a TCP connection into whole frames.

Pure (no I/O): a framer is fed whatever one ``read`` returned and hands back
the complete frames it now holds plus a :class:`~devices.errors.FrameError`
for every run of garbage, oversized frame or broken frame it had to skip.
Partial frames stay buffered until the rest arrives, so frames split across
reads, several frames in one read and garbage between frames all work. The
buffer never grows beyond ``max_frame`` bytes: a frame that would is dropped
with reason ``frame_too_large`` and the framer resynchronises on the next
start marker.

Framers return frames *with* their delimiters, exactly as the protocol
modules' ``parse_*`` functions expect them:

- :class:`FlagFramer`: JT/T 808 (``0x7E`` ... ``0x7E``).
- :class:`StartEndFramer`: watch (``[`` ... ``]``) and H02 (``*`` ... ``#``).
- :class:`Gt06Framer`: GT06 (``0x7878`` + 1-byte length or ``0x7979`` +
  2-byte length, ``0x0D0A`` terminator).
"""

from __future__ import annotations

from typing import Protocol

from devices.errors import FrameError

DEFAULT_MAX_FRAME = 4096
"""Largest frame accepted by default, bytes (JT/T 808 bodies are at most 1023
bytes, doubled by escaping, plus the header; a 0x0704 batch fits)."""


def _garbage(n: int, sample: bytes) -> FrameError:
    return FrameError("garbage", f"{n} bytes outside any frame: {sample[:16].hex()}")


class Framer(Protocol):
    """What the servers need from a framer."""

    def feed(self, data: bytes) -> tuple[list[bytes], list[FrameError]]:
        """Add ``data``; return the complete frames and the errors found."""
        ...

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        ...


class FlagFramer:
    """Frames delimited by the same flag byte on both sides (JT/T 808 ``0x7E``).

    Two flags in a row (the end of one frame and the start of the next) are
    handled; an empty frame between two flags is not an error.

    Examples
    --------
    >>> f = FlagFramer()
    >>> f.feed(bytes.fromhex("7e0002"))
    ([], [])
    >>> frames, errors = f.feed(bytes.fromhex("00007e7e01027e"))
    >>> [x.hex() for x in frames], errors
    (['7e000200007e', '7e01027e'], [])
    """

    def __init__(self, flag: int = 0x7E, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.flag = flag
        self.max_frame = max_frame
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    @property
    def pending(self) -> bytearray:
        """The buffer itself (changed in place, never replaced): empty between frames."""
        return self._buf

    def feed(self, data: bytes) -> tuple[list[bytes], list[FrameError]]:
        flag = self.flag
        if not self._buf:
            # fast path: exactly one whole frame in this read
            n = len(data)
            if (n > 2 and data[0] == flag and data[-1] == flag
                    and data.find(flag, 1) == n - 1 and n <= self.max_frame):
                return [data], []
        self._buf += data
        buf = self._buf
        frames: list[bytes] = []
        errors: list[FrameError] = []
        while buf:
            start = buf.find(flag)
            if start < 0:
                errors.append(_garbage(len(buf), bytes(buf)))
                buf.clear()
                break
            if start > 0:
                errors.append(_garbage(start, bytes(buf[:start])))
                del buf[:start]
            end = buf.find(flag, 1)
            if end < 0:
                if len(buf) > self.max_frame:
                    errors.append(FrameError(
                        "frame_too_large",
                        f"no closing flag within {self.max_frame} bytes; {len(buf)} bytes dropped"))
                    buf.clear()
                break
            if end == 1:  # 7E7E: end of a lost frame and start of the next
                del buf[:1]
                continue
            if end + 1 > self.max_frame:
                errors.append(FrameError(
                    "frame_too_large", f"frame of {end + 1} bytes > limit {self.max_frame}"))
                del buf[:end]
                continue
            frames.append(bytes(buf[: end + 1]))
            del buf[: end + 1]
        return frames, errors


class StartEndFramer:
    """Frames with distinct start and end markers (watch ``[...]``, H02 ``*...#``).

    A new start marker before the end of the current frame means the current
    one was cut short: it is reported as ``truncated`` and framing restarts.
    Line breaks and spaces between frames (text protocols end frames with
    ``\\r\\n`` on some firmware) are skipped without an error.

    Examples
    --------
    >>> f = StartEndFramer(b"[", b"]")
    >>> frames, errors = f.feed(b"xx[SG*1*0002*LK][SG*1*0")
    >>> frames, [e.reason for e in errors]
    ([b'[SG*1*0002*LK]'], ['garbage'])
    >>> f.feed(b"002*LK]")
    ([b'[SG*1*0002*LK]'], [])
    """

    def __init__(self, start: bytes, end: bytes, max_frame: int = DEFAULT_MAX_FRAME,
                 filler: bytes = b"\r\n \t\x00") -> None:
        if len(start) != 1 or len(end) != 1:
            raise ValueError("start and end markers are single bytes")
        self.filler = filler
        self.start = start[0]
        self.end = end[0]
        self.max_frame = max_frame
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> tuple[list[bytes], list[FrameError]]:
        s, e = self.start, self.end
        if not self._buf:
            n = len(data)
            if (n > 1 and data[0] == s and data[-1] == e and data.find(e) == n - 1
                    and data.find(s, 1) < 0 and n <= self.max_frame):
                return [data], []
        self._buf += data
        buf = self._buf
        frames: list[bytes] = []
        errors: list[FrameError] = []
        while buf:
            start = buf.find(s)
            if start < 0:
                if bytes(buf).strip(self.filler):
                    errors.append(_garbage(len(buf), bytes(buf)))
                buf.clear()
                break
            if start > 0:
                if bytes(buf[:start]).strip(self.filler):
                    errors.append(_garbage(start, bytes(buf[:start])))
                del buf[:start]
            end = buf.find(e, 1)
            restart = buf.find(s, 1)
            if restart >= 0 and (end < 0 or restart < end):
                errors.append(FrameError(
                    "truncated", f"frame cut short after {restart} bytes: {bytes(buf[:16])!r}"))
                del buf[:restart]
                continue
            if end < 0:
                if len(buf) > self.max_frame:
                    errors.append(FrameError(
                        "frame_too_large",
                        f"no end marker within {self.max_frame} bytes; {len(buf)} bytes dropped"))
                    buf.clear()
                break
            if end + 1 > self.max_frame:
                errors.append(FrameError(
                    "frame_too_large", f"frame of {end + 1} bytes > limit {self.max_frame}"))
                del buf[: end + 1]
                continue
            frames.append(bytes(buf[: end + 1]))
            del buf[: end + 1]
        return frames, errors


class Gt06Framer:
    """GT06 frames: ``7878 LEN ... 0D0A`` (1-byte length) or ``7979 LEN LEN ... 0D0A``.

    The length counts the bytes from the protocol number to the CRC. A frame
    whose terminator is not ``0D0A`` is reported (``bad_terminator``) and the
    framer resynchronises two bytes later.

    Examples
    --------
    >>> f = Gt06Framer()
    >>> frames, errors = f.feed(bytes.fromhex("78780D01086471700328358100093F040D0A"))
    >>> len(frames[0]), errors
    (18, [])
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    @staticmethod
    def _find_start(buf: bytearray) -> int:
        a = buf.find(b"\x78\x78")
        b = buf.find(b"\x79\x79")
        if a < 0:
            return b
        if b < 0:
            return a
        return min(a, b)

    def feed(self, data: bytes) -> tuple[list[bytes], list[FrameError]]:
        self._buf += data
        buf = self._buf
        frames: list[bytes] = []
        errors: list[FrameError] = []
        while buf:
            start = self._find_start(buf)
            if start < 0:
                keep = 1 if buf[-1] in (0x78, 0x79) else 0  # maybe half a start marker
                if len(buf) > keep:
                    errors.append(_garbage(len(buf) - keep, bytes(buf)))
                    del buf[: len(buf) - keep]
                break
            if start > 0:
                errors.append(_garbage(start, bytes(buf[:start])))
                del buf[:start]
            long_form = buf[0] == 0x79
            head = 4 if long_form else 3
            if len(buf) < head:
                break
            length = int.from_bytes(buf[2:4], "big") if long_form else buf[2]
            total = head + length + 2
            if total > self.max_frame or length < 5:
                errors.append(FrameError(
                    "frame_too_large" if total > self.max_frame else "malformed",
                    f"GT06 length field {length} gives a {total}-byte frame"))
                del buf[:2]
                continue
            if len(buf) < total:
                break
            if buf[total - 2] != 0x0D or buf[total - 1] != 0x0A:
                errors.append(FrameError(
                    "bad_terminator", f"GT06 frame of {total} bytes does not end in 0D0A"))
                del buf[:2]
                continue
            frames.append(bytes(buf[:total]))
            del buf[:total]
        return frames, errors
