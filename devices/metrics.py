"""Prometheus metrics of the gateway (one registry per gateway instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class GatewayMetrics:
    """Connections, frames by result, bytes, publish latency, queue depth, dead letters."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.connections = Gauge("wardstream_gateway_connections", "Open device connections",
                                 ["protocol"], registry=r)
        self.connections_closed = Counter(
            "wardstream_gateway_connections_closed_total", "Connections closed, by reason",
            ["protocol", "reason"], registry=r)
        self.frames = Counter("wardstream_gateway_frames_total", "Frames by protocol and result",
                              ["protocol", "result"], registry=r)
        self.bytes = Counter("wardstream_gateway_bytes_total", "Bytes by protocol and direction",
                             ["protocol", "direction"], registry=r)
        self.messages = Counter("wardstream_gateway_messages_published_total",
                                "Canonical messages accepted by Kafka", registry=r)
        self.publish_errors = Counter("wardstream_gateway_publish_errors_total",
                                      "Envelopes Kafka did not accept", registry=r)
        self.publish_latency = Histogram(
            "wardstream_gateway_publish_latency_seconds",
            "Frame receipt to Kafka acknowledgement",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r)
        self.queue_depth = Gauge("wardstream_gateway_queue_depth",
                                 "Canonical messages waiting for Kafka", registry=r)
        self.paused = Gauge("wardstream_gateway_paused_connections",
                            "Connections whose reading is paused by backpressure", registry=r)
        self.pauses = Counter("wardstream_gateway_backpressure_pauses_total",
                              "Times a connection stopped reading because the queue was full",
                              registry=r)
        self.dead_letters = Counter("wardstream_gateway_dead_letters_total",
                                    "Dead letters by reason", ["reason"], registry=r)
        self.commands = Counter("wardstream_gateway_commands_total",
                                "Downlink commands by result", ["result"], registry=r)
