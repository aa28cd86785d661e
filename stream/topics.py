"""The Kafka contract: topic names, partitions, compaction, retention, checks.

Every wardstream process takes its topic names from here (docs/contract.md)
and its keys from :mod:`stream.keying`. Whichever process starts first (the
worker, the gateway, the API, a simulator) creates the missing topics the
same way, :func:`ensure_topics` with :func:`topic_specs`: partition count,
replication factor and retention from :class:`stream.settings.Settings`.
Control topics (orders, zones) and the snapshot topic are compacted: the
latest value per key is the state, a null value (tombstone) deletes it.

A topic that exists but breaks the contract stops the process at start with
one line naming the fix (:class:`TopicContractError`): a control topic
without compaction would lose orders once its retention passed, a telemetry
topic with fewer partitions than configured would move persons between
partitions. ``wardstream topics check`` prints the state of every topic.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

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

CONTRACT_TOPICS = (TELEMETRY, ALERTS, DEADLETTER, ORDERS, ZONES, COMMANDS, SNAPSHOTS)
"""Every topic of the contract."""

_TOPIC_EXISTS = 36
_HOUR_MS = 3_600_000


class TopicContractError(StreamError):
    """A topic exists but breaks the contract (the message names the fix)."""


@dataclass(frozen=True)
class TopicSpec:
    """One topic as every process creates it when missing.

    ``role`` is its contract name (:data:`CONTRACT_TOPICS`); ``name`` the
    name in use (the same unless a deployment renamed it).
    """

    name: str
    partitions: int
    replication: int
    config: dict[str, str] = field(default_factory=dict)
    role: str = ""

    @property
    def compacted(self) -> bool:
        """The contract wants this topic compacted."""
        return "compact" in self.config.get("cleanup.policy", "")


@dataclass(frozen=True)
class TopicState:
    """A topic as the broker has it (``partitions == 0``: missing)."""

    spec: TopicSpec
    partitions: int
    config: dict[str, str]

    @property
    def exists(self) -> bool:
        """The broker has the topic."""
        return self.partitions > 0

    @property
    def problem(self) -> str | None:
        """What breaks the contract, with the fix; ``None`` when all is well."""
        return self.problem_of(partitions=True)

    def problem_of(self, partitions: bool) -> str | None:
        """:attr:`problem`, leaving out the partition count unless ``partitions``."""
        spec = self.spec
        if not self.exists:
            return None
        policy = self.config.get("cleanup.policy", "delete")
        if spec.compacted and "compact" not in policy:
            return (f"topic {spec.name} has cleanup.policy={policy}, not compact: its state"
                    f" would be lost once retention passes; set cleanup.policy=compact on it"
                    f" (kafka-configs --alter --entity-type topics --entity-name {spec.name}"
                    f" --add-config cleanup.policy=compact)")
        if partitions and spec.role in (TELEMETRY, SNAPSHOTS) \
                and self.partitions < spec.partitions:
            return (f"topic {spec.name} has {self.partitions} partitions, fewer than the"
                    f" {spec.partitions} configured: add partitions (kafka-topics --alter"
                    f" --topic {spec.name} --partitions {spec.partitions}) or set"
                    f" WARDSTREAM_TOPIC_PARTITIONS={self.partitions} everywhere")
        return None

    def line(self) -> str:
        """One line for ``wardstream topics check``."""
        if not self.exists:
            return f"{self.spec.name}: missing (created with {self.spec.partitions} partitions)"
        cfg = ", ".join(f"{k}={v}" for k, v in sorted(self.config.items())) or "broker defaults"
        state = "ok" if self.problem is None else f"WRONG: {self.problem}"
        return f"{self.spec.name}: {self.partitions} partitions; {cfg}; {state}"


def topic_specs(settings: Settings, *, partitions: int | None = None,
                replication: int | None = None,
                names: dict[str, str] | None = None) -> list[TopicSpec]:
    """Every wardstream topic with its partitions, replication and retention.

    The snapshot topic must have at least as many partitions as the telemetry
    topic: the snapshot of telemetry partition ``p`` lives on its partition
    ``p``. ``partitions`` and ``replication`` override the settings;
    ``names`` renames topics (contract name -> name in use).
    """
    n = partitions or settings.topic_partitions
    rf = replication or settings.topic_replication
    retention = str(settings.telemetry_retention_h * _HOUR_MS)
    alerts_retention = str(settings.alerts_retention_h * _HOUR_MS)
    compact = {"cleanup.policy": "compact"}
    # a snapshot of a large partition is chunked at 512 KiB; allow a margin
    snapshot_cfg = {"cleanup.policy": "compact", "max.message.bytes": str(2 * 1024 * 1024)}
    specs = [
        (TELEMETRY, n, {"retention.ms": retention,
                        "max.message.bytes": str(settings.max_payload_bytes + 1024)}),
        (ALERTS, n, {"retention.ms": alerts_retention}),
        (DEADLETTER, max(1, min(n, 4)), {"retention.ms": retention}),
        (ORDERS, 1, dict(compact)),
        (ZONES, 1, dict(compact)),
        (COMMANDS, n, {"retention.ms": str(_HOUR_MS)}),
        (SNAPSHOTS, n, snapshot_cfg),
    ]
    rename = names or {}
    return [TopicSpec(rename.get(role, role), parts, rf, cfg, role)
            for role, parts, cfg in specs]


async def describe_topics(admin: AIOKafkaAdminClient,
                          specs: Sequence[TopicSpec]) -> list[TopicState]:
    """The broker's partition count and explicit configuration of each topic."""
    names = [s.name for s in specs]
    existing = set(await admin.list_topics())
    present = [n for n in names if n in existing]
    parts: dict[str, int] = {}
    configs: dict[str, dict[str, str]] = {n: {} for n in present}
    if present:
        for t in await admin.describe_topics(present):
            if not t.get("error_code"):
                parts[t["topic"]] = len(t.get("partitions") or [])
        resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in present]
        for resp in await admin.describe_configs(resources):
            for res in resp.resources:
                _code, _msg, _type, name, entries = res[:5]
                configs[name] = {e[0]: e[1] for e in entries if e[1] is not None}
    return [TopicState(s, parts.get(s.name, 0), configs.get(s.name, {})) for s in specs]


