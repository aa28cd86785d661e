"""Prometheus metrics of the command-centre process (one registry per service)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """All metrics of one :class:`alerts.service.Service`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sink_db_up = Gauge("wardstream_sink_db_up",
                                "1 while the sink can write to PostgreSQL, 0 while it retries",
                                ["sink"], registry=r)
        self.sink_records = Counter("wardstream_sink_records_total",
                                    "Kafka records handled by a sink, by result",
                                    ["sink", "result"], registry=r)
        self.sink_retries = Counter("wardstream_sink_retries_total",
                                    "Failed database writes that will be retried", ["sink"],
                                    registry=r)
        self.sink_pending = Gauge("wardstream_sink_pending_records",
                                  "Records consumed but not yet written (offsets not committed)",
                                  ["sink"], registry=r)
        self.sink_batch_seconds = Histogram("wardstream_sink_batch_seconds",
                                            "Time to write one batch", ["sink"], registry=r)
        self.escalations = Counter("wardstream_escalations_total", "Escalations by target tier",
                                   ["tier"], registry=r)
        self.http_requests = Counter("wardstream_api_requests_total", "API requests",
                                     ["method", "route", "status"], registry=r)
        self.login_failures = Counter("wardstream_login_failures_total", "Failed logins",
                                      ["reason"], registry=r)
        self.live_clients = Gauge("wardstream_live_clients", "Open /api/live WebSockets",
                                  registry=r)
        self.outbox_published = Counter("wardstream_outbox_published_total",
                                        "Lifecycle/control records published from the outbox",
                                        registry=r)
        self.outbox_pending = Gauge("wardstream_outbox_pending", "Outbox rows not yet published",
                                    registry=r)
        self.track_dropped = Counter("wardstream_track_partitions_dropped_total",
                                     "Daily track partitions dropped by retention", registry=r)
