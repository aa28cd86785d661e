"""Errors of the stream package."""

from __future__ import annotations

from geofence.errors import WardstreamError


class StreamError(WardstreamError):
    """A failure of the Kafka/Faust edge."""


class BrokerError(StreamError):
    """The embedded broker could not be found, started or reached."""


class ConfigError(StreamError):
    """A setting has an invalid value."""
