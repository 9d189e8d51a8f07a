"""Background jobs (ingest, finding duplicate groups): one at a time, run in a thread, with
progress a client can poll."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from searcher.errors import SearcherError

MAX_MESSAGES = 200  # per job: the failures and warnings kept for the client (the count is always exact)


@dataclass
class Job:
    id: str
    kind: str
    target: str
    state: str = "queued"  # queued, running, done, failed
    stage: str = ""  # what it is doing now, when it has several steps
    total: int = 0
    done: int = 0
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    summary: dict | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None

    def to_dict(self) -> dict:
        elapsed = ((self.finished or time.time()) - self.started) if self.started else 0.0
        return {
            "id": self.id,
            "kind": self.kind,
            "target": self.target,
            "state": self.state,
            "stage": self.stage,
            "total": self.total,
            "done": self.done,
            "progress": round(self.done / self.total, 4) if self.total else (1.0 if self.state == "done" else 0.0),
            "elapsed_s": round(elapsed, 3),
            "summary": self.summary,
            "error": self.error,
            "failures": self.failures,
            "warnings": self.warnings,
        }


class JobReporter:
    """searcher.ingest.Reporter that records progress on a Job (called from the job's thread)."""

    def __init__(self, job: Job):
        self.job = job

    def start(self, total: int, description: str = "") -> None:
        self.job.total, self.job.done, self.job.stage = total, 0, description

    def advance(self, n: int = 1) -> None:
        self.job.done += n

    def warn(self, message: str) -> None:
        if len(self.job.warnings) < MAX_MESSAGES:
            self.job.warnings.append(message)

    def failed(self, path: str, reason: str) -> None:
        if len(self.job.failures) < MAX_MESSAGES:
            self.job.failures.append(f"{path}: {reason}")


class Busy(SearcherError):
    """Another job is running."""


class Jobs:
    """The jobs of this server, newest last. Only one runs at a time: the catalog has one writer."""

    def __init__(self):
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def start(self, kind: str, target: str, work: Callable[[JobReporter], dict]) -> Job:
        """Run work(reporter) -> summary in a thread; Busy when a job is still running."""
        with self._lock:
            running = [j for j in self._jobs.values() if j.state in ("queued", "running")]
            if running:
                raise Busy(f"job {running[0].id} ({running[0].kind} {running[0].target}) is still running; wait for it to finish")
            job = Job(id=f"j{next(self._ids)}", kind=kind, target=target)
            self._jobs[job.id] = job
        threading.Thread(target=self._run, args=(job, work), name=f"searcher-{job.id}", daemon=True).start()
        return job

    def _run(self, job: Job, work: Callable[[JobReporter], dict]) -> None:
        job.state, job.started = "running", time.time()
        try:
            job.summary = work(JobReporter(job))
            job.state = "done"
        except SearcherError as e:
            job.error, job.state = str(e), "failed"
        except Exception as e:  # noqa: BLE001 - a job thread must always end in a state the client can read
            job.error, job.state = f"unexpected error: {type(e).__name__}: {e}".splitlines()[0], "failed"
        finally:
            job.finished = time.time()

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        return list(self._jobs.values())

    def wait(self, job_id: str, timeout: float = 60.0) -> Job | None:
        """For tests and scripts: poll until the job has finished (or the timeout passed)."""
        deadline = time.time() + timeout
        job = self.get(job_id)
        while job is not None and job.state in ("queued", "running") and time.time() < deadline:
            time.sleep(0.05)
        return job

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job runs (at most `timeout` seconds); True when none does."""
        deadline = time.time() + timeout
        while any(j.state in ("queued", "running") for j in self.all()):
            if time.time() >= deadline:
                return False
            time.sleep(0.05)
        return True
