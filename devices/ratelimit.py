"""Per-device token buckets (pure: the caller passes the time).

A bucket refills at ``rate`` messages a second up to ``burst``. A frame is
admitted while at least one token is left and takes as many tokens as it
carries messages (a batch may drive the bucket below zero: the device then
waits until it has paid that back), so a flooding device is held to about
``rate`` messages a second, whatever the size of its frames.
"""

from __future__ import annotations

ADMITTED = 0
FIRST_REFUSAL = 1
"""The first refusal of a burst: since the start, or since the bucket was last full again
(a device flooding without pause gets one such refusal, however long it floods)."""
REFUSED = 2


class TokenBucket:
    """One device's allowance."""

    __slots__ = ("burst", "last", "limited", "rate", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.last = now
        self.limited = False

    def admits(self, now: float) -> bool:
        """Whether :meth:`take` at ``now`` would admit a frame (nothing changes)."""
        return min(self.burst, self.tokens + (now - self.last) * self.rate) >= 1.0

    def take(self, n: int, now: float) -> int:
        """Admit ``n`` messages at ``now`` (seconds): ADMITTED, FIRST_REFUSAL or REFUSED."""
        tokens = self.tokens + (now - self.last) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self.last = now
        if tokens < 1.0:
            self.tokens = tokens
            if self.limited:
                return REFUSED
            self.limited = True
            return FIRST_REFUSAL
        if tokens >= self.burst:
            self.limited = False  # fully recovered: the next refusal starts a new burst
        self.tokens = tokens - n
        return ADMITTED
