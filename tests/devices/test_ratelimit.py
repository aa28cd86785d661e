"""Token buckets over plain sequences of (time, messages)."""

from __future__ import annotations

from devices.ratelimit import ADMITTED, FIRST_REFUSAL, REFUSED, TokenBucket


def run(bucket: TokenBucket, inputs: list[tuple[float, int]]) -> list[int]:
    return [bucket.take(n, t) for t, n in inputs]


def test_burst_then_refusals_with_one_first_refusal_per_burst():
    b = TokenBucket(rate=2.0, burst=5, now=0.0)
    got = run(b, [(0.0, 1)] * 7)
    assert got == [ADMITTED] * 5 + [FIRST_REFUSAL, REFUSED]
    # half a second later one token is back: admitted, but the flood goes on (one burst)
    assert run(b, [(0.5, 1), (0.5, 1), (0.5, 1)]) == [ADMITTED, REFUSED, REFUSED]
    # once the bucket is full again, the next refusal starts a new burst
    assert run(b, [(10.0, 1)] * 6) == [ADMITTED] * 5 + [FIRST_REFUSAL]


def test_a_flood_is_held_to_the_rate():
    b = TokenBucket(rate=10.0, burst=20, now=0.0)
    admitted = sum(1 for i in range(100_000) if b.take(1, i * 0.0002) == ADMITTED)  # 20 s, 5 kHz
    assert 20 + 10 * 20 - 2 <= admitted <= 20 + 10 * 20 + 1


def test_a_large_batch_passes_once_and_is_paid_back():
    b = TokenBucket(rate=10.0, burst=20, now=0.0)
    assert b.take(100, 0.0) == ADMITTED  # a backfill larger than the burst
    assert b.take(1, 5.0) == FIRST_REFUSAL  # 80 in debt, 50 refilled
    assert b.take(1, 8.2) == ADMITTED


def test_refill_never_exceeds_the_burst():
    b = TokenBucket(rate=100.0, burst=3, now=0.0)
    assert run(b, [(1000.0, 1)] * 4) == [ADMITTED] * 3 + [FIRST_REFUSAL]


def test_admits_says_what_take_would_do_and_changes_nothing() -> None:
    b = TokenBucket(rate=1.0, burst=2, now=0.0)
    assert b.admits(0.0) and b.take(3, 0.0) == ADMITTED  # 2 - 3: one token owed
    assert not b.admits(1.5) and (b.tokens, b.last) == (-1.0, 0.0)
    assert b.take(1, 1.5) == FIRST_REFUSAL  # as admits said (0.5 tokens)
    assert b.admits(2.0) and b.take(1, 2.0) == ADMITTED

