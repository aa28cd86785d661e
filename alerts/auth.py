"""Operators, password hashes, expiring tokens and login rate limiting.

Passwords are hashed with Argon2id (argon2-cffi). A login returns a random
token; only its SHA-256 is stored, with an expiry, so a stolen database copy
holds no usable token. Failed logins are limited per remote address and per
username (sliding window), and every login attempt is audited.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import deque
from collections.abc import Callable

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from alerts.db import utc
from alerts.errors import AuthError, BadRequestError, RateLimitedError
from alerts.store import ROLES, Principal, check_code

_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("wardstream-timing-equaliser")
MIN_PASSWORD = 10


def hash_password(password: str) -> str:
    """An Argon2id hash of ``password``."""
    return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash`` (never raises for a mismatch)."""
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def token_hash(token: str) -> bytes:
    """The SHA-256 digest kept in ``sessions`` for a token."""
    return hashlib.sha256(token.encode()).digest()


def new_password() -> str:
    """A random password suitable for a demo operator."""
    return secrets.token_urlsafe(12)


async def add_operator(
    conn: asyncpg.Connection, username: str, password: str, role: str, jurisdiction: str,
    *, replace: bool = False,
) -> int:
    """Create (or with ``replace`` reset) an operator; returns its id."""
    if role not in ROLES:
        raise BadRequestError(f"role must be one of {', '.join(ROLES)}")
    check_code(jurisdiction)
    if not username or len(username) > 64 or not username.isprintable():
        raise BadRequestError("username must be 1..64 printable characters")
    if len(password) < MIN_PASSWORD:
        raise BadRequestError(f"password must be at least {MIN_PASSWORD} characters")
    conflict = (
        "ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash,"
        " role = EXCLUDED.role, jurisdiction = EXCLUDED.jurisdiction, disabled = false"
        if replace else ""
    )
    try:
        value = await conn.fetchval(
            "INSERT INTO operators (username, password_hash, role, jurisdiction)"
            f" VALUES ($1, $2, $3, $4) {conflict} RETURNING id",
            username, hash_password(password), role, jurisdiction,
        )
    except asyncpg.UniqueViolationError:
        raise BadRequestError(f"operator {username!r} exists") from None
    return int(value)


async def login(
    conn: asyncpg.Connection, username: str, password: str, now_ms: int, ttl_s: int,
    remote: str | None,
) -> tuple[str, Principal, int]:
    """Check a password and open a session: ``(token, principal, expires_ms)``."""
    row = await conn.fetchrow(
        "SELECT id, username, password_hash, role, jurisdiction FROM operators"
        " WHERE username = $1 AND NOT disabled", username,
    )
    if row is None:
        verify_password(_DUMMY_HASH, password)  # same cost whether or not the user exists
        raise AuthError("wrong username or password")
    if not verify_password(row["password_hash"], password):
        raise AuthError("wrong username or password")
    token = secrets.token_urlsafe(32)
    expires_ms = now_ms + ttl_s * 1000
    await conn.execute(
        "INSERT INTO sessions (token_hash, operator_id, created_at, expires_at, remote)"
        " VALUES ($1, $2, $3, $4, $5)",
        token_hash(token), row["id"], utc(now_ms), utc(expires_ms), remote,
    )
    await conn.execute("DELETE FROM sessions WHERE expires_at < $1", utc(now_ms))
    who = Principal(row["id"], row["username"], row["role"], row["jurisdiction"])
    return token, who, expires_ms


async def authenticate(conn: asyncpg.Connection, token: str, now_ms: int) -> Principal:
    """The operator a bearer token belongs to; AuthError if unknown or expired."""
    if not token or len(token) > 200:
        raise AuthError("missing or malformed token")
    row = await conn.fetchrow(
        "SELECT o.id, o.username, o.role, o.jurisdiction FROM sessions s"
        " JOIN operators o ON o.id = s.operator_id"
        " WHERE s.token_hash = $1 AND s.expires_at > $2 AND NOT o.disabled",
        token_hash(token), utc(now_ms),
    )
    if row is None:
        raise AuthError("unknown or expired token")
    return Principal(row["id"], row["username"], row["role"], row["jurisdiction"])


async def logout(conn: asyncpg.Connection, token: str) -> None:
    """End a session."""
    await conn.execute("DELETE FROM sessions WHERE token_hash = $1", token_hash(token))


class LoginLimiter:
    """Sliding-window limit on failed logins per remote address and per username.

    Parameters
    ----------
    max_failures : int
        Failures allowed inside ``window_s`` before further attempts get 429.
    window_s : float
        Length of the window in seconds.
    clock : callable
        Monotonic seconds (injectable for tests).
    """

    def __init__(self, max_failures: int = 5, window_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        cutoff = self._clock() - self.window_s
        while q and q[0] < cutoff:
            q.popleft()
        return q

    def check(self, remote: str, username: str) -> None:
        """Raise RateLimitedError when either key has too many recent failures."""
        for key in (f"ip:{remote}", f"user:{username}"):
            q = self._recent(key)
            if len(q) >= self.max_failures:
                raise RateLimitedError(max(1, int(q[0] + self.window_s - self._clock()) + 1))

    def failed(self, remote: str, username: str) -> None:
        """Count one failure for both keys."""
        now = self._clock()
        for key in (f"ip:{remote}", f"user:{username}"):
            self._recent(key).append(now)
        if len(self._failures) > 100_000:  # bound memory under a spray of usernames
            for key in [k for k, q in self._failures.items() if not q]:
                del self._failures[key]

    def succeeded(self, remote: str, username: str) -> None:
        """Forget the username's failures after a good login (not the address's)."""
        self._failures.pop(f"user:{username}", None)
