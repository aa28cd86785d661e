"""Snapshots of per-partition engine state and the published-record ledger.

Recovery in one paragraph (docs/stream.md has the long form): a worker
snapshots each partition's engine (``Engine.snapshot()``) together with the
telemetry offset the snapshot covers, after every alert record derived from
that input has been acknowledged by the alerts topic (acks=all). Only then
does it commit that offset. A worker that is assigned a partition restores
the latest snapshot and consumes again from its offset, so no input is ever
skipped (no lost alert). Records the re-consumed input produces again were
possibly published already before the crash: the worker reads the alerts
topic from the end offsets noted in the snapshot, keeps the lifecycle events
that came from this partition (record header ``ws-part``) and suppresses
exactly those (no duplicated ``opened``).

Snapshots go to the compacted topic ``wardstream.snapshots``, partition ``p``
for telemetry partition ``p``, as zlib-compressed chunks (<= 512 KiB each)
written alternately under two key slots, then a manifest; so a crash while a
snapshot is being written leaves the previous one intact under compaction.

Reading "to the end" never trusts ListOffsets (Tansu may report the last
offset instead of last+1): it fetches until the position reaches the high
watermark that fetch responses carry.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Union

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from geofence.model import AlertRecord, Order
from stream.errors import StreamError
from stream.topics import ALERTS, SNAPSHOTS

log = logging.getLogger(__name__)

CHUNK_BYTES = 512 * 1024
SNAPSHOT_VERSION = 1
PART_HEADER = "ws-part"
SRC_HEADER = "ws-src"


class SnapshotMeta(msgspec.Struct):
    """The manifest of one partition snapshot."""

    version: int
    partition: int
    seq: int
    next_offset: int
    watermark: Union[int, None]
    max_ts: Union[int, None]
    alerts_low: dict[int, int]
    created_ms: int
    chunks: int
    size: int
    crc32: int
    # per source partition: the highest source offset of re-keyed records taken
    # (stream.repartition.SeenOrigins); absent from snapshots of older versions
    origins: dict[int, int] = msgspec.field(default_factory=dict)


class SnapshotChunk(msgspec.Struct):
    """One piece of a compressed snapshot."""

    seq: int
    index: int
    data: bytes


class SnapshotBody(msgspec.Struct):
    """What is compressed: the orders the engine held and its state."""

    orders: list[Order]
    state: bytes


class Snapshot(msgspec.Struct):
    """A restored snapshot: its manifest and body."""

    meta: SnapshotMeta
    body: SnapshotBody


_MSGPACK = msgspec.msgpack.Encoder()
_META = msgspec.msgpack.Decoder(SnapshotMeta)
_CHUNK = msgspec.msgpack.Decoder(SnapshotChunk)
_BODY = msgspec.msgpack.Decoder(SnapshotBody)
_RECORD = msgspec.json.Decoder(AlertRecord)
_JSON = msgspec.json.Encoder()


def manifest_key(group: str, partition: int) -> bytes:
    """Key of a partition's manifest on the snapshot topic (per consumer group)."""
    return f"{group}/{partition}/manifest".encode()


def chunk_key(group: str, partition: int, seq: int, index: int) -> bytes:
    """Key of a chunk: slot ``seq % 2`` keeps the previous snapshot intact."""
    return f"{group}/{partition}/{seq % 2}/{index}".encode()


def encode_snapshot(
    partition: int,
    seq: int,
    next_offset: int,
    watermark: int | None,
    max_ts: int | None,
    alerts_low: Mapping[int, int],
    orders: Sequence[Order],
    state: bytes,
    origins: Mapping[int, int] | None = None,
) -> tuple[SnapshotMeta, list[bytes]]:
    """Compress and split a snapshot; return its manifest and chunk payloads."""
    blob = zlib.compress(_MSGPACK.encode(SnapshotBody(list(orders), state)), 1)
    pieces = [blob[i:i + CHUNK_BYTES] for i in range(0, len(blob), CHUNK_BYTES)] or [b""]
    meta = SnapshotMeta(
        version=SNAPSHOT_VERSION, partition=partition, seq=seq, next_offset=next_offset,
        watermark=watermark, max_ts=max_ts, alerts_low=dict(alerts_low),
        created_ms=int(time.time() * 1000), chunks=len(pieces), size=len(blob),
        crc32=zlib.crc32(blob), origins=dict(origins or {}),
    )
    chunks = [_MSGPACK.encode(SnapshotChunk(seq, i, p)) for i, p in enumerate(pieces)]
    return meta, chunks


async def write_snapshot(producer: AIOKafkaProducer, group: str, meta: SnapshotMeta,
                         chunks: Sequence[bytes]) -> None:
    """Publish the chunks, wait for their acks, then publish the manifest."""
    p = meta.partition
    futures = [
        await producer.send(SNAPSHOTS, c, key=chunk_key(group, p, meta.seq, i), partition=p)
        for i, c in enumerate(chunks)
    ]
    await asyncio.gather(*futures)
    await producer.send_and_wait(SNAPSHOTS, _MSGPACK.encode(meta), key=manifest_key(group, p),
                                 partition=p)


