"""Settings catalogue, secret masking, README's table, and the CLI dispatcher."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stream import cli
from stream.errors import ConfigError
from stream.settings import CATALOGUE, Settings, markdown_table, mask

REPO = Path(__file__).resolve().parents[2]


def test_every_catalogue_key_is_a_field_with_the_same_default() -> None:
    defaults = Settings()
    for key in CATALOGUE:
        assert key.env == "WARDSTREAM_" + key.name.upper()
        assert getattr(defaults, key.name) == key.default, key.name
        assert isinstance(key.default, key.type)


def test_from_env_converts_and_rejects() -> None:
    s = Settings.from_env({"WARDSTREAM_TOPIC_PARTITIONS": "48", "WARDSTREAM_KAFKA": "k:9092",
                           "UNRELATED": "x"})
    assert s.topic_partitions == 48 and s.kafka == "k:9092" and s.lateness_s == 120
    with pytest.raises(ConfigError, match="WARDSTREAM_LATENESS_S='soon'"):
        Settings.from_env({"WARDSTREAM_LATENESS_S": "soon"})


def test_secrets_never_print() -> None:
    s = Settings.from_env({"WARDSTREAM_DATABASE_URL": "postgresql://ward:s3cr3t-pw@db:5432/w",
                           "WARDSTREAM_MQTT_URL": "mqtt://dev:hunter22@mq:1883"})
    assert s.database_url.endswith("@db:5432/w")
    for text in (repr(s), str(s)):
        assert "s3cr3t-pw" not in text and "hunter22" not in text
        assert "ward:***@db" in text
    assert mask("") == "" and mask("plain-token") == "***"


def test_readme_configuration_table_matches_the_catalogue() -> None:
    assert markdown_table() in (REPO / "README.md").read_text()


def test_missing_module_says_so_and_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(cli.COMMANDS, "teleport", ("stream.no_such_module", "main", "x"))
    assert cli.main(["teleport"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("wardstream teleport: needs the Python package 'stream.no_such_module'")


def test_unknown_command_and_help() -> None:
    out = subprocess.run([sys.executable, "-m", "stream.cli", "frobnicate"], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown command 'frobnicate'" in out.stderr
    assert len(out.stderr.splitlines()) == 1
    out = subprocess.run([sys.executable, "-m", "stream.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in ("demo", "replay", "decode", "api", "worker", "gateway", "simulate", "bench", "broker", "users"):
        assert f"  {name} " in out.stdout


def test_settings_table_json_and_help() -> None:
    env = {"PATH": "/usr/bin:/bin", "WARDSTREAM_DATABASE_URL": "postgresql://ward:s3cr3t@db/w",
           "WARDSTREAM_API_PORT": "9000"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "stream.cli", "settings", *args],
                              capture_output=True, text=True, env=env, cwd=REPO)

    table = run()
    assert table.returncode == 0, table.stderr
    rows = {line.split()[0]: line.split()[1:] for line in table.stdout.splitlines()[1:]}
    assert rows["WARDSTREAM_API_PORT"] == ["9000", "environment"]
    assert rows["WARDSTREAM_LATENESS_S"] == ["120", "default"]
    assert rows["WARDSTREAM_DATABASE_URL"] == ["postgresql://ward:***@db/w", "environment"]
    assert set(rows) == {k.env for k in CATALOGUE}
    as_json = json.loads(run("--json").stdout)
    assert as_json["WARDSTREAM_API_PORT"] == 9000
    assert "s3cr3t" not in json.dumps(as_json)
    helped = run("--help")
    assert helped.returncode == 0 and "--json" in helped.stdout


def test_log_level_is_checked_and_normalised() -> None:
    assert Settings.from_env({"WARDSTREAM_LOG_LEVEL": "debug"}).log_level == "DEBUG"
    with pytest.raises(ConfigError, match="WARDSTREAM_LOG_LEVEL='loud' is not one of DEBUG"):
        Settings.from_env({"WARDSTREAM_LOG_LEVEL": "loud"})
