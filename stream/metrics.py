"""Prometheus metrics of the stream worker and its small web server.

Each :class:`WorkerMetrics` has its own registry, so several workers can live
in one process (tests) without clashing. The web server serves ``/metrics``
(Prometheus text format), ``/healthz`` (the process is up) and ``/readyz``
(the worker has joined its group and restored its partitions); none of them
needs authentication, as the contract says for health and metrics.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    60.0, 120.0, 300.0)
_EVAL_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                 0.25, 0.5, 1.0)
_BATCH_BUCKETS = (1, 5, 10, 50, 100, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000)


class WorkerMetrics:
    """Every metric the worker exports (names start with ``wardstream_worker_``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.fixes_in = Counter(
            "wardstream_worker_fixes_in", "Telemetry messages consumed (fixes, device events,"
            " video hits) by result: evaluated, duplicate, late, rejected, unknown_device,"
            " misrouted", ["result"], registry=r)
        self.batch_size = Histogram(
            "wardstream_worker_batch_size", "Messages per evaluated batch (one partition,"
            " one poll)", buckets=_BATCH_BUCKETS, registry=r)
        self.eval_seconds = Histogram(
            "wardstream_worker_eval_seconds", "Engine evaluation time per batch, seconds",
            buckets=_EVAL_BUCKETS, registry=r)
        self.event_to_alert = Histogram(
            "wardstream_worker_event_to_alert_seconds", "Wall time the record was handed to"
            " Kafka minus the event time of its lifecycle event (live data only)",
            ["event"], buckets=_LATENCY_BUCKETS, registry=r)
        self.dead_letters = Counter(
            "wardstream_worker_dead_letters", "Dead-lettered inputs by reason", ["reason"],
            registry=r)
        self.lag = Gauge(
            "wardstream_worker_consumer_lag", "Telemetry messages not yet consumed, per"
            " partition (high watermark minus position)", ["partition"], registry=r)
        self.open_episodes = Gauge(
            "wardstream_worker_open_episodes", "Open alert episodes held by this worker, by"
            " kind", ["kind"], registry=r)
        self.records_out = Counter(
            "wardstream_worker_alert_records", "Alert lifecycle records published, by event",
            ["event"], registry=r)
        self.suppressed = Counter(
            "wardstream_worker_records_suppressed", "Lifecycle records not re-published after"
            " a restore because the alerts topic already holds them", registry=r)
        self.snapshots = Counter(
            "wardstream_worker_snapshots", "Partition state snapshots written", registry=r)
        self.snapshot_bytes = Histogram(
            "wardstream_worker_snapshot_bytes", "Compressed snapshot size, bytes",
            buckets=(1e3, 1e4, 1e5, 1e6, 1e7, 1e8), registry=r)
        self.restores = Counter(
            "wardstream_worker_restores", "Partitions restored on assignment, by source"
            " (snapshot or empty)", ["source"], registry=r)
        self.watermark = Gauge(
            "wardstream_worker_watermark_ms", "Event-time watermark per partition (epoch ms)",
            ["partition"], registry=r)
        self.partitions = Gauge(
            "wardstream_worker_partitions", "Telemetry partitions assigned to this worker",
            registry=r)
        self.gc_pause = Histogram(
            "wardstream_worker_gc_pause_seconds", "Python garbage-collector pauses (they stall"
            " the event loop)", ["generation"], buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0,
                                                       2.5, 5.0), registry=r)
        self.batch_fallbacks = Counter(
            "wardstream_worker_batch_fallbacks", "Batches the engine could not evaluate"
            " whole and evaluated one message at a time (the log names the persons)",
            registry=r)
        self.checkin_requests = Counter(
            "wardstream_worker_checkin_requests", "Random check-in requests sent to phones"
            " on the commands topic (one per device)", registry=r)
        self.control_updates = Counter(
            "wardstream_worker_control_updates", "Orders and zones applied from the control"
            " topics", ["topic", "action"], registry=r)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on one port (aiohttp)."""

    def __init__(self, metrics: WorkerMetrics, host: str, port: int,
                 ready: Callable[[], bool]) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self._ready = ready
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind and serve; ``port=0`` picks a free port (see :attr:`port`)."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if server is not None and self.port == 0:
            sockets = getattr(server, "sockets", None) or []
            if sockets:
                self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = self.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        ok = self._ready()
        return web.json_response({"ready": ok}, status=200 if ok else 503)
