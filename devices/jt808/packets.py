"""Joining the packets of sub-packaged JT/T 808 messages."""

from __future__ import annotations

from dataclasses import dataclass, field

from devices.errors import FrameError
from devices.jt808.framing import Header, Message


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
    >>> from devices.jt808 import MSG_BATCH, encode_packets, parse_frame
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
