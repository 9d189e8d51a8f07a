"""Process pools that work from any caller: a script, a notebook, `python -m`, or a script on stdin.

Workers start with forkserver, not fork: a child forked from a parent whose OpenCV/OpenMP thread
pools have run can deadlock on their locks; the fork server never runs them. A forkserver (or
spawn) child normally re-imports the parent's __main__ first, which fails when there is none to
import (`python -` reading stdin: "<stdin>") and re-runs an unguarded user script. Every task of
searcher's pools is a function of a searcher module, so the children are told there is no
__main__ to re-import.
"""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing.context import ForkServerContext, ForkServerProcess

from searcher.lifeline import arm_worker

_HIDDEN = object()


@contextmanager
def _without_main():
    """While a child is started, the parent's __main__ has neither a file nor a spec to re-import."""
    main = sys.modules.get("__main__")
    saved = {name: getattr(main, name, _HIDDEN) for name in ("__file__", "__spec__")} if main is not None else {}
    try:
        if main is not None:
            if saved["__file__"] is not _HIDDEN:
                del main.__file__
            main.__spec__ = None
        yield
    finally:
        for name, value in saved.items():
            if value is _HIDDEN:
                if hasattr(main, name):
                    delattr(main, name)
            else:
                setattr(main, name, value)


class _Process(ForkServerProcess):
    @staticmethod
    def _Popen(process_obj):
        with _without_main():
            return ForkServerProcess._Popen(process_obj)


class _Context(ForkServerContext):
    Process = _Process


def _start_worker(initializer, initargs) -> None:
    arm_worker()
    if initializer is not None:
        initializer(*initargs)


def process_pool(workers: int, preload: list[str], initializer=None, initargs=()) -> ProcessPoolExecutor:
    """A forkserver ProcessPoolExecutor whose children import `preload` once (in the fork server)
    and never the parent's __main__. The fork server and the workers die with the main process,
    and leave Ctrl-C to it (searcher.lifeline)."""
    context = _Context()
    # The fork server is shared by every forkserver context of this process.
    multiprocessing.get_context("forkserver").set_forkserver_preload(["searcher.forkserver_lifeline", *preload])
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_start_worker, initargs=(initializer, initargs)
    )
