"""Hot reload: every worker reads the whole of the compacted control topics.

``wardstream.orders`` is keyed by person_id (value: one order as JSON; null:
the order is removed) and ``wardstream.zones`` by zone id (value: one GeoJSON
feature; null: the zone is removed). The worker starts from its ``--orders``
and ``--zones`` files, then applies the control topics from their beginning
(later records win), then keeps tailing them. Each worker uses its own
group-less consumer assigned to every partition, so every worker sees every
change (not a partition share of them).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from geofence.errors import ValidationError
from geofence.model import Order, parse_order
from stream.recovery import read_to_end
from stream.topics import ORDERS, ZONES

log = logging.getLogger(__name__)


@dataclass
class ControlChanges:
    """Changes read from the control topics, last value per key wins."""

    orders: dict[str, Order | None] = field(default_factory=dict)
    zones: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    rejected: list[tuple[str, str, str, str]] = field(default_factory=list)
    """(reason, detail, raw, source) of control records that failed validation."""

    def __bool__(self) -> bool:
        return bool(self.orders or self.zones or self.rejected)


def _text(raw: bytes | None) -> str:
    return "" if raw is None else raw[:4096].decode("utf-8", errors="replace")


def parse_control(records: list[Any], changes: ControlChanges | None = None) -> ControlChanges:
    """Turn control-topic records into :class:`ControlChanges`."""
    out = changes or ControlChanges()
    for rec in records:
        source = f"{rec.topic.removeprefix('wardstream.')}:{rec.partition}@{rec.offset}"
        key = rec.key.decode("utf-8", errors="replace") if rec.key else ""
        if not key:
            out.rejected.append(("missing_key", "control records are keyed by person_id or"
                                 " zone id", _text(rec.value), source))
            continue
        if rec.value is None:
            if rec.topic == ORDERS:
                out.orders[key] = None
            else:
                out.zones[key] = None
            continue
        try:
            data = json.loads(rec.value)
        except ValueError as exc:
            out.rejected.append(("malformed_json", str(exc), _text(rec.value), source))
            continue
        if rec.topic == ORDERS:
            try:
                order = parse_order(data)
            except ValidationError as exc:
                out.rejected.append((exc.reason, exc.detail, _text(rec.value), source))
                continue
            if order.person_id != key:
                out.rejected.append(("key_mismatch", f"key {key!r} but person_id"
                                     f" {order.person_id!r}", _text(rec.value), source))
                continue
            out.orders[key] = order
        else:
            if not isinstance(data, Mapping) or data.get("type") != "Feature":
                out.rejected.append(("wrong_type", "a zone record is one GeoJSON Feature",
                                     _text(rec.value), source))
                continue
            feature = dict(data)
            feature.setdefault("id", key)
            if str(feature.get("id")) != key:
                out.rejected.append(("key_mismatch", f"key {key!r} but feature id"
                                     f" {feature.get('id')!r}", _text(rec.value), source))
                continue
            out.zones[key] = feature
    return out


class ControlReader:
    """Group-less reader of ``wardstream.orders`` and ``wardstream.zones``."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
            auto_offset_reset="earliest",
        )
        self._tps: list[TopicPartition] = []

    async def start(self) -> ControlChanges:
        """Connect and read both topics from the beginning; return their state."""
        await self._consumer.start()
        tps: list[TopicPartition] = []
        for topic in (ORDERS, ZONES):
            parts = self._consumer.partitions_for_topic(topic)
            if not parts:
                await self._consumer._client.force_metadata_update()
                parts = self._consumer.partitions_for_topic(topic) or {0}
            tps.extend(TopicPartition(topic, p) for p in sorted(parts))
        self._tps = tps
        records = await read_to_end(self._consumer, {tp: None for tp in tps})
        return parse_control(records)

    async def poll(self, timeout_ms: int = 200) -> ControlChanges:
        """Changes published since the last call (empty when none)."""
        batch = await self._consumer.getmany(*self._tps, timeout_ms=timeout_ms)
        records = [r for msgs in batch.values() for r in msgs]
        return parse_control(records)

    async def stop(self) -> None:
        """Disconnect."""
        await self._consumer.stop()
