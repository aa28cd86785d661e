"""`wardstream orders`: listing templates and printing an order filled in from one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from geofence.model import TemplateRef, parse_order

REPO = Path(__file__).resolve().parents[2]
DV = ["orders", "from-template", "--template", "domestic_violence", "--person", "P-1",
      "--device", "WB-1", "--device", "PH-1", "--jurisdiction", "320102"]


def _run(*args: str, env: dict[str, str] | None = None,
         cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WARDSTREAM_")}
    base["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "stream.cli", *args], capture_output=True,
                          text=True, env={**base, **(env or {})}, cwd=cwd, timeout=120)


def _error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_templates_lists_the_shipped_file_with_parameters() -> None:
    r = _run("orders", "templates")
    assert r.returncode == 0, r.stderr
    assert "domestic_violence v1: 故意伤害" in r.stdout
    assert "victims (required)" in r.stdout and "workplace (optional)" in r.stdout
    listed = json.loads(_run("orders", "templates", "--json").stdout)
    assert {t["name"] for t in listed} == {"domestic_violence", "drug_offence", "theft",
                                           "sexual_offence_minors", "fraud"}
    dv = next(t for t in listed if t["name"] == "domestic_violence")
    assert dv["rules"][0] == {"id": "victim", "type": "no_contact", "person": "{victim}",
                              "distance_m": 500.0, "severity": "red", "for_each": "victims"}


def test_from_template_prints_an_order_that_names_its_template(tmp_path: Path) -> None:
    # from another directory: the shipped file is found in the installation
    r = _run(*DV, "--residence", "home-P-1", "--victim", "P-2:Z-victim-00002", "--victim", "P-3",
             "--valid-from", "2026-12-01T00:00:00+08:00", "--valid-until", "1798732800000",
             cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    doc = json.loads(r.stdout)
    assert doc["valid_from"] == "2026-12-01T00:00:00+08:00"
    assert doc["valid_until"] == 1_798_732_800_000
    assert doc["devices"] == ["WB-1", "PH-1"]
    order = parse_order(doc)
    assert order.template == TemplateRef("domestic_violence", 1)
    assert [(x.id, x.person or x.zone) for x in order.rules] == [
        ("victim-1", "P-2"), ("victim-2", "P-3"), ("victim-home-1", "Z-victim-00002"),
        ("curfew", "home-P-1"), ("county", "320102"), ("signal", None)]


def test_templates_file_from_the_setting_and_the_option(tmp_path: Path) -> None:
    own = tmp_path / "mine.json"
    own.write_text(json.dumps({"templates": [{
        "name": "quiet", "version": 4, "offence": "test",
        "rules": [{"id": "s", "type": "signal_loss", "after_s": 120}]}]}))
    for args, env in ((["--templates", str(own)], None),
                      ([], {"WARDSTREAM_ORDER_TEMPLATES": str(own)})):
        r = _run("orders", "from-template", *args, "--template", "quiet", "--person", "P-1",
                 "--device", "WB-1", "--jurisdiction", "320102", env=env)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["template"] == {"name": "quiet", "version": 4}


@pytest.mark.parametrize(("args", "words"), [
    (["--residence", "h"], "missing_parameter: template 'domestic_violence' needs at least one"
                           " victim"),
    (["--victim", "P-2"], "rule 'curfew' needs the residence zone"),
    (["--residence", "h", "--victim", "P-2", "--workplace", "w"],
     "unused_parameter: template 'domestic_violence' version 1 has no rule using workplace"),
    (["--residence", "h", "--victim", "P-2:"], "--victim 'P-2:': use PERSON or PERSON:HOMEZONE"),
    (["--residence", "h", "--victim", "P-2", "--version", "9"],
     "unknown_template: template 'domestic_violence' has no version 9; it has 1"),
    (["--residence", "h", "--victim", "P-2", "--valid-from", "yesterday"], "valid_from"),
    (["--residence", "h", "--victim", "P-2", "--version", "x"], "invalid int value: 'x'"),
])
def test_from_template_refusals_are_one_line(args: list[str], words: str) -> None:
    line = _error(_run(*DV, *args))
    assert line.startswith("wardstream orders") and words in line, line


def test_unknown_template_and_bad_files_are_one_line(tmp_path: Path) -> None:
    line = _error(_run("orders", "from-template", "--template", "arson", "--person", "P-1",
                       "--device", "D", "--jurisdiction", "320102"))
    assert "no template 'arson'; there are: domestic_violence, drug_offence" in line
    missing = tmp_path / "nowhere.yaml"
    line = _error(_run("orders", "templates", "--templates", str(missing)))
    assert line == f"wardstream orders: cannot use '{missing}': No such file or directory"
    bad = tmp_path / "bad.yaml"
    bad.write_text("templates:\n  - {name: t, version: 1, offence: x,"
                   " rules: [{id: a, type: exclusion, zone: '{home}'}]}\n")
    line = _error(_run("orders", "templates", "--templates", str(bad)))
    assert str(bad) in line and "unknown parameter {home}" in line, line
