"""schemathesis against /api/openapi.json with a valid token: no 5xx anywhere.

The API runs as a real ``wardstream api`` subprocess (sinks off) on a fresh
schema; the operator is created with ``wardstream users add`` (password on
stdin), so both commands are exercised too. Examples per operation are
bounded so the whole run stays well under a minute.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("WARDSTREAM_FUZZ_EXAMPLES", "25"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def api_process(database_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    schema = "t_" + uuid.uuid4().hex[:12]
    env = {**os.environ, "WARDSTREAM_DATABASE_URL": database_url,
           "WARDSTREAM_DATABASE_SCHEMA": schema, "WARDSTREAM_KAFKA": "",
           "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO))}
    add = subprocess.run(
        [sys.executable, "-m", "stream.cli", "users", "add", "--username", "fuzzer",
         "--role", "admin", "--jurisdiction", "32"],
        input="a long enough password\n", text=True, capture_output=True, env=env, timeout=60)
    assert add.returncode == 0, add.stderr
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "stream.cli", "api", "--port", str(port),
                             "--demo-user"],  # as `wardstream demo` calls it: default name
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "api did not start"
            time.sleep(0.2)
        demo_password = _demo_password(proc)
        demo = requests.post(base + "/api/auth/login", timeout=5,
                             json={"username": "demo", "password": demo_password})
        assert demo.status_code == 200 and demo.json()["role"] == "supervisor"
        token = requests.post(base + "/api/auth/login", timeout=5,
                              json={"username": "fuzzer", "password": "a long enough password"}
                              ).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        order = {"person_id": "P-1", "devices": ["WB-1"], "jurisdiction": "320102",
                 "rules": [{"id": "r1", "type": "signal_loss", "after_s": 900}]}
        assert requests.put(base + "/api/orders/P-1", json=order, headers=headers,
                            timeout=5).status_code == 201
        yield base, headers
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        import asyncio

        import asyncpg

        async def drop() -> None:
            conn = await asyncpg.connect(database_url)
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.close()

        asyncio.run(drop())
    assert proc.returncode == 0, "api did not stop cleanly on SIGTERM"


def _demo_password(proc: subprocess.Popen[str]) -> str:
    import select

    assert proc.stdout is not None
    fd = proc.stdout.fileno()  # raw reads: a buffered readline could hide a second line
    seen = b""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            seen += os.read(fd, 65536)
            for line in seen.decode(errors="replace").splitlines():
                if "demo operator" in line and seen.endswith(b"\n"):
                    return line.rsplit(" ", 1)[1].strip()
    raise AssertionError(f"`wardstream api --demo-user` printed no password: {seen!r}")


def test_schemathesis_finds_no_server_error(api_process: tuple[str, dict[str, str]]) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.generation import GenerationMode

    base, headers = api_process
    doc = requests.get(base + "/api/openapi.json", headers=headers, timeout=5)
    assert doc.status_code == 200
    assert requests.get(base + "/api/openapi.json", timeout=5).status_code == 401
    schema = schemathesis.openapi.from_dict(doc.json())
    session = requests.Session()
    failures: list[str] = []
    calls = 0
    answered: set[str] = set()  # paths with at least one answer below 500
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path in ("/api/live", "/api/auth/logout"):  # WebSocket; logout would end our token
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                nonlocal calls
                resp = case.call(base_url=base, session=session, headers=headers, timeout=10)
                calls += 1
                if resp.status_code < 500:
                    answered.add(case.operation.path)
                if resp.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} {case.query} -> "
                                    f"{resp.status_code} {resp.text[:200]}")

            try:
                run()
            except Unsatisfiable:
                # no parameter or body to make invalid (negative mode only)
                assert mode == GenerationMode.NEGATIVE, op.label
    assert calls > 100
    assert failures == []
    from alerts.notify.openapi import openapi_paths

    assert set(openapi_paths()) <= answered  # the notification and dispatch routes too
    assert {"/api/persons/{person_id}/track", "/api/persons/{person_id}/checkins"} <= answered
    from alerts.leaves import openapi_paths as leave_paths

    assert set(leave_paths()) <= answered  # leave requests, decisions and returns
    # the token still works: nothing in the fuzzing broke the session store
    assert requests.get(base + "/api/me", headers=headers, timeout=5).status_code == 200
