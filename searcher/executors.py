"""Where extraction runs: in this process, a local process pool (the default) or a Ray cluster.

Ingest hands an executor a `work` function, the chunks of tasks to feed it, and a `setup`
function with its arguments that every worker runs once before its first chunk; the executor
yields each chunk's results as they complete. Workers read files by path (on a cluster the
files must sit on storage every node mounts at the same path) and send back signatures only:
the single writer in ingest commits them, so an executor never touches the catalog.

`--executor local` (default) | `ray` (RAY_ADDRESS, else a local Ray started for this run) |
`ray://HOST:PORT` (a Ray client address).
"""

from __future__ import annotations

import os
import uuid
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator, Protocol

from searcher.errors import SearcherError, UsageError

WORKER_DIED = "an extraction worker died (out of memory?); everything committed so far is kept: rerun to resume"
IN_FLIGHT_PER_WORKER = 3  # enough queued chunks to keep every worker busy, few enough to bound memory


class Executor(Protocol):
    def map(self, work: Callable, chunks: Iterable, setup: Callable, setup_args: tuple) -> Iterator[Any]:
        """work(chunk) for every chunk, yielded as each completes, after setup(*setup_args) in each worker."""
        ...


def parse_executor(spec: str | None) -> str:
    """Validate an --executor value: 'local', 'ray' or 'ray://ADDRESS' (Ray installed), before any work."""
    spec = (spec or "local").strip()
    if spec == "local":
        return spec
    if spec == "ray" or (spec.startswith("ray://") and len(spec) > len("ray://")):
        _import_ray()
        return spec
    raise UsageError(f"unknown executor {spec!r}; use local, ray or ray://HOST:PORT")


def make_executor(spec: str | None, workers: int = 0) -> Executor:
    """The executor named by `spec`; `workers` is the local pool's size, or a local Ray's CPUs."""
    spec = parse_executor(spec)
    if spec == "local":
        workers = workers or os.cpu_count() or 1
        return InProcessExecutor() if workers == 1 else ProcessPoolExecutorAdapter(workers)
    return RayExecutor(None if spec == "ray" else spec, workers)


class InProcessExecutor:
    """No workers: the chunks run here, one after another (--workers 1, or a handful of files)."""

    def map(self, work, chunks, setup, setup_args):
        setup(*setup_args)
        for chunk in chunks:
            yield work(chunk)


class ProcessPoolExecutorAdapter:
    """A local pool of `workers` processes started by forkserver."""

    def __init__(self, workers: int):
        self.workers = workers

    def map(self, work, chunks, setup, setup_args):
        from searcher.workers import process_pool  # forkserver, safe from scripts, notebooks and stdin

        with process_pool(self.workers, [work.__module__], setup, setup_args) as pool:
            pending: set = set()
            try:
                for chunk in chunks:
                    pending.add(pool.submit(work, chunk))
                    if len(pending) >= IN_FLIGHT_PER_WORKER * self.workers:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for future in done:
                            yield future.result()
                for future in list(pending):
                    pending.discard(future)
                    yield future.result()
            except BrokenProcessPool:
                raise SearcherError(WORKER_DIED) from None
            finally:
                for future in pending:
                    future.cancel()


# ---- Ray ----

_ray_worker_run: str | None = None  # the run whose setup this Ray worker process has done


def _ray_call(run_id: str, setup: Callable, boxed_args: list, work: Callable, chunk):
    """Body of every Ray task: set up the worker once per ingest run, then do the chunk.

    The setup arguments (the known hashes can be megabytes) travel as one object in Ray's store,
    boxed in a list so that Ray does not fetch them for every task, only on a worker's first."""
    global _ray_worker_run
    if _ray_worker_run != run_id:
        import ray

        setup(*ray.get(boxed_args[0]))
        _ray_worker_run = run_id
    return work(chunk)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs the ray extra: pip install 'searcher[ray]'") from None
    return ray


class RayExecutor:
    """Chunks as Ray tasks of one CPU each; a local Ray is started (and stopped) when none is reachable."""

    def __init__(self, address: str | None, workers: int = 0):
        self.address = address
        self.workers = workers

    def _connect(self, ray) -> bool:
        """Join the cluster (or start a local one); True when this run started Ray and must stop it."""
        if ray.is_initialized():
            return False
        import logging

        options: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        address = self.address or os.environ.get("RAY_ADDRESS")
        if address is None:
            # "local": a private Ray for this run, never a cluster some earlier `ray start` left behind.
            address = "local"
            if self.workers:
                options["num_cpus"] = self.workers
        try:
            ray.init(address=address, **options)
        except Exception as e:  # ConnectionError, RuntimeError, TimeoutError depending on the address
            where = self.address or os.environ.get("RAY_ADDRESS") or "a local Ray"
            raise SearcherError(f"cannot start or reach the Ray cluster ({where}): {type(e).__name__}: {e}") from None
        return True

    def map(self, work, chunks, setup, setup_args):
        ray = _import_ray()
        started = self._connect(ray)
        try:
            yield from self._map(ray, work, chunks, setup, setup_args)
        finally:
            if started:
                ray.shutdown()

    def _map(self, ray, work, chunks, setup, setup_args):
        remote = ray.remote(num_cpus=1, max_retries=2)(_ray_call)
        run_id = uuid.uuid4().hex
        boxed = [ray.put(setup_args)]
        limit = IN_FLIGHT_PER_WORKER * max(1, int(ray.cluster_resources().get("CPU", 1)))
        pending: list = []
        try:
            for chunk in chunks:
                pending.append(remote.remote(run_id, setup, boxed, work, chunk))
                if len(pending) >= limit:
                    done, pending = ray.wait(pending, num_returns=1)
                    yield ray.get(done[0])
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                yield ray.get(done[0])
        except ray.exceptions.RayError as e:
            if isinstance(e, ray.exceptions.RayTaskError):
                raise e.as_instanceof_cause() from None  # a bug in the work itself, not the cluster
            raise SearcherError(f"{WORKER_DIED} ({type(e).__name__})") from None
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
