"""Helper processes die with the process that started them (issue #14, D24).

A worker pool is a fork server (started by the main process) and workers forked from it; the
resource tracker follows once every one of them is gone. After a kill -9 of the main process
nothing tells them to stop: the workers wait on a queue whose write end they hold themselves.
Linux's parent-death signal (prctl PR_SET_PDEATHSIG) ends each child when its parent goes:
the fork server when the main process dies, the workers when the fork server does.

The fork server imports searcher.forkserver_lifeline (in every pool's preload list), which arms
it there; `arm_worker` is called first thing in each worker, which also leaves Ctrl-C to the main process
(the terminal sends SIGINT to the whole process group; a worker's KeyboardInterrupt traceback
would only garble the main process's own message).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send `sig` to this process when its parent exits (Linux; a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def arm_worker() -> None:
    """In a pool worker: die with the fork server, and leave Ctrl-C to the main process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
