"""Fixtures of the stream tests: a broker per test, a worker, Kafka helpers.

Each test gets its own embedded broker (Tansu starts in milliseconds), so the
fixed topic names of the contract never mix data between tests.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from stream.broker import EmbeddedBroker

sys.path.insert(0, str(Path(__file__).parent))

from streamkit import *  # noqa: F403 - fixtures below use the helpers


@pytest.fixture
def broker() -> Iterator[str]:
    """A fresh embedded broker for one test."""
    b = EmbeddedBroker()
    b.start_sync()
    try:
        yield b.bootstrap
    finally:
        b.stop_sync()


@pytest.fixture
async def scenario_files(tmp_path: Path) -> AsyncIterator[tuple[Path, Path]]:
    import json

    import scenario

    z = tmp_path / "zones.geojson"
    o = tmp_path / "orders.json"
    z.write_text(json.dumps(scenario.zones_geojson()))
    o.write_text(json.dumps(scenario.orders_json()))
    yield z, o
