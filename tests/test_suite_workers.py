"""``make test``'s two workers: the suite in one, ``alongside`` tests in the other.

Timing bounds in the suite (a page within 2 s, a simulator's rate within
5 %) assume its tests run one at a time. ``make test`` runs
``pytest -n 2 --dist loadgroup`` and tests/conftest.py puts every test in
the group ``suite`` except those marked ``alongside``; this runs a small
suite the same way and checks where each test ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SUITE = '''
import os, pytest

def _log(name):
    with open(os.environ["WHERE"], "a") as fh:
        fh.write(f"{name} {os.environ['PYTEST_XDIST_WORKER']}\\n")

@pytest.mark.parametrize("k", range(6))
def test_in_suite(k):
    _log(f"suite-{k}")

@pytest.mark.alongside
def test_alongside():
    _log("alongside")
'''


def test_make_test_runs_the_suite_in_one_worker_and_alongside_tests_in_the_other(
    tmp_path: Path,
) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "tests" / "test_small.py").write_text(SUITE)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    alongside: beside the suite\n")
    where = tmp_path / "where.txt"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p",
         "no:cacheprovider", "tests"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "WHERE": str(where), "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stdout + run.stderr
    ran = dict(line.split() for line in where.read_text().splitlines())
    assert len(ran) == 7
    suite = {ran[f"suite-{k}"] for k in range(6)}
    assert len(suite) == 1, ran  # one worker, one test at a time
    assert ran["alongside"] not in suite, ran
