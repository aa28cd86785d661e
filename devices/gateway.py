"""The gateway service: servers, MQTT subscriber, downlink and control consumers.

A mode-style service with explicit :meth:`Gateway.start` / :meth:`Gateway.stop`;
its children (TCP servers, the OsmAnd HTTP site, the MQTT subscriber, the
``wardstream.commands`` and ``wardstream.orders`` consumers, the idle
sweeper) start and stop with it, and stop flushes the publisher so nothing
acknowledged is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiokafka import AIOKafkaConsumer, TopicPartition

from devices.bounds import json_bounds
from devices.errors import FrameError, GatewayConfigError
from devices.metrics import GatewayMetrics
from devices.provisioning import Provisioning
from devices.publisher import DEADLETTER_TOPIC, TELEMETRY_TOPIC, Publisher
from devices.registry import Registry
from devices.servers import TCP_PROTOCOLS, Hub, ServerConfig, osmand_app, start_tcp, telemetry_key
from devices.sessions import too_far_ahead
from devices.wire import encode_one
from geofence.errors import OrderError
from geofence.model import Order, TelemetryDecoder, VideoHit, parse_order
from stream.checkin_requests import COMMAND as CHECKIN_REQUEST
from stream.settings import Settings
from stream.topics import COMMANDS, DEADLETTER, ORDERS, TELEMETRY, ensure_topics, topic_specs
from stream.topics import COMMANDS as COMMANDS_TOPIC
from stream.topics import ORDERS as ORDERS_TOPIC

log = logging.getLogger(__name__)

#: Failures of an input that are outages, not bugs: logged without a traceback.
_EXPECTED_OUTAGES: tuple[type[BaseException], ...] = (OSError, ConnectionError)


@dataclass
class GatewayConfig:
    """Everything ``wardstream gateway`` needs."""

    kafka: str
    orders: list[Order] = field(default_factory=list)
    server: ServerConfig = field(default_factory=ServerConfig)
    osmand_port: int | None = None
    mqtt_url: str | None = None
    mqtt_topic: str = "wardstream/telemetry/#"
    metrics_port: int | None = None
    secret: bytes = b""
    telemetry_topic: str = TELEMETRY_TOPIC
    deadletter_topic: str = DEADLETTER_TOPIC
    commands_topic: str = COMMANDS_TOPIC
    orders_topic: str = ORDERS_TOPIC
    follow_orders: bool = True
    max_queue: int = 20_000
    linger_ms: float = 5.0
    max_envelope: int = 500
    topic_partitions: int = 12
    envelope_by: str = "partition"
    extra_devices: list[tuple[str, str]] = field(default_factory=list)
    provisioning: Provisioning | None = None
    """Provisioned devices (docs/security.md); required unless ``allow_unprovisioned``."""
    allow_unprovisioned: bool = False
    """Accept any device an order names, without provisioning (test rigs only)."""


class Gateway:
    """Device gateway: tracker protocols in, canonical telemetry to Kafka."""

    def __init__(self, config: GatewayConfig, metrics: GatewayMetrics | None = None) -> None:
        if not config.kafka:
            raise GatewayConfigError("no Kafka bootstrap (set WARDSTREAM_KAFKA or --kafka)")
        if config.provisioning is None and not config.allow_unprovisioned:
            raise GatewayConfigError("no provisioned devices: give a provisioning file "
                                     "(--provisioning) or accept any device an order names "
                                     "with --allow-unprovisioned")
        self.config = config
        self.metrics = metrics or GatewayMetrics()
        secret = config.secret
        if not secret:
            secret = secrets.token_bytes(32)
            log.warning("no gateway secret configured: JT/T 808 auth codes change on restart "
                        "(set WARDSTREAM_GATEWAY_SECRET)")
        self.registry = Registry(config.orders, secret, config.extra_devices,
                                 provisioning=config.provisioning)
        self.publisher = Publisher(
            config.kafka, topic=config.telemetry_topic, deadletter_topic=config.deadletter_topic,
            max_queue=config.max_queue, linger_ms=config.linger_ms,
            max_envelope=config.max_envelope, metrics=self.metrics,
            envelope_by=config.envelope_by)
        self.hub = Hub(self.registry, self.publisher, self.metrics, config.server)
        self.servers: dict[str, asyncio.Server] = {}
        self.ports: dict[str, int] = {}
        self._runner: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._metrics_server: Any = None
        self.mqtt_connected = asyncio.Event()
        self.commands_ready = asyncio.Event()
        self.orders_ready = asyncio.Event()

    async def start(self) -> None:
        """Create topics, start the publisher and every configured server."""
        c = self.config
        await ensure_topics(c.kafka, topic_specs(
            Settings.from_env(), partitions=c.topic_partitions,
            names={TELEMETRY: c.telemetry_topic, DEADLETTER: c.deadletter_topic,
                   COMMANDS: c.commands_topic, ORDERS: c.orders_topic}), partitions=False)
        await self.publisher.start()
        for proto in TCP_PROTOCOLS:
            port = c.server.ports.get(proto)
            if port is None:
                continue
            server = await start_tcp(self.hub, proto, port)
            self.servers[proto] = server
            self.ports[proto] = server.sockets[0].getsockname()[1]
        if c.osmand_port is not None:
            from aiohttp import web

            if c.provisioning is None:
                log.warning("OsmAnd requests are accepted without device keys (no provisioned "
                            "devices): anyone who knows a device id can send its positions")

            app = osmand_app(self.hub, c.provisioning)
            self._runner = web.AppRunner(app, access_log=None)  # type: ignore[arg-type]
            await self._runner.setup()
            site = web.TCPSite(self._runner, c.server.host, c.osmand_port)
            await site.start()
            self.ports["osmand"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if c.metrics_port is not None:
            from prometheus_client import start_http_server

            try:
                self._metrics_server, _ = start_http_server(c.metrics_port,
                                                            registry=self.metrics.registry)
            except OSError as exc:  # a busy port must not keep devices out
                log.error("metrics port %d unavailable (%s); serving metrics on a free port",
                          c.metrics_port, exc)
                self._metrics_server, _ = start_http_server(0, registry=self.metrics.registry)
            self.ports["metrics"] = self._metrics_server.server_port
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._sweep(), name="idle-sweeper"))
        self._tasks.append(loop.create_task(self._supervise("commands", self._commands),
                                            name="commands"))
        if c.follow_orders:
            self._tasks.append(loop.create_task(self._supervise("orders", self._orders),
                                                name="orders"))
        if c.mqtt_url:
            if not urlsplit(c.mqtt_url).username:
                log.warning("MQTT without credentials: only a broker that refuses anonymous "
                            "publishers (config/mosquitto.conf) keeps devices to their topics")
            self._tasks.append(loop.create_task(self._supervise("mqtt", self._mqtt, 0.5),
                                                name="mqtt"))

    async def stop(self) -> None:
        """Stop accepting, close connections, flush Kafka."""
        for server in self.servers.values():
            server.close()
        for conn in list(self.hub.connections):
            conn.close("shutdown")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
        await self.publisher.stop()
        self.hub.flush_metrics()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()

    # -- children
    async def _supervise(self, name: str, child: Callable[[], Awaitable[None]],
                         first_backoff: float = 1.0) -> None:
        """Run an input; restart it with backoff whenever it fails (never silently).

        Each restart is logged and counted in
        ``wardstream_gateway_input_restarts_total{input=name}``; the backoff
        doubles up to 30 s and starts again from ``first_backoff`` once the
        input has run for a minute.
        """
        backoff = first_backoff
        while True:
            started = time.monotonic()
            try:
                await child()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if time.monotonic() - started >= 60.0:
                    backoff = first_backoff
                self.metrics.input_restarts.labels(name).inc()
                log.error("gateway input %s failed (%s: %s); restarting in %.1f s",
                          name, type(exc).__name__, exc, backoff,
                          exc_info=not isinstance(exc, _EXPECTED_OUTAGES))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _sweep(self) -> None:
        period = max(0.2, min(5.0, self.config.server.idle_timeout_s / 4))
        last = time.monotonic()
        while True:
            await asyncio.sleep(min(1.0, period))
            self.hub.flush_metrics()
            if time.monotonic() - last >= period:
                last = time.monotonic()
                self.hub.sweep_idle()

    async def _consumer(self, topic: str, from_start: bool) -> AIOKafkaConsumer:
        """A group-less consumer of every partition of ``topic`` (each gateway sees all)."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.config.kafka, group_id=None,
                                    enable_auto_commit=False)
        await consumer.start()
        parts = consumer.partitions_for_topic(topic)
        for _ in range(50):
            if parts:
                break
            await asyncio.sleep(0.1)
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts or {0})]
        consumer.assign(tps)
        if from_start:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        return consumer

    async def _commands(self) -> None:
        """Deliver ``wardstream.commands`` requests to connected devices."""
        consumer = await self._consumer(self.config.commands_topic, from_start=False)
        self.commands_ready.set()
        try:
            async for record in consumer:
                try:
                    cmd = json.loads(record.value or b"null")
                    dev, command = str(cmd["device_id"]), str(cmd["command"])
                    if command == CHECKIN_REQUEST:
                        # for the phone app's push service: a phone keeps no connection here
                        self.metrics.commands.labels("for_phone_app").inc()
                        continue
                    if command not in ("pursuit", "normal"):
                        raise ValueError(f"unknown command {command!r}")
                    interval = int(cmd.get("interval_s") or (15 if command == "pursuit" else 60))
                    if interval <= 0:
                        raise ValueError(f"interval_s {interval} is not positive")
                except (ValueError, KeyError, TypeError) as exc:
                    self.metrics.commands.labels("invalid").inc()
                    self.hub.dead("invalid_command", str(exc),
                                  (record.value or b"")[:4096].decode("utf-8", "replace"),
                                  f"commands:{record.partition}@{record.offset}", None)
                    continue
                result = self.hub.deliver(dev, command, interval)
                log.info("command %s (%d s) for %s: %s", command, interval, dev, result)
        finally:
            await consumer.stop()

    async def _orders(self) -> None:
        """Follow ``wardstream.orders`` (key person_id, value order or tombstone)."""
        consumer = await self._consumer(self.config.orders_topic, from_start=True)
        self.orders_ready.set()
        try:
            async for record in consumer:
                person = (record.key or b"").decode()
                if record.value is None:
                    self.registry.remove_person(person)
                    continue
                try:
                    self.registry.upsert_order(parse_order(json.loads(record.value)))
                except (OrderError, ValueError) as exc:
                    self.hub.dead(getattr(exc, "reason", "invalid_order"), str(exc),
                                  record.value[:4096].decode("utf-8", "replace"),
                                  f"orders:{record.partition}@{record.offset}", person or None)
        finally:
            await consumer.stop()

    async def _mqtt(self) -> None:
        """Subscribe to canonical JSON on MQTT and publish it like any device frame.

        One connection; a lost broker raises and :meth:`_supervise` reconnects.
        """
        import aiomqtt

        url = urlsplit(self.config.mqtt_url or "")
        host, port = url.hostname or "127.0.0.1", url.port or 1883
        decoder = TelemetryDecoder()
        try:
            async with aiomqtt.Client(hostname=host, port=port, username=url.username,
                                      password=url.password,
                                      identifier=f"wardstream-gw-{uuid.uuid4().hex[:8]}"
                                      ) as client:
                await client.subscribe(self.config.mqtt_topic, qos=1)
                self.mqtt_connected.set()
                log.info("MQTT %s:%d: subscribed to %s", host, port, self.config.mqtt_topic)
                async for message in client.messages:
                    await self._mqtt_message(decoder, str(message.topic), message.payload)
        except aiomqtt.MqttError as exc:  # an outage: reconnect without a traceback
            raise ConnectionError(f"MQTT {host}:{port}: {exc}") from exc
        finally:
            self.mqtt_connected.clear()
        raise ConnectionError(f"MQTT {host}:{port}: the message stream ended")

    async def _mqtt_message(self, decoder: TelemetryDecoder, topic: str, payload: Any) -> None:
        """Handle one MQTT message; whatever goes wrong, it is dead-lettered and input goes on."""
        raw = payload if isinstance(payload, (bytes, bytearray)) else str(payload).encode()
        source = f"mqtt:{topic}"
        try:
            await self._mqtt_decode(decoder, source, bytes(raw))
        except Exception as exc:
            log.exception("MQTT message on %s could not be handled", topic)
            self.metrics.frames.labels("mqtt", "internal_error").inc()
            self.hub.dead("internal_error", f"{type(exc).__name__}: {exc}",
                          bytes(raw[:4096]).decode("utf-8", "replace"), source, None)

    async def _mqtt_decode(self, decoder: TelemetryDecoder, source: str, raw: bytes) -> None:
        received = time.monotonic()
        m = self.metrics
        m.bytes.labels("mqtt", "in").inc(len(raw))
        try:
            json_bounds(raw, decoder.max_bytes)
        except FrameError as exc:
            m.frames.labels("mqtt", exc.reason).inc()
            self.hub.dead(exc.reason, exc.detail, raw[:4096].decode("utf-8", "replace"),
                          source, None)
            return
        batch = decoder.decode(raw)
        for r in batch.rejected:
            m.frames.labels("mqtt", r.reason).inc()
            self.hub.dead(r.reason, r.detail, r.raw, source if r.index < 0 else f"{source}[{r.index}]",
                          None)
        now = int(time.time() * 1000)
        skew_ms = int(self.config.server.future_skew_s * 1000)
        groups: dict[str, list[Any]] = {}
        bound = topic_device(source)
        for msg in batch.messages:
            named = msg.camera_id if isinstance(msg, VideoHit) else msg.device_id
            ahead = too_far_ahead(msg, now, skew_ms)
            if ahead is not None:
                m.frames.labels("mqtt", "future_timestamp").inc()
                self.hub.dead("future_timestamp", ahead, encode_one(msg).decode(), source, None)
                continue
            if named != bound:
                m.frames.labels("mqtt", "device_mismatch").inc()
                self.hub.dead("device_mismatch", f"message names {named!r} but was published on "
                              f"the topic of {bound!r}", encode_one(msg).decode(), source, None)
                continue
            prov = self.config.provisioning
            if (isinstance(msg, VideoHit) and prov is not None
                    and prov.for_protocol(msg.camera_id, "mqtt") is None):
                m.frames.labels("mqtt", "unknown_device").inc()
                self.hub.dead("unknown_device", f"camera {msg.camera_id!r} is not provisioned "
                              "for mqtt", encode_one(msg).decode(), source, msg.camera_id)
                continue
            if not isinstance(msg, VideoHit) and not self.registry.is_accepted(msg.device_id, now):
                m.frames.labels("mqtt", "unknown_device").inc()
                self.hub.dead("unknown_device", f"mqtt device {msg.device_id!r} is named by no "
                              "active order", encode_one(msg).decode(), source, msg.device_id)
                continue
            groups.setdefault(telemetry_key(self.registry, msg), []).append(msg)
        if not groups:
            return
        await self.publisher.wait_space()
        futs = [self.publisher.submit(key, msgs, received) for key, msgs in groups.items()]
        results = await asyncio.gather(*futs, return_exceptions=True)
        failed = sum(1 for r in results if isinstance(r, BaseException))
        m.frames.labels("mqtt", "ok" if not failed else "publish_failed").inc()


def topic_device(source: str) -> str:
    """The device an MQTT topic belongs to: its last level (``.../telemetry/WB-1`` -> ``WB-1``).

    The broker's ACL lets each device publish only below its own id, so the
    last topic level is the authenticated publisher; a payload naming another
    device is refused as ``device_mismatch``.
    """
    return source.rsplit("/", 1)[-1]
