"""Child processes that do not outlive the process that started them (Linux).

The embedded broker and the demo's parts run in their own sessions, so
that a Ctrl-C in a terminal reaches the parent, which stops them in order.
A parent killed outright (SIGKILL, an out-of-memory kill, a CI timeout)
never gets to do that; without more, its broker would keep running,
holding memory and a port. :func:`die_with_parent` asks the kernel to
signal the child when the parent goes (``PR_SET_PDEATHSIG``).

Linux delivers that signal when the *thread* that forked the child exits,
so children that must outlive a short-lived worker thread are to be
started from a long-lived one (the main or event-loop thread).
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` (the interpreter's own symbols: no library search), or None."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not Linux / no libc prctl: nothing to arrange
        return None


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child receive ``sig`` when this process dies.

    Returns ``None`` where the platform has no ``prctl`` (the child then
    simply outlives a killed parent, as before).
    """
    prctl = _prctl()  # looked up here, before the fork: the child only calls it
    if prctl is None:
        return None
    parent = os.getpid()

    def arrange() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig))
        if os.getppid() != parent:  # the parent died before the request took effect
            os.kill(os.getpid(), sig)

    return arrange
