"""Deterministic offline evaluation of telemetry files (``wardstream replay``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import BinaryIO

from geofence.engine.config import (
    _FAR_FUTURE_MS,
    EngineConfig,
    batch_watermark,
)
from geofence.engine.core import Engine
from geofence.model import (
    Alert,
    AlertRecord,
    Order,
    Telemetry,
    TelemetryDecoder,
    parse_ts,
)
from geofence.rules import (
    ZoneIndex,
)


@dataclass
class ReplaySummary:
    """Counts of a replay (printed on stderr by ``wardstream replay``)."""

    lines: int = 0
    messages: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    late: int = 0
    too_late: int = 0
    ignored: int = 0
    bulk: int = 0  # fixes of quiet lanes applied in bulk (geofence.bulk)
    records: int = 0
    alerts: int = 0
    retracted: int = 0

    def text(self) -> str:
        """One human-readable paragraph."""
        rej = ", ".join(f"{k}={v}" for k, v in sorted(self.rejected.items())) or "none"
        return (
            f"lines read: {self.lines}; messages: {self.messages}; "
            f"rejected: {sum(self.rejected.values())} ({rej}); duplicates dropped: "
            f"{self.duplicates}; late: {self.late}; too late: {self.too_late}; "
            f"ignored: {self.ignored}; lifecycle records: {self.records}; "
            f"alerts: {self.alerts}; retracted: {self.retracted}"
        )


def fold_records(records: Iterable[AlertRecord]) -> tuple[list[Alert], int]:
    """Final state of every episode from a record stream, ordered by
    ``(opened_at, alert_id)``; retracted episodes are left out.

    Returns the alerts and the number of retracted episodes.
    """
    last: dict[str, Alert] = {}
    for r in records:
        last[r.alert.alert_id] = r.alert
    kept = [a for a in last.values() if a.reason != "retracted"]
    kept.sort(key=lambda a: (parse_ts(a.opened_at), a.alert_id))
    return kept, len(last) - len(kept)


def _file_blocks(fh: BinaryIO, size: int) -> Iterator[bytes]:
    """Whole lines of a binary file, in blocks of about ``size`` bytes.

    A line longer than a block is gathered in pieces and joined once (a
    file with no line end at all costs its size, not its size squared).
    """
    rest: list[bytes] = []
    while True:
        data = fh.read(size)
        if not data:
            if rest:
                yield b"".join(rest)
            return
        cut = data.rfind(b"\n") + 1
        if cut == 0:  # no line end yet: a line longer than the block
            rest.append(data)
            continue
        head = data[:cut]
        yield b"".join((*rest, head)) if rest else head
        rest = [data[cut:]] if cut < len(data) else []


def _lines_of(blob: bytes) -> list[bytes]:
    """The lines of a block (as file iteration gives them, line ends aside)."""
    parts = blob.split(b"\n")
    if not parts[-1]:
        parts.pop()
    return parts


def replay_lines(
    lines: Iterable[bytes] | BinaryIO, zones: ZoneIndex, orders: Sequence[Order],
    config: EngineConfig = EngineConfig(), chunk: int = 8192, read_size: int = 1 << 18,
) -> tuple[list[Alert], ReplaySummary]:
    """Deterministic offline evaluation of telemetry lines.

    ``lines`` is an iterable of lines, or a binary file (anything with
    ``read``), which is then read ``read_size`` bytes at a time and split
    into lines (at ``\\n``) exactly as iterating over it would.

    Lines are decoded with :class:`~geofence.model.TelemetryDecoder` (single
    objects or batched arrays; bad lines are counted by reason), fed to one
    :class:`Engine` in chunks of about ``chunk`` messages in file order, with
    the watermark advanced after each chunk to :func:`batch_watermark` of the
    input so far (as the stream advances its watermark), and flushed at the end.

    Returns the final state of every episode ordered by ``(opened_at,
    alert_id)`` (retracted episodes left out) and a :class:`ReplaySummary`.
    """
    decoder = TelemetryDecoder(now_ms=lambda: _FAR_FUTURE_MS)
    engine = Engine(zones, orders, config)
    summary = ReplaySummary()
    records: list[AlertRecord] = []
    batch: list[Telemetry] = []
    wm = -1

    def feed() -> None:
        nonlocal wm
        res = engine.process(batch)
        records.extend(res.records)
        summary.messages += len(batch)
        summary.rejected["unknown_device"] += len(res.unknown)
        summary.duplicates += res.duplicates
        summary.late += res.late
        summary.too_late += res.too_late
        summary.ignored += res.ignored
        # never past the engine's arrival clock: the late flags then depend on
        # the order of arrival only, not on the chunk size
        w = min(batch_watermark(batch), engine.event_time)
        if w > wm:
            wm = w
            records.extend(engine.advance(wm))
        batch.clear()

    def decode_each(group: list[bytes]) -> None:
        for line in group:
            dec = decoder.decode(line)
            for r in dec.rejected:
                summary.rejected[r.reason] += 1
            batch.extend(dec.messages)

    # Single-object lines are decoded many at a time as one JSON array (one
    # msgspec call); a group with any bad line is decoded again line by line,
    # so rejects are counted exactly as when decoding each line.
    group_max = max(1, min(decoder.max_batch, 4096, chunk))

    def _replay_block(block: list[bytes]) -> None:
        # line by line: single-object lines grouped into arrays, anything
        # else decoded on its own (rejects counted exactly per line)
        group: list[bytes] = []
        group_bytes = 0
        for line in block:
            summary.lines += 1
            s = line.strip()
            if not s:
                summary.rejected["empty_line"] += 1
                continue
            if s[:1] != b"{":
                if group:
                    decode_each(group)
                    group, group_bytes = [], 0
                decode_each([s])
            else:
                group.append(s)
                group_bytes += len(s)
                if len(group) >= group_max or group_bytes > decoder.max_bytes // 2:
                    dec = decoder.decode(b"[" + b",".join(group) + b"]")
                    if dec.rejected:
                        decode_each(group)
                    else:
                        batch.extend(dec.messages)
                    group, group_bytes = [], 0
            if len(batch) >= chunk:
                feed()
        if group:
            dec = decoder.decode(b"[" + b",".join(group) + b"]")
            if dec.rejected:
                decode_each(group)
            else:
                batch.extend(dec.messages)

    def fast(blob: bytes, n_lines: int) -> bool:
        # a block of single-object lines decoded as one JSON array with no
        # per-line Python work; False for any other block (blank lines,
        # arrays, bad lines), which the per-line loop then counts line by line
        if len(blob) >= decoder.max_bytes // 2:
            return False
        body = blob.strip()
        if body[:1] != b"{" or b"\n\n" in body or b"\n\r" in body:
            return False
        dec = decoder.decode(b"[" + body.replace(b"\n", b",") + b"]")
        if dec.rejected or len(dec.messages) != n_lines:
            return False
        summary.lines += n_lines
        batch.extend(dec.messages)
        if len(batch) >= chunk:
            feed()
        return True

    if hasattr(lines, "read"):
        # a binary file: read in blocks, no Python object per line on the fast path
        for blob in _file_blocks(lines, read_size):  # type: ignore[arg-type]
            n = blob.count(b"\n") + (blob[-1:] != b"\n")
            if n > group_max or not fast(blob, n):
                _replay_block(_lines_of(blob))
    else:
        it = iter(lines)
        while True:
            block = list(islice(it, group_max))
            if not block:
                break
            blob = b"".join(block)
            if blob.count(b"\n") < len(block) - 1 or not fast(blob, len(block)):
                _replay_block(block)
    if batch:
        feed()
    records.extend(engine.flush())
    # by reason: the same whatever block boundaries the reasons were first met at
    summary.rejected = Counter({k: v for k, v in sorted(summary.rejected.items()) if v})
    alerts, summary.retracted = fold_records(records)
    summary.records = len(records)
    summary.alerts = len(alerts)
    return alerts, summary
