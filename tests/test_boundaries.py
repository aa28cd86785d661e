"""Boundaries: the pure core and the protocol decoders do no network I/O.

geofence/ imports no Kafka, asyncpg, aiohttp or Prometheus, and the protocol
decoders are pure (bytes -> frames -> canonical messages); only the named
I/O edges of devices/ may use sockets, Kafka or metrics. This test reads the
import statements of those modules, so a violation fails here before it can
creep in.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "aiokafka", "kafka", "faust", "mode", "asyncpg", "psycopg", "psycopg2", "aiohttp",
    "prometheus_client", "aiomqtt", "paho", "socket", "asyncio", "subprocess", "requests",
    "urllib3", "http", "stream", "alerts", "devices", "simulators",
}
# Modules of devices/ that are I/O edges by design; every other devices/ module is pure.
DEVICE_EDGES = {"cli", "servers", "publisher", "gateway", "metrics", "checkin_endpoint"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def pure_modules() -> list[Path]:
    mods = sorted((REPO / "geofence").rglob("*.py"))
    mods += [p for p in sorted((REPO / "devices").rglob("*.py"))
             if p.stem not in DEVICE_EDGES and p.stem != "__init__"]
    return mods


@pytest.mark.parametrize("path", pure_modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_pure_module_imports_no_io(path: Path) -> None:
    allowed_self = {"devices"} if path.is_relative_to(REPO / "devices") else set()
    bad = (imported_roots(path) & FORBIDDEN) - allowed_self
    assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_every_named_edge_exists() -> None:
    """The edge list names real modules, so it cannot exempt a module added later by accident."""
    present = {p.stem for p in (REPO / "devices").glob("*.py")}
    assert present >= DEVICE_EDGES, sorted(DEVICE_EDGES - present)
