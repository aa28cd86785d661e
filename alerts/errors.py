"""Errors of the command-centre side (store, workflow, API, auth)."""

from __future__ import annotations

from geofence.errors import WardstreamError


class AlertsError(WardstreamError):
    """Root of the errors raised by :mod:`alerts`."""


class MigrationError(AlertsError):
    """A schema migration file is malformed or failed to apply."""


class AuthError(AlertsError):
    """Missing, wrong or expired credentials (HTTP 401)."""


class ForbiddenError(AlertsError):
    """The caller's role or jurisdiction does not allow this (HTTP 403)."""


class NotFoundError(AlertsError):
    """No such alert, person, order or zone (HTTP 404)."""


class WorkflowError(AlertsError):
    """A workflow step that the alert's state does not allow (HTTP 409/422).

    ``reason`` is a short code (``note_required``, ``already_resolved``, ...).
    """

    def __init__(self, reason: str, detail: str, status: int = 409) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.status = status


class RateLimitedError(AlertsError):
    """Too many failed logins from one address or for one user (HTTP 429)."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed logins; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class BadRequestError(AlertsError):
    """A request parameter or body is malformed (HTTP 400).

    ``reason`` is the short code of the response's ``error`` field
    (``bad_request``, or ``too_large`` / ``too_deep`` for a body refused
    before it is parsed).
    """

    def __init__(self, detail: str, reason: str = "bad_request") -> None:
        super().__init__(detail)
        self.reason = reason
