"""README's first screen works as written, and its production snippet is valid sh.

Every ``wardstream`` command on the first screen (before "What it does") is
run as written, with ``.venv/bin/wardstream`` standing for this interpreter's
``-m stream.cli``. The production snippet is checked with ``dash -n`` and
then run by dash against stand-ins for docker, openssl and stty, which
record what they were given: the administrator's password must reach
``wardstream users add`` on stdin and appear in no command line.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def _blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def _first_screen() -> str:
    return README.split("## What it does", 1)[0]


def _section(title: str) -> str:
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_readme_starts_with_exactly_make_demo_and_make_test() -> None:
    first = _blocks(README)[0]
    commands = [line.split("#", 1)[0].strip() for line in first.splitlines()]
    assert commands == ["make demo", "make test"]
    assert README.index("```sh") < README.index("\n## ")


def _wardstream_lines() -> list[list[str]]:
    lines = []
    for block in _blocks(_first_screen())[1:]:
        for line in block.splitlines():
            if line.startswith(".venv/bin/wardstream "):
                lines.append(shlex.split(line)[1:])
    return lines


def test_first_screen_has_the_commands_a_newcomer_needs() -> None:
    firsts = [argv[0] for argv in _wardstream_lines()]
    assert {"--version", "--help", "decode"} <= set(firsts)


@pytest.mark.parametrize("argv", _wardstream_lines(), ids=lambda a: " ".join(a)[:40])
def test_first_screen_command_runs(argv: list[str]) -> None:
    r = subprocess.run([sys.executable, "-m", "stream.cli", *argv], capture_output=True,
                       text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    if argv[0] == "decode":
        messages = [json.loads(line) for line in r.stdout.splitlines()]
        assert [m["kind"] for m in messages] == ["fix", "device_event"]
        assert messages[1]["event"] == "tamper"  # what the README says the frame carries
        assert "tamper" in _first_screen()
    elif argv[0] == "--version":
        assert r.stdout.startswith("wardstream ")


def _production_snippet() -> str:
    blocks = _blocks(_section("Production deployment"))
    assert len(blocks) == 1
    return blocks[0]


@pytest.mark.skipif(shutil.which("dash") is None, reason="dash is not installed")
def test_production_snippet_is_valid_for_dash() -> None:
    r = subprocess.run(["dash", "-n"], input=_production_snippet(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which("dash") is None, reason="dash is not installed")
def test_production_snippet_passes_the_password_on_stdin(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    fakes = {
        "docker": f'echo "docker $*" >> {log}\n[ "$2" = run ] && cat > {tmp_path}/stdin\nexit 0',
        "openssl": "echo 0123abcd",
        "stty": "exit 0",
    }
    for name, body in fakes.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    (tmp_path / "config").mkdir()
    for name in ("my-zones.geojson", "my-orders.json"):
        (tmp_path / name).write_text("[]")
    secret = "correct horse battery"
    r = subprocess.run(["dash", "-e", "-c", _production_snippet()], input=secret + "\n",
                       capture_output=True, text=True, cwd=tmp_path, timeout=30,
                       env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    calls = log.read_text()
    assert "docker compose up -d --build" in calls
    assert ("docker compose run --rm -T api wardstream users add --username chief "
            "--role admin --jurisdiction 32") in calls
    assert secret not in calls  # not on any command line
    assert (tmp_path / "stdin").read_text() == secret + "\n"
    assert (tmp_path / "config" / "orders.json").exists()


def test_performance_is_a_reference_not_a_log() -> None:
    perf = _section("Performance")
    assert not re.search(r"\b[0-9a-f]{7,40}\b", perf), "commit hashes belong in the history"
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", perf), "dated runs belong in the history"
    rows = [line for line in perf.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) > 5
    for row in rows[1:]:
        command = row.split("|")[2]
        assert "`" in command or "same command" in command, row
    assert (REPO / "docs" / "performance-history.md").exists()
