"""Topic names and their creation.

Every wardstream process uses these names (docs/contract.md). The worker
creates any topic that is missing when it starts, with the partition count,
replication factor and retention from :class:`stream.settings.Settings`.
Control topics (orders, zones) and the snapshot topic are compacted: the
latest value per key is the state, a null value (tombstone) deletes it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream.errors import StreamError
from stream.settings import Settings

log = logging.getLogger(__name__)

TELEMETRY = "wardstream.telemetry"
ALERTS = "wardstream.alerts"
DEADLETTER = "wardstream.deadletter"
ORDERS = "wardstream.orders"
ZONES = "wardstream.zones"
COMMANDS = "wardstream.commands"
SNAPSHOTS = "wardstream.snapshots"

_TOPIC_EXISTS = 36
_HOUR_MS = 3_600_000


@dataclass(frozen=True)
class TopicSpec:
    """One topic as the worker creates it when missing."""

    name: str
    partitions: int
    replication: int
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every wardstream topic with its partitions, replication and retention.

    The snapshot topic must have at least as many partitions as the telemetry
    topic: the snapshot of telemetry partition ``p`` lives on its partition
    ``p``.
    """
    n = settings.topic_partitions
    rf = settings.topic_replication
    retention = str(settings.telemetry_retention_h * _HOUR_MS)
    alerts_retention = str(settings.alerts_retention_h * _HOUR_MS)
    compact = {"cleanup.policy": "compact"}
    # a snapshot of a large partition is chunked at 512 KiB; allow a margin
    snapshot_cfg = {"cleanup.policy": "compact", "max.message.bytes": str(2 * 1024 * 1024)}
    return [
        TopicSpec(TELEMETRY, n, rf, {"retention.ms": retention,
                                     "max.message.bytes": str(settings.max_payload_bytes + 1024)}),
        TopicSpec(ALERTS, n, rf, {"retention.ms": alerts_retention}),
        TopicSpec(DEADLETTER, max(1, min(n, 4)), rf, {"retention.ms": retention}),
        TopicSpec(ORDERS, 1, rf, dict(compact)),
        TopicSpec(ZONES, 1, rf, dict(compact)),
        TopicSpec(COMMANDS, n, rf, {"retention.ms": str(_HOUR_MS)}),
        TopicSpec(SNAPSHOTS, n, rf, snapshot_cfg),
    ]


async def ensure_topics(bootstrap: str, specs: Sequence[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    An existing topic is left as it is (its partition count is not changed:
    repartitioning a keyed topic moves persons between partitions, which is
    an operator's decision, see docs/stream.md).
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    created: list[str] = []
    try:
        for spec in specs:
            resp = await admin.create_topics(
                [NewTopic(spec.name, spec.partitions, spec.replication, topic_configs=spec.config)]
            )
            for topic, code, message in resp.topic_errors:
                if code == 0:
                    created.append(topic)
                    log.info("created topic %s (%d partitions, rf %d)", topic,
                             spec.partitions, spec.replication)
                elif code != _TOPIC_EXISTS:
                    raise StreamError(f"cannot create topic {topic}: error {code} {message}")
    finally:
        await admin.close()
    return created
