"""A Mosquitto broker a test starts itself, on a free port, and can restart."""

from __future__ import annotations

import getpass
import socket
import subprocess
import time
from pathlib import Path

MOSQUITTO = "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """``mosquitto -c conf -p port`` in a temporary directory."""

    def __init__(self, workdir: Path, extra_conf: str = "allow_anonymous true\n") -> None:
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        # run as the test's own user, so it can read password and ACL files in the test's
        # private directory (a root-started mosquitto would otherwise switch to "mosquitto")
        self.conf.write_text(f"listener {self.port} 127.0.0.1\npersistence false\n"
                             f"user {getpass.getuser()}\n{extra_conf}")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited: {err}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not listen within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