async def read_to_end(
    consumer: AIOKafkaConsumer,
    starts: Mapping[TopicPartition, int | None],
    timeout_s: float = 60.0,
) -> list[Any]:
    """Every record of the given partitions from their start offset to the end.

    ``None`` as a start means the beginning. The end is the high watermark
    reported by fetch responses (never ListOffsets, see the module doc).
    """
    tps = list(starts)
    consumer.assign(tps)
    for tp, start in starts.items():
        if start is None:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, start)
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    pending = set(tps)
    while pending:
        if time.monotonic() > deadline:
            raise StreamError(f"reading {sorted(map(str, pending))} to the end timed out")
        batch = await consumer.getmany(*pending, timeout_ms=200)
        for msgs in batch.values():
            records.extend(msgs)
        for tp in list(pending):
            hw = consumer.highwater(tp)
            if hw is not None and await consumer.position(tp) >= hw:
                pending.discard(tp)
    return records


async def read_snapshots(consumer: AIOKafkaConsumer, group: str,
                         partitions: Iterable[int]) -> dict[int, Snapshot]:
    """The latest complete snapshot of each telemetry partition that has one."""
    parts = sorted(partitions)
    if not parts:
        return {}
    records = await read_to_end(consumer, {TopicPartition(SNAPSHOTS, p): None for p in parts})
    metas: dict[int, SnapshotMeta] = {}
    slots: dict[tuple[int, int, int], SnapshotChunk] = {}
    prefix = f"{group}/".encode()
    for rec in records:
        if rec.value is None or not (rec.key or b"").startswith(prefix):
            continue
        p = rec.partition
        try:
            if rec.key == manifest_key(group, p):
                metas[p] = _META.decode(rec.value)
            else:
                chunk = _CHUNK.decode(rec.value)
                slots[(p, chunk.seq % 2, chunk.index)] = chunk
        except msgspec.DecodeError:
            log.warning("snapshot partition %d offset %d is not a snapshot record; skipped",
                        p, rec.offset)
    out: dict[int, Snapshot] = {}
    for p, meta in metas.items():
        pieces = []
        for i in range(meta.chunks):
            piece = slots.get((p, meta.seq % 2, i))
            if piece is None or piece.seq != meta.seq:
                raise StreamError(f"snapshot {p}/{meta.seq}: chunk {i} is missing")
            pieces.append(piece.data)
        blob = b"".join(pieces)
        if zlib.crc32(blob) != meta.crc32:
            raise StreamError(f"snapshot {p}/{meta.seq}: checksum mismatch")
        out[p] = Snapshot(meta, _BODY.decode(zlib.decompress(blob)))
    return out


def record_identity(rec: AlertRecord) -> tuple[str, str, str]:
    """What makes a lifecycle record a duplicate: one ``opened`` and one
    ``cleared`` per alert_id; any other event once per alert_id, event time
    and content (a rewind may legitimately update an alert twice)."""
    if rec.event in ("opened", "cleared"):
        return (rec.alert.alert_id, rec.event, "")
    digest = hashlib.blake2b(_JSON.encode(rec.alert), digest_size=8).hexdigest()
    return (rec.alert.alert_id, rec.event, f"{rec.at or ''}#{digest}")


def header(headers: Iterable[tuple[str, bytes]] | None, name: str) -> bytes | None:
    """A record header's value."""
    for k, v in headers or ():
        if k == name:
            return v
    return None


async def read_ledgers(
    consumer: AIOKafkaConsumer,
    lows: Mapping[int, Mapping[int, int] | None],
    alerts_partitions: Iterable[int],
) -> dict[int, set[tuple[str, str, str]]]:
    """Lifecycle records already on the alerts topic, per telemetry partition.

    ``lows[p]`` holds, per alerts partition, the offset noted when ``p``'s
    snapshot was taken (``None``: no snapshot, read from the beginning). One
    pass reads every alerts partition from the lowest start any ``p`` needs;
    records are attributed by their ``ws-part`` header.
    """
    starts: dict[TopicPartition, int | None] = {}
    for a in alerts_partitions:
        need = [(low or {}).get(a) if low is not None else None for low in lows.values()]
        starts[TopicPartition(ALERTS, a)] = (
            None if not need or any(n is None for n in need) else min(n for n in need if n is not None)
        )
    out: dict[int, set[tuple[str, str, str]]] = {p: set() for p in lows}
    if not lows:
        return out
    records = await read_to_end(consumer, starts)
    wanted = {str(p).encode(): p for p in lows}
    for rec in records:
        if rec.value is None:
            continue
        p = wanted.get(header(rec.headers, PART_HEADER) or b"")
        if p is None:
            continue
        low = lows[p]
        if low is not None and rec.offset < low.get(rec.partition, 0):
            continue
        try:
            out[p].add(record_identity(_RECORD.decode(rec.value)))
        except msgspec.DecodeError:
            continue
    return out
