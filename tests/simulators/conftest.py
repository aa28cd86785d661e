"""Small generated caseloads shared by the simulator tests (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.caseload import Caseload, SimConfig, generate, write


@pytest.fixture(scope="session")
def small_config() -> SimConfig:
    # 300 persons: every scenario kind gets several persons, and a day still
    # generates in about a second.
    return SimConfig(persons=300, seed=42)


@pytest.fixture(scope="session")
def small_caseload(small_config: SimConfig) -> Caseload:
    return generate(small_config)


@pytest.fixture(scope="session")
def small_dir(small_caseload: Caseload, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim300")
    write(small_caseload, str(out))
    return out