async def check_topics(bootstrap: str, specs: Sequence[TopicSpec]) -> list[TopicState]:
    """The state of every topic of ``specs`` (creates nothing)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        return await describe_topics(admin, specs)
    finally:
        await admin.close()


async def ensure_topics(bootstrap: str, specs: Sequence[TopicSpec],
                        verify: bool = True, partitions: bool = True) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    An existing topic is left as it is (its partition count is not changed:
    repartitioning a keyed topic moves persons between partitions, which is
    an operator's decision, see docs/stream.md). With ``verify``, a topic
    that breaks the contract raises :class:`TopicContractError`; a process
    whose work does not depend on the configured partition count passes
    ``partitions=False`` to leave that check to the worker.
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
        if verify:
            for state in await describe_topics(admin, specs):
                problem = state.problem_of(partitions)
                if problem is not None:
                    raise TopicContractError(problem)
    finally:
        await admin.close()
    return created


def main(argv: Sequence[str]) -> int:
    """``wardstream topics check``: the state of every topic against the contract."""
    import argparse
    import asyncio
    import sys

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the one-line reason says it

    settings = Settings.from_env()
    ap = argparse.ArgumentParser(prog="wardstream topics",
                                 description="Kafka topics of wardstream against the contract:"
                                             " partitions, compaction, retention.")
    sub = ap.add_subparsers(dest="action", required=True)
    check = sub.add_parser("check", help="print the state of every topic; exit 1 when one"
                                         " breaks the contract")
    check.add_argument("--kafka", default=settings.kafka,
                       help="bootstrap servers (default: WARDSTREAM_KAFKA)")
    check.add_argument("--create", action="store_true",
                       help="create the missing topics first, as every process does at start")
    args = ap.parse_args(list(argv))
    if not args.kafka:
        print("wardstream topics: no Kafka given: set WARDSTREAM_KAFKA or pass --kafka",
              file=sys.stderr)
        return 2
    specs = topic_specs(settings)

    async def run() -> list[TopicState]:
        if args.create:
            await ensure_topics(args.kafka, specs, verify=False)
        return await check_topics(args.kafka, specs)

    try:
        states = asyncio.run(run())
    except (StreamError, OSError, KafkaError) as exc:
        print(f"wardstream topics: cannot reach Kafka at {args.kafka}: {exc}", file=sys.stderr)
        return 2
    for state in states:
        print(state.line())
    return 1 if any(s.problem is not None for s in states) else 0
