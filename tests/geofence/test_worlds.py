"""The fast paths against the reference path over random worlds.

Each seed draws a whole world (zones, orders, configuration, a stream of up
to a day and its cut into batches; see ``worlds.py``) and the engine with
``EngineConfig(paths="fast")`` must publish exactly the records of the
engine with ``paths="reference"``, batch by batch. ``make test`` runs a
hundred worlds; a larger run:

    WARDSTREAM_WORLDS=2000 python -m pytest -q tests/geofence/test_worlds.py

(``WARDSTREAM_WORLDS_FROM`` shifts the first seed, to split a run.) A
failure names its seed; ``python tests/geofence/test_worlds.py SEED``
prints the world and the difference.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytest
from worlds import make_world, run_world

N_WORLDS = int(os.environ.get("WARDSTREAM_WORLDS", "100"))
FIRST = int(os.environ.get("WARDSTREAM_WORLDS_FROM", "0"))


@pytest.mark.parametrize("seed", range(FIRST, FIRST + N_WORLDS))
def test_fast_and_reference_paths_agree_on_a_random_world(seed: int) -> None:
    w = make_world(seed)
    diff = run_world(w)
    assert diff is None, f"{w.describe()}\n{diff}"


def test_the_worlds_exercise_the_fast_path() -> None:
    """Not vacuous: the fast path does apply fixes in bulk in these worlds."""
    from geofence.engine import Engine, EngineConfig

    applied = 0
    for seed in range(FIRST, FIRST + 10):
        w = make_world(seed)
        eng = Engine(w.zones, w.orders, EngineConfig(**w.config))
        applied += sum(eng.process(b).bulk for b in w.batches)
    assert applied > 0


def test_the_worlds_have_silent_phones_that_miss_check_ins() -> None:
    """Not vacuous either: some persons under a checkin rule send nothing at
    all, and their missed check-ins are raised (by the timers alone)."""
    from geofence.engine import Engine, EngineConfig

    missed = 0
    for seed in range(FIRST, FIRST + 40):
        w = make_world(seed)
        # nothing reaches their lane: no message of their devices, no video
        # hit naming them, no no_contact rule of theirs (others' fixes probe it)
        sending = {getattr(m, "device_id", None) for m in w.messages}
        named = {getattr(m, "person_id", None) for m in w.messages}
        silent = {o["person_id"] for o in w.orders_json
                  if any(r["type"] == "checkin" for r in o["rules"])
                  and not any(r["type"] == "no_contact" for r in o["rules"])
                  and not set(o["devices"]) & sending and o["person_id"] not in named}
        if not silent:
            continue
        eng = Engine(w.zones, w.orders, EngineConfig(**w.config))
        recs = [r for b in w.batches for r in eng.process(b).records] + eng.flush()
        missed += sum(r.event == "opened" and r.alert.kind == "checkin_missed"
                      and r.alert.person_id in silent for r in recs)
    assert missed > 0


if __name__ == "__main__":  # pragma: no cover - a debugging aid
    w = make_world(int(sys.argv[1]))
    print(w.describe())
    print(run_world(w) or "no difference")
