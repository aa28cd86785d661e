"""In-memory stand-ins for the publisher and a TCP transport (connection-level tests)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from geofence.model import Telemetry


class RecordingPublisher:
    """Holds submissions until the test says Kafka accepted (or refused) them."""

    def __init__(self) -> None:
        self.submitted: list[tuple[str, list[Telemetry], Callable[[BaseException | None], None]]] = []
        self.dead: list[tuple[str, str | None]] = []
        self.full = False
        self.depth = 0

    def submit_cb(self, key: str, messages: Sequence[Telemetry],
                  done: Callable[[BaseException | None], None], received: float | None = None
                  ) -> None:
        self.submitted.append((key, list(messages), done))

    def add_waiter(self, resume: Callable[[], None]) -> None:
        pass

    def dead_letter(self, letter: Any, key: str | None = None) -> None:
        self.dead.append((letter.reason, key))

    def ack_all(self) -> None:
        for _, _, done in self.submitted:
            done(None)


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else None

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.close()

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass
