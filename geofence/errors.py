"""The project's root exception and the errors of the pure core.

Every error wardstream raises on purpose derives from :class:`WardstreamError`,
so a caller can catch the project's own failures without catching bugs.
Each package names its own errors below it (``stream.errors``,
``devices.errors``, ``alerts.errors``, ``simulators.errors``).
"""

from __future__ import annotations


class WardstreamError(Exception):
    """Root of every error wardstream raises on purpose."""


class ValidationError(WardstreamError):
    """A message or file failed validation.

    Parameters
    ----------
    reason : str
        A short machine-readable code (``missing_field``, ``out_of_range``,
        ...), used as the dead-letter ``reason`` and as a metric label.
    detail : str
        A precise human-readable explanation: which field, which value, why.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class OrderError(ValidationError):
    """A supervision order (or an orders file) is invalid."""


class ZoneError(ValidationError):
    """A zone (or a zones file) is invalid."""
