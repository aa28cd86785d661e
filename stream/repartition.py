"""The repartition step: telemetry that reached another person's partition.

A producer may key ``wardstream.telemetry`` by ``device_id``, ``camera_id``,
anything else or nothing (docs/contract.md, "Keys"). A message that lands on a
partition which does not own its person's state is *re-keyed*: the worker that
received it produces it again to ``wardstream.telemetry``, on the owning
partition, with the project's partition key and the header
:data:`REROUTED_HEADER` (``"<source partition>@<source offset>/<hops>"``).
The owner evaluates it like any other message. This is the repartition step
of Kafka Streams and Faust, with the telemetry topic itself as the internal
topic (why: docs/stream.md, "Any keying").

Delivery is at least once. The re-produce futures join the worker's in-flight
sends, and a partition's snapshot (which commits its offset) waits for them,
so the source offset is committed only after the owner's copy is on Kafka. A
crash between the two re-produces the same messages: :class:`SeenOrigins`
drops a re-produced record whose source offset the owner already took, and
the engine drops an exact duplicate (same device, ts and content) inside the
lateness horizon.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from geofence.model import Telemetry, VideoHit, encode
from stream.keying import Router

REROUTED_HEADER = "wardstream-rerouted"
"""Header of a re-keyed telemetry record: ``"<partition>@<offset>/<hops>"`` of its source,
then ``";"`` and the source offset of its messages as runs ``"<offset>:<count>,..."``
(``"+"`` at the end when the last source record goes on in the next record)."""

MAX_HOPS = 3
"""A message re-keyed this often (orders changing under it) is dead-lettered as ``misrouted``."""


@dataclass(frozen=True)
class Origin:
    """Where a re-keyed record came from.

    ``offset`` is the last source offset of its messages; ``runs`` the source
    offset of each message, as ``(offset, count)`` runs in message order
    (empty in records re-keyed by older versions); ``partial`` says the
    last source record's messages go on in the next re-keyed record.

    Examples
    --------
    >>> o = Origin(2, 41, 1, ((40, 3), (41, 2)), False)
    >>> Origin.parse(o.header()) == o
    True
    >>> o.offsets()
    [40, 40, 40, 41, 41]
    """

    partition: int
    offset: int
    hops: int
    runs: tuple[tuple[int, int], ...] = ()
    partial: bool = False

    def header(self) -> bytes:
        """The header value of a record re-keyed from here."""
        head = f"{self.partition}@{self.offset}/{self.hops}"
        if not self.runs:
            return head.encode()
        runs = ",".join(f"{off}:{n}" for off, n in self.runs)
        return f"{head};{runs}{'+' if self.partial else ''}".encode()

    def offsets(self) -> list[int]:
        """The source offset of each message, in order."""
        return [off for off, n in self.runs for _ in range(n)]

    @classmethod
    def parse(cls, value: bytes) -> Origin | None:
        """Parse a header value; ``None`` when it is not one of ours."""
        try:
            head, _, tail = value.decode().partition(";")
            where, _, hops = head.partition("/")
            part, _, off = where.partition("@")
            partial = tail.endswith("+")
            runs = tuple((int(o), int(n)) for o, _, n in
                         (r.partition(":") for r in tail.rstrip("+").split(",") if r))
            return cls(int(part), int(off), int(hops or "1"), runs, partial)
        except (UnicodeDecodeError, ValueError):
            return None


def origin_of(headers: Sequence[tuple[str, bytes]] | None) -> Origin | None:
    """The :class:`Origin` of a consumed record, ``None`` for a producer's record."""
    for name, value in headers or ():
        if name == REROUTED_HEADER:
            return Origin.parse(value)
    return None


def home_of(router: Router, msg: Telemetry) -> int | None:
    """The partition owning ``msg``'s state, ``None`` when no order names its sender.

    Fixes and device events belong to their device's person, face matches to
    their person, facility video hits to their camera's lane.
    """
    if isinstance(msg, VideoHit):
        if (msg.event == "face_match" and msg.person_id is not None
                and msg.person_id not in router.person_key):
            return None
        return router.partition_of_message(msg)
    return router.home_of_device(msg.device_id)


@dataclass
class Split:
    """A batch of one partition split into what stays and what moves."""

    local: list[Telemetry] = field(default_factory=list)
    away: dict[int, list[Telemetry]] = field(default_factory=dict)
    looping: list[Telemetry] = field(default_factory=list)


