"""scripts/install-system-deps.sh: what it detects as missing and what it does about it.

The machine running the tests has every package, so "missing" is made by
pointing the script at an empty PostgreSQL tree and a PATH without Chromium;
``id`` and ``apt-get`` are stand-ins that record their calls, so nothing is
installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "install-system-deps.sh"


def _fake_path(tmp: Path, uid: int, chromium: bool) -> str:
    """A PATH with the few tools the script uses, a fixed ``id`` and a recording ``apt-get``."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for tool in ("ls", "sort", "tail", "sed", "cat"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$*" >> {tmp}/apt.log\n')
    if chromium:
        for name in ("chromium", "chromedriver"):
            (bin_dir / name).write_text("#!/bin/sh\n")
    for f in bin_dir.iterdir():
        if not f.is_symlink():
            f.chmod(0o755)
    return str(bin_dir)


def _run(tmp: Path, *args: str, uid: int = 0, chromium: bool = False, postgis: bool = False,
         postgres: bool = True) -> subprocess.CompletedProcess[str]:
    pg_root, pg_share = tmp / "lib", tmp / "share"
    pg_root.mkdir(exist_ok=True)
    if postgres:
        (pg_root / "15").mkdir(exist_ok=True)
    if postgis:
        ext = pg_share / "15" / "extension"
        ext.mkdir(parents=True, exist_ok=True)
        (ext / "postgis.control").write_text("")
    fonts = tmp / "fonts"
    if chromium:  # a browser that can show the console's Chinese
        (fonts / "truetype" / "wqy").mkdir(parents=True, exist_ok=True)
        (fonts / "truetype" / "wqy" / "wqy-microhei.ttc").write_text("")
    env = {"PATH": _fake_path(tmp, uid, chromium), "WARDSTREAM_PG_ROOT": str(pg_root),
           "WARDSTREAM_PG_SHARE": str(pg_share), "WARDSTREAM_FONT_DIR": str(fonts),
           "HOME": str(tmp)}
    return subprocess.run(["/bin/sh", str(SCRIPT), *args], env=env, capture_output=True,
                          text=True, timeout=30)


def _apt_calls(tmp: Path) -> list[str]:
    log = tmp / "apt.log"
    return log.read_text().splitlines() if log.exists() else []


def test_nothing_missing_installs_nothing(tmp_path: Path) -> None:
    r = _run(tmp_path, chromium=True, postgis=True)
    assert r.returncode == 0, r.stderr
    assert _apt_calls(tmp_path) == []


def test_missing_packages_are_installed_as_root(tmp_path: Path) -> None:
    r = _run(tmp_path, uid=0)
    assert r.returncode == 0, r.stderr
    calls = _apt_calls(tmp_path)
    assert calls[0] == "update -qq"
    assert calls[1].split()[-4:] == ["postgresql-15-postgis-3", "chromium", "chromium-driver",
                                     "fonts-wqy-microhei"]


def test_without_root_it_says_what_to_run_and_fails(tmp_path: Path) -> None:
    r = _run(tmp_path, uid=1000, chromium=True)
    assert r.returncode == 1
    assert _apt_calls(tmp_path) == []
    assert ("run as root: apt-get update && apt-get install -y --no-install-recommends "
            "postgresql-15-postgis-3") in r.stderr


def test_no_postgresql_at_all(tmp_path: Path) -> None:
    r = _run(tmp_path, "--dry-run", chromium=True, postgres=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1].endswith("postgresql postgresql-postgis")
    assert _apt_calls(tmp_path) == []


def test_demo_needs_only_the_database_server(tmp_path: Path) -> None:
    with_pg, without_pg = tmp_path / "with", tmp_path / "without"
    with_pg.mkdir()
    without_pg.mkdir()
    assert _run(with_pg, "--check", "--demo").returncode == 0  # PostGIS, Chromium missing: fine
    r = _run(without_pg, "--check", "--demo", postgres=False)
    assert r.returncode == 1
    assert "missing Debian packages: postgresql" in r.stderr


def test_check_reports_and_unknown_option_is_exit_2(tmp_path: Path) -> None:
    r = _run(tmp_path, "--check")
    assert r.returncode == 1
    assert "postgresql-15-postgis-3 chromium chromium-driver fonts-wqy-microhei" in r.stderr
    bad = subprocess.run(["/bin/sh", str(SCRIPT), "--chek"], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1


@pytest.mark.skipif(shutil.which("dash") is None, reason="dash is not installed")
def test_script_is_posix_sh() -> None:
    subprocess.run(["dash", "-n", str(SCRIPT)], check=True)
    assert os.access(SCRIPT, os.X_OK)
