"""The pure parts of the repartition step: who moves, copies after a crash,
event-time alignment of the partitions a worker re-keys from."""

from __future__ import annotations

import random

import pytest

from geofence.model import Fix, Order
from stream.keying import Router, partition_of
from stream.repartition import (
    MAX_HOPS,
    Aligner,
    Origin,
    SeenOrigins,
    envelopes,
    origin_of,
    project_keyed,
    rekeyed,
    split,
)

PARTS = 8


def _orders() -> list[Order]:
    return [Order(person_id=f"P{i}", devices=(f"d{i}",), jurisdiction="320102", rules=())
            for i in range(40)]


def _fix(dev: str, ts: int) -> Fix:
    return Fix(device_id=dev, ts=ts, lat=32.0, lon=118.8, accuracy_m=5.0)


def test_split_keeps_home_messages_moves_the_others_and_leaves_unknown_devices() -> None:
    router = Router.build(_orders(), PARTS)
    msgs = [_fix(f"d{i}", 1000 + i) for i in range(40)] + [_fix("stranger", 5)]
    sp = split(router, 3, msgs)
    assert [m.device_id for m in sp.local if m.device_id != "stranger"] == [
        m.device_id for m in msgs[:40] if router.partition_of_message(m) == 3]
    assert any(m.device_id == "stranger" for m in sp.local)  # dead-lettered by the engine
    for home, moving in sp.away.items():
        assert home != 3
        assert all(partition_of(router.key_of(m), PARTS) == home for m in moving)
    assert sum(len(v) for v in sp.away.values()) + len(sp.local) == len(msgs)


def test_a_record_without_the_project_key_is_re_keyed_even_at_home() -> None:
    router = Router.build(_orders(), PARTS)
    m = _fix("d1", 1000)
    home = router.partition_of_message(m)
    assert project_keyed(router.key_of(m).encode(), m, router)
    assert not project_keyed(b"d1", m, router)
    assert project_keyed(None, m, router)  # the producer chose the partition itself
    sp = split(router, home, [m], rekey={id(m)})
    assert sp.away == {home: [m]} and not sp.local
    looping = split(router, (home + 1) % PARTS, [m], hops={id(m): MAX_HOPS})
    assert looping.looping == [m] and not looping.away


def test_origin_header_round_trip_and_copies_after_a_crash_are_dropped() -> None:
    o = Origin(2, 41, 1)
    assert origin_of([("other", b"x"), ("wardstream-rerouted", o.header())]) == o
    assert origin_of([("wardstream-rerouted", b"garbage")]) is None
    assert origin_of(None) is None
    seen = SeenOrigins()
    assert seen.fresh(Origin(2, 10, 1)) and seen.fresh(Origin(2, 41, 1))
    assert seen.fresh(Origin(5, 3, 1))  # sources are independent
    assert not seen.fresh(Origin(2, 10, 1))  # re-produced after the source's crash
    assert seen.fresh(Origin(2, 41, 1))  # same last offset: may hold new messages


def test_envelopes_respect_count_and_byte_limits() -> None:
    msgs = [_fix(f"d{i}", i) for i in range(25)]
    envs = envelopes(msgs, max_batch=10, max_bytes=1 << 20)
    assert [e.count(b'"device_id"') for e in envs] == [10, 10, 5]
    small = envelopes(msgs, max_batch=100, max_bytes=400)
    assert all(len(e) <= 400 for e in small) and sum(e.count(b'"device_id"') for e in small) == 25


def _taken(seen: SeenOrigins, copies: list[tuple[bytes, Origin]]) -> list[int]:
    """The timestamps an owner takes from re-keyed copies, in order."""
    out: list[int] = []
    for env, origin in copies:
        parsed = origin_of([("wardstream-rerouted", origin.header())])
        assert parsed == origin
        stamps = [int(x.split(b",")[0]) for x in env.split(b'"ts":')[1:]]
        out += [t for t, new in zip(stamps, seen.take(origin, len(stamps)), strict=True)
                if new]
    return out