def split(router: Router, partition: int, messages: Iterable[Telemetry],
          hops: dict[int, int] | None = None, rekey: set[int] | None = None) -> Split:
    """Separate the messages this partition owns from those of other partitions.

    ``hops`` maps ``id(msg)`` to how often the message was already re-keyed;
    one re-keyed :data:`MAX_HOPS` times that still is not home goes to
    ``looping``. ``rekey`` holds the ids of messages to re-key even when they
    are home (they came in a record without the project's key). Unknown
    senders stay local (the engine dead-letters them).
    """
    out = Split()
    homes = router.device_home
    for msg in messages:
        home = homes.get(msg.device_id) if type(msg) is not VideoHit else None  # type: ignore[union-attr]
        if home is None:
            home = home_of(router, msg)
        if home is None or (home == partition and (rekey is None or id(msg) not in rekey)):
            out.local.append(msg)
        elif hops is not None and hops.get(id(msg), 0) >= MAX_HOPS:
            out.looping.append(msg)
        else:
            out.away.setdefault(home, []).append(msg)
    return out


def envelopes(messages: Sequence[Telemetry], max_batch: int, max_bytes: int) -> list[bytes]:
    """Encode ``messages`` as JSON-array envelopes within the decoder's limits."""
    return [env for env, _ in rekeyed(messages, [0] * len(messages), 0, 0, 1,
                                      max_batch, max_bytes)]


def rekeyed(messages: Sequence[Telemetry], sources: Sequence[int], partition: int,
            last_offset: int, hop: int, max_batch: int,
            max_bytes: int) -> list[tuple[bytes, Origin]]:
    """Envelopes of re-keyed ``messages`` with the :class:`Origin` of each.

    ``sources`` holds each message's source offset (non-decreasing). An
    envelope is cut within the decoder's limits, at a source record's
    boundary where it can be, so that an owner can tell exactly which
    messages of a copy it already took (:class:`SeenOrigins`).
    """
    out: list[tuple[bytes, Origin]] = []
    parts: list[bytes] = []
    offs: list[int] = []
    size = 2
    cut = 0  # index in parts of the last source-record boundary

    def emit(upto: int, partial: bool, final: bool = False) -> None:
        runs: list[tuple[int, int]] = []
        for off in offs[:upto]:
            if runs and runs[-1][0] == off:
                runs[-1] = (off, runs[-1][1] + 1)
            else:
                runs.append((off, 1))
        # the last envelope covers the whole source batch; an earlier one, its
        # own records (the last of them whole unless ``partial``)
        top = last_offset if final else offs[upto - 1]
        out.append((b"[" + b",".join(parts[:upto]) + b"]",
                    Origin(partition, top, hop, tuple(runs), partial)))
        del parts[:upto], offs[:upto]

    for msg, off in zip(messages, sources, strict=True):
        raw = encode(msg)
        if offs and off != offs[-1]:
            cut = len(parts)
        if parts and (len(parts) >= max_batch or size + len(raw) + 1 > max_bytes):
            whole = cut > 0
            emit(cut if whole else len(parts), partial=not whole)
            cut = 0
            size = 2 + sum(len(x) + 1 for x in parts)
        parts.append(raw)
        offs.append(off)
        size += len(raw) + 1
    if parts:
        emit(len(parts), partial=False, final=True)
    return out


@dataclass
class SeenOrigins:
    """Per owning partition: the highest source record taken whole from each source.

    Re-keyed records of one source reach one owner in source-offset order,
    and each names the source record of every message it holds
    (:class:`Origin` runs). A copy re-produced after a crash of the source's
    worker, cut into records differently the second time, so gives exactly
    its messages of later source records (:meth:`take`). The marks are kept
    in the owner's snapshots.
    """

    high: dict[int, int] = field(default_factory=dict)

    def fresh(self, origin: Origin) -> bool:
        """False for a copy of records already taken; remembers the offset otherwise."""
        if origin.offset < self.high.get(origin.partition, -1):
            return False
        self.high[origin.partition] = origin.offset
        return True

    def take(self, origin: Origin, count: int) -> list[bool]:
        """Which of a re-keyed record's ``count`` messages are new here.

        With per-message source offsets (``origin.runs``), a message is new
        when its source record lies beyond every source record taken whole;
        a copy re-keyed again after its source's crash, cut into records
        differently, then gives exactly its new messages. Without them, the
        whole record is new unless its last offset is below the highest.
        """
        if count == 0:
            return []
        high = self.high.get(origin.partition, -1)
        offsets = origin.offsets()
        if len(offsets) != count:  # no runs (or not ours): the whole-record rule
            new = self.fresh(origin)
            return [new] * count
        top = offsets[-1] - 1 if origin.partial else origin.offset
        self.high[origin.partition] = max(high, top)
        return [off > high for off in offsets]


