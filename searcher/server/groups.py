"""Duplicate groups for the server: computed in a background job, cached per threshold, and kept
up to date by the reviewer's decisions without computing them again.

Why a job: grouping a whole catalog takes seconds to minutes (10k images: minutes on 2 busy
cores), longer than an HTTP request should wait. A request for groups that are not ready gets a
`Computing` answer naming the job; the client polls the job and asks again. Decisions (not
duplicates, a member that is not a duplicate, a move) edit the cached groups in place, so a
review keeps its pace; an ingest, an undo or an explicit refresh drops the cache.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from searcher.errors import SearcherError
from searcher.server.jobs import Job, Jobs
from searcher.server.warm import WarmCatalog


class Computing(SearcherError):
    """The groups are being computed by `job`; ask again when it is done."""

    def __init__(self, job: Job):
        super().__init__(f"finding duplicate groups: follow job {job.id}, then ask again")
        self.job = job


class GroupCache:
    def __init__(self, catalog: WarmCatalog, jobs: Jobs):
        self._catalog = catalog
        self._jobs = jobs
        self._results: dict[float, object] = {}  # threshold -> DupsResult
        self._computing: dict[float, Job] = {}
        self._epoch = 0  # bumped by clear(): a computation that started before is thrown away
        self._lock = threading.Lock()

    def get(self, threshold: float, refresh: bool = False):
        """The DupsResult at this threshold, or Computing (a job started or still running)."""
        with self._lock:
            if refresh:
                self._results.pop(threshold, None)
            if threshold in self._results:
                return self._results[threshold]
            job = self._computing.get(threshold)
            if job is not None and job.state == "failed":
                del self._computing[threshold]
                raise SearcherError(f"finding duplicate groups failed: {job.error}")
            if job is None or job.state == "done":  # done but dropped since (a change): compute again
                job = self._jobs.start("dups", f"threshold {threshold:g}", self._work(threshold, self._epoch))
                self._computing[threshold] = job
        raise Computing(job)

    def _work(self, threshold: float, epoch: int):
        def work(reporter) -> dict:
            with self._catalog.use() as handle:
                result = handle.duplicates(threshold=threshold, reporter=reporter)
            with self._lock:
                if epoch == self._epoch:
                    self._results[threshold] = result
            return {"groups": len(result.groups), "images": result.images, "ignored": result.ignored_groups}

        return work

    def clear(self) -> None:
        """The catalog changed in a way the cache cannot follow (ingest, undo): compute again when asked."""
        with self._lock:
            self._epoch += 1
            self._results.clear()

    def drop_group(self, group_id: str, ignored: bool) -> None:
        """A group is decided (marked not duplicates, or moved): it leaves every cached result."""
        with self._lock:
            for result in self._results.values():
                kept = [g for g in result.groups if g.id != group_id]
                if len(kept) != len(result.groups):
                    result.ignored_groups += int(ignored)
                    result.groups = kept

    def drop_member(self, group_id: str, image_id: int) -> None:
        """A member is not a duplicate of the kept copy: it leaves the cached group (a group of one
        is no group). The next computation regroups exactly; this is what the reviewer said."""
        with self._lock:
            for result in self._results.values():
                groups = []
                for g in result.groups:
                    if g.id == group_id:
                        members = [m for m in g.members if m.image_id != image_id]
                        if len(members) < 2:
                            continue
                        g = replace(g, members=members)
                    groups.append(g)
                result.groups = groups