@pytest.mark.parametrize("limit", [100, 4, 2])
def test_a_copy_cut_differently_after_a_crash_gives_exactly_its_new_messages(
        limit: int) -> None:
    # source records 10..19, three messages each, all for one owner
    msgs = [_fix("d1", 1000 * off + i) for off in range(10, 20) for i in range(3)]
    sources = [off for off in range(10, 20) for _ in range(3)]
    seen = SeenOrigins()
    # before the crash: records 10..14 re-keyed in one batch, then 15..16
    first = _taken(seen, rekeyed(msgs[:15], sources[:15], 2, 14, 1, limit, 1 << 20))
    first += _taken(seen, rekeyed(msgs[15:21], sources[15:21], 2, 16, 1, limit, 1 << 20))
    # the source restarts from its snapshot at record 12 and re-keys 12..19 at once;
    # with a limit of 2 a record of three is split across envelopes
    again = _taken(seen, rekeyed(msgs[6:], sources[6:], 2, 19, 1, limit, 1 << 20))
    assert first + again == [m.ts for m in msgs]  # each message taken exactly once
    assert seen.high[2] == 19


@pytest.mark.parametrize("seed", range(30))
def test_copies_of_any_cut_give_each_message_once(seed: int) -> None:
    """Random source batches and limits, a crash and a re-keying from any
    earlier record: the owner takes every message exactly once, in order."""
    rng = random.Random(seed)
    sizes = [rng.randint(1, 5) for _ in range(rng.randint(5, 40))]
    sources = [off for off, n in enumerate(sizes) for _ in range(n)]
    msgs = [_fix("d1", 1000 * off + i) for i, off in enumerate(sources)]
    limit = rng.randint(1, 8)
    seen = SeenOrigins()
    taken: list[int] = []

    def batches(start: int, stop: int) -> None:
        rec = start
        while rec < stop:  # a batch of whole source records, as the worker reads them
            end = min(stop, rec + rng.randint(1, 6))
            idx = [i for i, off in enumerate(sources) if rec <= off < end]
            if idx:
                taken.extend(_taken(seen, rekeyed([msgs[i] for i in idx],
                                                  [sources[i] for i in idx], 2, end - 1, 1,
                                                  limit, 1 << 20)))
            rec = end

    crash_at = rng.randint(0, len(sizes))
    batches(0, crash_at)
    batches(rng.randint(0, crash_at), len(sizes))  # restored from an earlier snapshot
    assert taken == [m.ts for m in msgs]


def test_records_re_keyed_by_older_versions_keep_the_whole_record_rule() -> None:
    seen = SeenOrigins()
    assert seen.take(Origin(3, 10, 1), 2) == [True, True]
    assert seen.take(Origin(3, 4, 1), 5) == [False] * 5
    assert seen.take(Origin(3, 10, 1), 0) == []


def test_aligner_holds_a_partition_that_runs_ahead_and_releases_in_steps() -> None:
    al = Aligner(step_ms=60_000)
    al.touch(0.0)
    # partition 0 fetched an hour, partition 1 one minute
    fetched = {0: [(f"a{t}", t * 1000) for t in range(0, 3600, 10)],
               1: [(f"b{t}", t * 1000) for t in range(0, 60, 10)]}
    out = al.admit(fetched, {}, 1.0)
    assert out[1] == [f"b{t}" for t in range(0, 60, 10)]
    assert out[0] == [f"a{t}" for t in range(0, 60, 10)]  # nothing past partition 1's newest
    # partition 1 has more input not fetched yet: partition 0 waits for it
    assert al.admit({}, {1: 50_000}, 1.1) == {}
    out = al.admit({1: [("b60", 60_000), ("b200", 200_000)]}, {}, 1.2)
    assert out[1] == ["b60"] and out[0][-1] == "a110"  # one step past the last frontier
    # a partition read to its end holds nothing back; alignment ends after the linger
    out = al.admit({}, {}, 100.0)
    assert out[0][-1] == "a3590" and out[1] == ["b200"] and not al.pending()


def test_a_far_future_record_does_not_block_its_partition_for_ever() -> None:
    al = Aligner(step_ms=60_000)
    al.touch(0.0)
    year_2099 = 4_070_908_800_000
    assert al.admit({0: [("future", year_2099)], 1: [("now", 1000)]}, {}, 1.0) == {1: ["now"]}
    assert al.admit({}, {}, 1.1) == {0: ["future"]}
