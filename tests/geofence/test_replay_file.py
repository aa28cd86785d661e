"""``replay_lines`` reading a binary file in blocks gives what line iteration gives.

The file path (``wardstream replay``) reads blocks and splits them into
lines itself; whatever the block size, the alerts and every count of the
summary (lines, rejects by reason) must equal those of iterating the same
file line by line, for clean files and for files with the things the fast
path must hand to the per-line loop.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import msgspec
from engine_world import SEC, T0, event, fix, orders, zones
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from geofence.engine import replay_lines
from geofence.model import encode

ZONES = zones()
ORDERS = orders()

GOOD = [encode(m) for m in (
    *(fix(T0 + k * 30 * SEC, x, dev=d) for k, (x, d) in enumerate(
        [(1000.0, "WB-A"), (0.0, "WB-A"), (0.0, "WB-A2"), (-1500.0, "WB-B"), (0.0, "WB-A"),
         (-1500.0, "WB-B"), (1000.0, "WB-A"), (1000.0, "WB-A2")] * 3)),
    event(T0 + 400 * SEC, "tamper", dev="WB-A"),
)]
ODD = [b"", b"   ", b"not json", b'{"kind": "fix"}', b"[" + b",".join(GOOD[:2]) + b"]",
       b'{"kind":"fix","device_id":"NOBODY","ts":1,"lat":0,"lon":0}', b"x" * 600]


def result(source: Any, **kw: Any) -> tuple[bytes, Any]:
    alerts, summary = replay_lines(source, ZONES, ORDERS, **kw)
    return b"".join(encode(a) + b"\n" for a in alerts), encode(summary)


# found by hypothesis: a missing-field line in its own block, then a blank
# line; the reasons were counted in another order (the summary now sorts them)
@example([1, len(GOOD) + 3, len(GOOD)], b"\n", True, 7)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(range(len(GOOD) + len(ODD))), max_size=60),
       st.sampled_from([b"\n", b"\r\n"]), st.booleans(), st.sampled_from([7, 64, 333, 1 << 18]))
def test_blocks_equal_line_iteration(picks: list[int], eol: bytes, final_eol: bool,
                                     size: int) -> None:
    pool = GOOD + ODD
    data = eol.join(pool[i] for i in picks) + (eol if final_eol and picks else b"")
    by_line = result(list(io.BytesIO(data)))
    assert result(io.BytesIO(data), read_size=size) == by_line


def test_a_clean_file_takes_the_fast_path_and_counts_every_line() -> None:
    data = b"\n".join(GOOD) + b"\n"
    alerts, summary = result(io.BytesIO(data), read_size=100)  # blocks smaller than a line
    assert (alerts, summary) == result(list(io.BytesIO(data)))
    assert b'"lines":%d' % len(GOOD) in summary
    assert b"exclusion_entered" in alerts


def test_a_file_without_line_ends_is_one_bad_line_read_in_linear_time() -> None:
    data = b"x" * (4 << 20)  # 4 MiB, no newline: 16,384 blocks of 256 bytes
    _, summary = result(io.BytesIO(data), read_size=256)
    got = msgspec.json.decode(summary)
    assert got["lines"] == 1 and sum(got["rejected"].values()) == 1