def record_arrival(timestamp: Any, now_ms: int) -> int:
    """When a Kafka record arrived: its timestamp, never later than ``now_ms``.

    A producer whose clock runs ahead must not widen the window in which a
    message dated in the future is accepted.
    """
    return timestamp if isinstance(timestamp, int) and 0 < timestamp < now_ms else now_ms


def project_keyed(key: bytes | None, first: Telemetry | None, router: Router) -> bool:
    """True when a producer's record takes the direct path where it is home.

    Records with the project's key of their first message (the gateway's, the
    simulators') and records without a key (a producer that chose the
    partition itself) do. Any other key (``device_id``, ``camera_id``, ...)
    sends all of the record's messages through the repartition step, even
    those already on their owner's partition, so that an owner's engine sees
    such a stream in one order: the order of the re-keying.
    """
    if first is None or key is None:
        return True
    return key == router.key_of(first).encode()


@dataclass
class Aligner:
    """Event-time alignment of the partitions one worker reads, while re-keying.

    Re-keyed messages reach their owner after whatever the owner's partition
    already held, so the partitions a worker re-keys from must advance
    together in event time; otherwise a partition whose fetch covered an hour
    would push its messages an hour ahead of another's (the owner would find
    the other's messages late). While the worker re-keys (``active``), each
    poll releases only the records whose newest ``ts`` is at most the
    *frontier*: the lowest newest-fetched ``ts`` of the partitions that still
    have input, moved on by at most ``step_ms`` a poll; the partition with
    the oldest next record may always proceed, so one device's clock far
    ahead holds nothing up for long. Records held back are not processed,
    so their offsets are not committed: a crash re-reads them.

    Parameters
    ----------
    step_ms : int
        Most the frontier moves per poll (half the lateness horizon: what
        one poll re-keys stays inside the horizon of what the next re-keys).
    linger_s : float
        Alignment stays on this long after the last re-keyed message.
    """

    step_ms: int
    linger_s: float = 30.0
    held: dict[int, list[tuple[Any, int | None]]] = field(default_factory=dict)
    tops: dict[int, int] = field(default_factory=dict)
    frontier: int | None = None
    active_until: float = 0.0

    def touch(self, now: float) -> None:
        """Note that messages were re-keyed just now."""
        self.active_until = now + self.linger_s

    def pending(self) -> bool:
        """Records are held back."""
        return any(self.held.values())

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget held records of partitions revoked or sought anew."""
        for p in partitions:
            self.held.pop(p, None)
            self.tops.pop(p, None)

    def admit(self, fetched: dict[int, list[tuple[Any, int | None]]],
              behind: dict[int, int | None], now: float) -> dict[int, list[Any]]:
        """Records to process now per partition, in offset order.

        ``fetched`` maps a partition to its new records with their newest
        ``ts`` (``None``: nothing to order by). ``behind`` maps each partition
        with input not fetched yet to the newest ``ts`` fetched from it so far
        (``None`` when nothing was): its next records are about that new, so
        nothing newer may pass before them.
        """
        for p, recs in fetched.items():
            self.held.setdefault(p, []).extend(recs)
            stamps = [t for _, t in recs if t is not None]
            if stamps:
                self.tops[p] = max(self.tops.get(p, stamps[0]), max(stamps))
        if now >= self.active_until:
            released = {p: [r for r, _ in recs] for p, recs in self.held.items() if recs}
            self.held.clear()
            self.tops.clear()
            self.frontier = None
            return released
        fronts: list[int] = []
        heads: list[int] = []
        for p, recs in self.held.items():
            # the newest held ts is the newest fetched: what was released was older
            top = self.tops.get(p)
            if recs and top is not None:
                fronts.append(top)
                heads.append(next(t for _, t in recs if t is not None))
            elif not recs and p in behind:
                seen = behind[p]
                if seen is None:
                    heads.append(-1)  # wait for its first fetch
                    fronts.append(-1)
                else:
                    fronts.append(seen)
                    heads.append(seen)
        for p, seen in behind.items():
            if p not in self.held:
                fronts.append(-1 if seen is None else seen)
                heads.append(-1 if seen is None else seen)
        if not fronts:
            limit = self.frontier if self.frontier is not None else -1
        else:
            limit = min(fronts)
            if self.frontier is not None:
                limit = min(limit, self.frontier + self.step_ms)
            limit = max(limit, min(heads))
        self.frontier = limit if self.frontier is None else max(self.frontier, limit)
        out: dict[int, list[Any]] = {}
        for p, recs in self.held.items():
            n = 0
            for _, t in recs:
                if t is not None and t > limit:
                    break
                n += 1
            if n:
                out[p] = [r for r, _ in recs[:n]]
                del recs[:n]
            if not recs:
                self.tops.pop(p, None)
        return out


IDLE_PARTITION_S = 0.5
"""While re-keying, a partition read to its end this long holds no other partition back."""


class Alignment:
    """The worker's side of :class:`Aligner`: what a consumer needs around a poll.

    Decodes each fetched record once (the worker takes the decoded record back
    with :meth:`take`), notes records without the project's key (alignment
    on), tracks how far each partition was fetched, and pauses the
    partitions whose records are held back so that the others are fetched.
    """

    def __init__(self, topic: str, lateness_ms: int, decoder: Any) -> None:
        self.topic = topic
        self.aligner = Aligner(step_ms=lateness_ms // 2)
        self.decoder = decoder
        self.decoded: dict[tuple[int, int], Any] = {}
        self.fetched_to: dict[int, int] = {}
        self.fetched_at: dict[int, float] = {}
        self.seen_ts: dict[int, int] = {}
        self.ready = False

    def poll_timeout_ms(self, idle_ms: int) -> int:
        """0 while held records can go on, else ``idle_ms``."""
        return 0 if self.aligner.pending() and self.ready else idle_ms

    def pending(self) -> bool:
        """Records are held back."""
        return self.aligner.pending()

    def touch(self, now: float) -> None:
        """Messages were re-keyed just now."""
        self.aligner.touch(now)

    def take(self, partition: int, offset: int) -> Any:
        """The decoded record at ``offset`` (``None`` when not decoded here)."""
        return self.decoded.pop((partition, offset), None)

    def align(self, data: dict[Any, list[Any]], next_offsets: dict[int, int], consumer: Any,
              router: Router, now: float) -> dict[Any, list[Any]]:
        """The records of ``data`` (and of earlier polls) to process now."""
        from aiokafka import TopicPartition

        fetched: dict[int, list[tuple[Any, int | None]]] = {}
        for tp, recs in data.items():
            if tp.topic != self.topic or tp.partition not in next_offsets:
                continue
            decoded_recs = []
            now_ms = int(time.time() * 1000)
            for rec in recs:
                decoded = None
                if rec.value is not None:
                    try:
                        decoded = self.decoder.decode(rec.value,
                                                      record_arrival(rec.timestamp, now_ms))
                    except Exception:
                        # the worker decodes it again and dead-letters the failure
                        decoded_recs.append((rec, None))
                        continue
                    self.decoded[(tp.partition, rec.offset)] = decoded
                    if decoded.messages and rec.key is not None \
                            and origin_of(rec.headers) is None \
                            and not project_keyed(rec.key, decoded.messages[0], router):
                        self.aligner.touch(now)
                decoded_recs.append((rec, decoded))
            active = now < self.aligner.active_until
            stamped: list[tuple[Any, int | None]] = [
                (rec, max(x.ts for x in d.messages) if active and d and d.messages else None)
                for rec, d in decoded_recs]
            fetched[tp.partition] = stamped
            if stamped:
                self.fetched_at[tp.partition] = now
                self.fetched_to[tp.partition] = recs[-1].offset + 1
                tops = [t for _, t in stamped if t is not None]
                if tops:
                    self.seen_ts[tp.partition] = max(self.seen_ts.get(tp.partition, -1),
                                                     max(tops))
        behind: dict[int, int | None] = {}
        for p, next_offset in next_offsets.items():
            # a partition counts as idle once fetched up to its end for a while (its
            # high watermark is only as fresh as its last fetch, stale while paused)
            hw = consumer.highwater(TopicPartition(self.topic, p))
            if hw is None or hw > self.fetched_to.get(p, next_offset) \
                    or now - self.fetched_at.get(p, 0.0) < IDLE_PARTITION_S:
                behind[p] = self.seen_ts.get(p)
        out = self.aligner.admit(fetched, behind, now)
        self.ready = bool(out)  # else wait for a fetch of the partitions behind
        paused = consumer.paused()
        for p in next_offsets:
            tp = TopicPartition(self.topic, p)
            if self.aligner.held.get(p):
                consumer.pause(tp)
            elif tp in paused:
                consumer.resume(tp)
                self.fetched_at[p] = now
        return {TopicPartition(self.topic, p): recs for p, recs in out.items()}

    def forget(self, partitions: Iterable[int], consumer: Any) -> None:
        """Drop what is held or decoded for partitions revoked or sought anew."""
        from aiokafka import TopicPartition

        parts = set(partitions)
        self.aligner.drop(parts)
        for p in parts:
            self.fetched_to.pop(p, None)
        for key in [k for k in self.decoded if k[0] in parts]:
            del self.decoded[key]
        if consumer is not None:
            paused = {tp.partition for tp in consumer.paused()}
            consumer.resume(*[TopicPartition(self.topic, p) for p in parts & paused])
