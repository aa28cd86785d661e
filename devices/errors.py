"""Errors of the device gateway.

A frame that cannot be decoded raises :class:`FrameError`, a
:class:`geofence.errors.ValidationError` whose ``reason`` is a short code
(``bad_checksum``, ``truncated``, ``bad_escape``, ``frame_too_large``,
``malformed``, ``unsupported``, ...) used as the dead-letter reason and the
``frames_total{result=...}`` metric label, and whose ``detail`` says precisely
what is wrong with which bytes.
"""

from __future__ import annotations

from geofence.errors import ValidationError, WardstreamError


class DeviceError(WardstreamError):
    """Root of the gateway's own failures (configuration, I/O set-up)."""


class FrameError(ValidationError):
    """A tracker frame is malformed, truncated, oversized or fails its checksum."""


class GatewayConfigError(DeviceError):
    """The gateway was started with an unusable configuration."""
