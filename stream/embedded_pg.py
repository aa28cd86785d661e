"""A throwaway PostgreSQL cluster from the machine's own binaries.

Used where no database is configured and none answers on the default address:
by the test fixtures and by ``wardstream demo``. It lives in a temporary
directory, listens on 127.0.0.1 on a free port, trusts local connections and
is deleted when stopped. Development and tests only.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import tempfile

from stream.broker import free_port
from stream.errors import StreamError

HOW_TO_GET = (
    "PostgreSQL is needed: set WARDSTREAM_DATABASE_URL (tests: WARDSTREAM_TEST_DATABASE_URL), "
    "run PostgreSQL on 127.0.0.1:5432, or install it (apt-get install postgresql)"
)


class DatabaseUnavailable(StreamError):
    """No PostgreSQL could be reached or started."""


def can_connect(dsn: str, timeout: float = 3.0) -> bool:
    """Whether a PostgreSQL server answers at ``dsn``."""
    import asyncpg

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(dsn, timeout=timeout)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


def pg_binary(name: str) -> str | None:
    """Path of a PostgreSQL server binary (PATH, then Debian's versioned folders)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


class EmbeddedPostgres:
    """Start with :meth:`start`, connect with :attr:`dsn`, remove with :meth:`stop`."""

    def __init__(self) -> None:
        self.root = ""
        self.port = 0
        self._run_as: list[str] = []
        self._pg_ctl = ""

    @property
    def dsn(self) -> str:
        """DSN of the cluster's ``postgres`` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> EmbeddedPostgres:
        """initdb in a temporary directory and start the server; raise if impossible."""
        initdb, pg_ctl = pg_binary("initdb"), pg_binary("pg_ctl")
        if not initdb or not pg_ctl:
            raise DatabaseUnavailable(HOW_TO_GET)
        self._pg_ctl = pg_ctl
        self.root = tempfile.mkdtemp(prefix="wardstream-pg-")
        data, self.port = os.path.join(self.root, "data"), free_port()
        if os.geteuid() == 0:  # initdb refuses to run as root
            shutil.chown(self.root, "postgres")
            self._run_as = ["runuser", "-u", "postgres", "--"]
        try:
            subprocess.run([*self._run_as, initdb, "-D", data, "-U", "postgres", "-A", "trust"],
                           check=True, capture_output=True)
            subprocess.run([*self._run_as, pg_ctl, "-D", data, "-o",
                            f"-p {self.port} -k {self.root} -h 127.0.0.1",
                            "-l", os.path.join(self.root, "log"), "-w", "start"],
                           check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            self.stop()
            raise DatabaseUnavailable(f"could not start a throwaway PostgreSQL: {exc}") from None
        return self

    def stop(self) -> None:
        """Stop the server and delete its directory."""
        if self.root and self._pg_ctl:
            subprocess.run([*self._run_as, self._pg_ctl, "-D", os.path.join(self.root, "data"),
                            "-m", "immediate", "stop"], capture_output=True)
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = ""
