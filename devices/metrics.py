"""Prometheus metrics of the gateway (one registry per gateway instance)."""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class FastHistogram(Collector):
    """A Prometheus histogram whose ``observe`` is a bisect and a list increment.

    prometheus-client's own ``Histogram.observe`` takes a lock and costs
    several microseconds; the gateway observes once per frame, tens of
    thousands of times a second, on one thread (the event loop).
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float],
                 registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = list(buckets)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        registry.register(self)

    def observe(self, value: float) -> None:
        """Record one observation (seconds)."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def collect(self) -> Iterator[HistogramMetricFamily]:
        cumulative, total = [], 0
        for bound, count in zip([*map(str, self.bounds), "+Inf"], self.counts, strict=True):
            total += count
            cumulative.append((bound, total))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=cumulative,
                                    sum_value=self.sum)


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
        self.publish_latency = FastHistogram(
            "wardstream_gateway_publish_latency_seconds",
            "Frame receipt to Kafka acknowledgement", LATENCY_BUCKETS, r)
        self.queue_depth = Gauge("wardstream_gateway_queue_depth",
                                 "Canonical messages waiting for Kafka", registry=r)
        self.paused = Gauge("wardstream_gateway_paused_connections",
                            "Connections whose reading is paused by backpressure", registry=r)
        self.pauses = Counter("wardstream_gateway_backpressure_pauses_total",
                              "Times a connection stopped reading because the queue was full",
                              registry=r)
        self.dead_letters = Counter("wardstream_gateway_dead_letters_total",
                                    "Dead letters by reason", ["reason"], registry=r)
        self.rate_limited = Counter(
            "wardstream_gateway_rate_limited_total",
            "Telemetry messages dropped because their device exceeded its rate", ["protocol"],
            registry=r)
        self.conflicts = Counter(
            "wardstream_gateway_device_conflicts_total",
            "Connections refused because another live connection speaks for the device",
            ["protocol"], registry=r)
        self.input_restarts = Counter(
            "wardstream_gateway_input_restarts_total",
            "Times a gateway input (MQTT subscriber, consumer) failed and was restarted",
            ["input"], registry=r)
        self.commands = Counter("wardstream_gateway_commands_total",
                                "Downlink commands by result", ["result"], registry=r)
