"""Every command answers bad input with one line on stderr and exit 2, never a traceback.

Each command gets a missing file, a truncated file, a misspelt flag and an
invalid setting. The truncated files are cut from valid ones, so the parser
error is the only thing wrong with them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ZONES = REPO / "config" / "demo-zones.geojson"
ORDERS = REPO / "config" / "demo-orders.json"


def _run(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WARDSTREAM_")}
    return subprocess.run([sys.executable, "-m", "stream.cli", *args], capture_output=True,
                          text=True, env={**base, **(env or {})}, cwd=REPO, timeout=120,
                          input=stdin)


def _one_line(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("bad")
    zones, orders = ZONES.read_text(), ORDERS.read_text()
    out = {
        "zones": str(ZONES), "orders": str(ORDERS), "missing": str(d / "nowhere.json"),
        "telemetry": str(d / "day.jsonl"),
    }
    (d / "day.jsonl").write_text("")
    for name, text in (("zones_cut", zones[: len(zones) // 2]),
                       ("orders_cut", orders[: len(orders) // 2])):
        (d / f"{name}.json").write_text(text)
        out[name] = str(d / f"{name}.json")
    truth = {"meta": {"day_start": "2026-11-22T00:00:00Z"}, "expected": [], "silent_persons": []}
    (d / "truth.json").write_text(json.dumps(truth))
    out["truth"] = str(d / "truth.json")
    (d / "alerts_cut.jsonl").write_text('{"alert_id": "a1", "person_id": "P-1", "rule_')
    out["alerts_cut"] = str(d / "alerts_cut.jsonl")
    return out


def test_version() -> None:
    r = _run("--version")
    assert r.returncode == 0 and r.stdout.startswith("wardstream ") and r.stderr == ""


# -- a misspelt flag is reported as unrecognised, never as a missing one, never abbreviated
@pytest.mark.parametrize("argv", [
    ["replay", "--zonez", "z", "--orders", "o", "--telemetry", "t"],
    ["replay", "--zone", "z", "--orders", "o", "--telemetry", "t"],
    ["worker", "--zonez", "z", "--orders", "o"],
    ["gateway", "--order", "o"],
    ["decode", "--protocl", "jt808", "7E7E"],
    ["api", "--prot", "1"],
    ["users", "add", "--user", "u", "--role", "operator", "--jurisdiction", "32"],
    ["simulate", "score", "--truht", "t", "--alerts", "a"],
    ["simulate", "generate", "--person", "3", "--out", "x"],
    ["bench", "--persns", "3"],
    ["demo", "--api-prt", "1"],
    ["broker", "--prt", "1"],
    ["settings", "--jsn"],
    ["orders", "from-template", "--templat", "fraud", "--person", "P-1"],
], ids=lambda a: " ".join(a[:2]))
def test_misspelt_flag(argv: list[str]) -> None:
    line = _one_line(_run(*argv))
    wrong = next(a for a in argv if a.startswith("--"))
    assert f"unrecognized arguments: {wrong}" in line
    assert "required" not in line


# -- an invalid setting stops every command before it does anything
@pytest.mark.parametrize("command", ["replay", "worker", "gateway", "decode", "api", "users",
                                     "simulate", "bench", "demo", "broker", "settings",
                                     "orders"])
def test_invalid_setting(command: str) -> None:
    line = _one_line(_run(command, env={"WARDSTREAM_API_PORT": "abc"}))
    assert line == f"wardstream {command}: WARDSTREAM_API_PORT='abc' is not a valid int"


# -- missing and truncated files: the line names the file
def _cases(f: dict[str, str]) -> list[tuple[list[str], str]]:
    z, o, t, miss = f["zones"], f["orders"], f["telemetry"], f["missing"]
    return [
        (["replay", "--zones", miss, "--orders", o, "--telemetry", t], miss),
        (["replay", "--zones", f["zones_cut"], "--orders", o, "--telemetry", t], f["zones_cut"]),
        (["replay", "--zones", z, "--orders", miss, "--telemetry", t], miss),
        (["replay", "--zones", z, "--orders", f["orders_cut"], "--telemetry", t], f["orders_cut"]),
        (["replay", "--zones", z, "--orders", o, "--telemetry", miss], miss),
        (["worker", "--zones", miss, "--orders", o, "--kafka", "127.0.0.1:1"], miss),
        (["worker", "--zones", f["zones_cut"], "--orders", o, "--kafka", "127.0.0.1:1"], f["zones_cut"]),
        (["worker", "--zones", z, "--orders", f["orders_cut"], "--kafka", "127.0.0.1:1"], f["orders_cut"]),
        (["gateway", "--orders", miss, "--kafka", "127.0.0.1:1"], miss),
        (["gateway", "--orders", f["orders_cut"], "--kafka", "127.0.0.1:1"], f["orders_cut"]),
        (["simulate", "score", "--truth", miss, "--alerts", t], miss),
        (["simulate", "score", "--truth", f["truth"], "--alerts", miss], miss),
        (["simulate", "score", "--truth", f["truth"], "--alerts", f["alerts_cut"]], f["alerts_cut"]),
        (["simulate", "score", "--truth", f["orders_cut"], "--alerts", t], f["orders_cut"]),
    ]


def test_bad_files_name_the_file(files: dict[str, str]) -> None:
    failures = []
    for argv, named in _cases(files):
        r = _run(*argv)
        try:
            line = _one_line(r)
            assert named in line, line
        except AssertionError as exc:
            failures.append(f"{' '.join(argv)}\n    {exc}")
    assert not failures, "\n".join(failures)


def test_truncated_json_orders_get_a_json_error(files: dict[str, str]) -> None:
    r = _run("replay", "--zones", files["zones"], "--orders", files["orders_cut"],
             "--telemetry", files["telemetry"])
    line = _one_line(r)
    assert "JSON" in line and "YAML" not in line, line
    assert "line" in line and "column" in line, line


def test_truncated_frame_is_one_line() -> None:
    # decode's contract: an invalid frame is exit 1 with its reason
    line = _one_line(_run("decode", "--protocol", "jt808", "7E0200"), code=1)
    assert line.startswith("invalid frame: ")


def test_truncated_yaml_orders_are_one_line_with_the_place(tmp_path: Path) -> None:
    orders = tmp_path / "orders.yaml"
    orders.write_text("- person_id: P-1\n  rules: [\n")
    line = _one_line(_run("replay", "--zones", str(ZONES), "--orders", str(orders),
                          "--telemetry", os.devnull))
    assert str(orders) in line and "YAML" in line and "line 3, column 1" in line, line


@pytest.mark.parametrize("argv", [["--help"], *[[c, "--help"] for c in (
    "demo", "broker", "replay", "worker", "decode", "gateway", "api", "users", "simulate",
    "bench", "settings", "orders")], ["simulate", "score", "--help"], ["users", "add", "--help"],
    ["orders", "from-template", "--help"], ["orders", "templates", "--help"]],
    ids=lambda a: " ".join(a))
def test_help_is_plain_text_about_the_product(argv: list[str]) -> None:
    r = _run(*argv)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "``" not in r.stdout
    for word in ("issue", "not built yet", "ARCHITECTURE"):
        assert word not in r.stdout, word


def test_misspelling_gets_a_suggestion() -> None:
    line = _one_line(_run("replay", "--zonez", "z", "--orders", "o", "--telemetry", "t"))
    assert line == ("wardstream replay: error: unrecognized arguments: --zonez "
                    "(did you mean --zones?) (see wardstream replay --help)")
    line = _one_line(_run("simulate", "score", "--truht", "t", "--alerts", "a"))
    assert line.startswith("wardstream simulate score: error: unrecognized arguments: --truht")
    assert "did you mean --truth?" in line
    line = _one_line(_run("repaly"))
    assert "unknown command 'repaly'" in line and "did you mean 'replay'?" in line


def test_parser_keeps_argparse_forms() -> None:
    from stream.cli import Parser

    p = Parser(prog="t")
    p.add_argument("-n", type=int, default=0)
    p.add_argument("-q", action="store_true")
    p.add_argument("--lat", type=float)
    p.add_argument("--name")
    args = p.parse_args(["-n3", "-q", "--lat", "-33.5", "--name=--odd"])
    assert (args.n, args.q, args.lat, args.name) == (3, True, -33.5, "--odd")
    with pytest.raises(SystemExit) as stop:
        p.parse_args(["--nam", "x"])
    assert stop.value.code == 2
