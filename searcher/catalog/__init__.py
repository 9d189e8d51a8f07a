"""The storage seam: a `Catalog` handle on one catalog (its database, extractors and vector indexes).

A catalog is a folder: `catalog.db` (SQLite, the source of truth) and `index-<signature>.bin`
vector files beside it (a cache rebuilt from the database whenever it disagrees). This package is
the only code that imports sqlalchemy, alembic or hnswlib: `store` holds every SQL statement,
`vectors` the vector indexes, `schema` the tables, `engine` the connection and migrations.
ingest, query, dups, moves, info and compare take a Catalog and hold no SQL.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from searcher.catalog.location import CATALOG_ENV, DEFAULT_CATALOG_DIR, CatalogLocation, locate, parse

if TYPE_CHECKING:
    from searcher.catalog.store import Store
    from searcher.catalog.vectors import CatalogStamp, VectorIndex
    from searcher.features.base import Extractor

__all__ = ["Catalog", "CatalogLocation", "locate", "parse", "CATALOG_ENV", "DEFAULT_CATALOG_DIR"]

Warn = Callable[[str], None]


class Catalog:
    """An open catalog: `Catalog.open(location)`, used as a context manager (or closed with close()).

    Extractors and vector indexes are loaded lazily, once, and reloaded after this handle changes
    the catalog (ingest, reindex). The methods below are the public Python API; the CLI and the
    benchmarks are clients of them.
    """

    def __init__(self, location: CatalogLocation, store: Store, warn: Warn | None = None):
        self.location = location
        self.store = store
        # Without a callback, warnings (stale signatures, rebuilt indexes...) go to the "searcher" logger.
        self.warn: Warn = warn or logging.getLogger("searcher").warning
        self._extractors: dict[str, Extractor] | None = None
        self._indexes: dict[str, VectorIndex] | None = None

    @classmethod
    def open(
        cls,
        location: str | os.PathLike | CatalogLocation | None = None,
        *,
        create: bool = True,
        warn: Warn | None = None,
        vectors: str | None = None,
    ) -> Catalog:
        """Open (by default creating) the catalog at `location`: a folder path, a database URL
        (postgresql+psycopg://...), a CatalogLocation, or None for $SEARCHER_CATALOG, else ./.searcher.
        `vectors`: "hnsw" or "milvus:URI" (else $SEARCHER_VECTORS, else hnsw). `warn` receives one-line warnings."""
        from searcher.catalog.engine import open_engine
        from searcher.catalog.store import Store

        location = locate(location, vectors)
        return cls(location, Store(open_engine(location, create=create)), warn)

    def close(self) -> None:
        self.store.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Catalog({self.location.display!r})"

    # ---- what the library modules share ----

    @property
    def generation(self) -> int:
        return self.store.generation()

    @property
    def extractors(self) -> dict[str, Extractor]:
        """The extractors of the signatures stored in the catalog (warning once about stale rows)."""
        if self._extractors is None:
            from searcher.features import build_extractor

            stored = self.store.signature_counts()
            self._extractors = {}
            for name in dict.fromkeys(name for name, _, _ in stored):
                extractor = build_extractor(name)
                stale = sum(n for sig, version, n in stored if sig == name and version != extractor.version)
                if stale:
                    self.warn(
                        f"{stale} {name} signature(s) are from another extractor version; run `searcher ingest` to refresh them"
                    )
                self._extractors[name] = extractor
        return self._extractors

    @property
    def indexes(self) -> dict[str, VectorIndex]:
        """The vector index of every indexed signature in the catalog, loaded (or rebuilt) once."""
        if self._indexes is None:
            self._indexes = {name: self.load_index(extractor) for name, extractor in self.extractors.items() if extractor.indexed}
        return self._indexes

    def each_index(self, names: Iterable[str]) -> Iterator[tuple[str, VectorIndex]]:
        """The index of each of these signatures in turn, for a pass over the whole catalog: those
        already loaded as they are (a server keeps them warm), the others loaded for their turn
        only and not kept, so that the pass holds one at a time (dups at 100k images held all
        four graphs, 0.8 GB, to the end)."""
        for name in names:
            if self._indexes is not None and name in self._indexes:
                yield name, self._indexes[name]
            else:
                yield name, self.load_index(self.extractors[name])

    def stamp(self, extractor: Extractor) -> CatalogStamp:
        """The catalog state an index of this extractor must reflect to be used (see catalog.vectors)."""
        from searcher.catalog.vectors import CatalogStamp

        return CatalogStamp(*self.store.signature_stamp(extractor.name, extractor.version))

    def load_index(
        self, extractor: Extractor, stamp: CatalogStamp | None = None, warn: Warn | None = None, save: bool = True
    ) -> VectorIndex:
        """The saved index of one extractor if it matches the catalog (`stamp`, by default its state
        now), else one rebuilt from the catalog, saved when `save` and no writer is at work."""
        from searcher.catalog import milvus, vectors

        stamp = stamp or self.stamp(extractor)

        def batches():
            return self.store.iter_signatures(extractor.name, extractor.version)

        saver = (lambda index: self._save_if_current(index, extractor, stamp)) if save else None
        if self.milvus_uri:
            name = self.collection(extractor.name)
            return milvus.load_or_rebuild(self.milvus_uri, name, extractor, stamp, batches, warn or self.warn, saver)
        return vectors.load_or_rebuild(
            self.location.index_path(extractor.name), extractor, stamp, batches, warn or self.warn, saver
        )

    def _save_if_current(self, index: VectorIndex, extractor: Extractor, stamp: CatalogStamp) -> None:
        """Record a rebuilt index as current only while no writer holds the catalog and the catalog
        is still in the state the index was built from: never a stale index saved as current."""
        from searcher.catalog import lock
        from searcher.catalog.engine import writable
        from searcher.catalog.vectors import IndexUnusable

        if self.location.is_folder and not writable(self.location):
            return  # a read-only catalog is searched with indexes rebuilt in memory; nothing is written
        with lock.if_free(self.location.vector_dir) as free:
            if not free or self.stamp(extractor) != stamp:
                return  # a writer is at work, or was: it saves its own, up-to-date index
            try:
                index.save(stamp)
            except IndexUnusable:
                pass  # rows changed while it was built: used for this run only
            except OSError as e:
                self.warn(f"cannot save rebuilt {extractor.name} index: {e.strerror or e}")

    def save_index(self, index: VectorIndex, extractor: Extractor) -> None:
        """Record `index` as current; the caller holds the writer lock (ingest, reindex). A failure
        to write is a CatalogError: the catalog itself is intact, the index is rebuilt on next use."""
        from searcher.catalog.vectors import IndexUnusable
        from searcher.errors import CatalogError

        try:
            index.save(self.stamp(extractor))
        except IndexUnusable as e:
            self.warn(f"{extractor.name} index not saved: it {e}; it is rebuilt on next use")
        except OSError as e:
            raise CatalogError(
                f"cannot save the {extractor.name} index in {self.location.vector_dir}: {e.strerror or e} "
                "(the catalog is intact; the index is rebuilt on next use)"
            ) from None

    def writing(self, what: str, wait: bool = True):
        """Context manager holding the catalog's writer lock (one ingest, reindex, move or undo at a
        time); waits for another holder, saying so, unless wait=False (then CatalogBusy)."""
        from searcher.catalog import lock

        return lock.exclusive(self.location.vector_dir, what, wait=wait, on_wait=self.warn)

    def rebuild_index(self, extractor: Extractor) -> VectorIndex:
        """A fresh index of one extractor built from the catalog (not saved)."""
        from searcher.catalog import milvus, vectors

        batches = self.store.iter_signatures(extractor.name, extractor.version)
        if self.milvus_uri:
            return milvus.rebuild(self.milvus_uri, self.collection(extractor.name), extractor, batches)
        return vectors.rebuild(self.location.index_path(extractor.name), extractor, batches)

    @property
    def milvus_uri(self) -> str | None:
        """The Milvus server or Lite file of `--vectors milvus:URI`; None for hnswlib files."""
        from searcher.catalog.location import MILVUS_PREFIX

        vectors = self.location.vectors
        return vectors[len(MILVUS_PREFIX) :] if vectors.startswith(MILVUS_PREFIX) else None

    def collection(self, signature: str) -> str:
        """This catalog's Milvus collection of one signature (several catalogs may share a server)."""
        from searcher.catalog.milvus import collection_name

        return collection_name(self.store.catalog_id(), signature)

    @property
    def metrics(self) -> tuple[str, ...]:
        """The rankings a query can ask of this catalog: fused, then each signature it holds."""
        from searcher.query import available_metrics

        return available_metrics(self)

    def changed(self) -> None:
        """Forget the loaded extractors and indexes: the catalog changed under them."""
        self._extractors = None
        self._indexes = None

    def stored_signatures(self, ids: Iterable[int], name: str = "orb") -> dict[int, object]:
        """Stored signatures (decoded) of one extractor for these images; absent ones are left out."""
        extractor = self.extractors.get(name)
        if extractor is None:
            return {}
        blobs = self.store.signatures_by_ids(name, extractor.version, list(ids))
        return {image_id: extractor.from_blob(blob) for image_id, blob in blobs.items()}

    # ---- the public API ----

    def ingest(self, paths, options=None, reporter=None):
        """Bring the catalog in line with the image and video files under `paths` -> IngestSummary."""
        from searcher.ingest import run

        return run(self, paths, options, reporter)

    def query_result(
        self,
        path,
        top: int = 10,
        metric: str = "fused",
        hist_method: str = "bhattacharyya",
        verify: bool = True,
        verify_budget: int | None = None,
    ):
        """Nearest catalog images to one image file -> QueryResult (hits, or the error reading the file; timings).
        `verify=False` leaves out the ORB re-ranking (for benchmarks of the calibrated ranking alone);
        `verify_budget`: most ORB verifications (default searcher.query.VERIFY_BUDGET)."""
        from searcher.query import VERIFY_BUDGET, query

        budget = VERIFY_BUDGET if verify_budget is None else verify_budget
        return query(self, os.fspath(path), top=top, metric=metric, hist_method=hist_method, verify=verify, verify_budget=budget)

    def query(
        self, path, top: int = 10, metric: str = "fused", hist_method: str = "bhattacharyya", verify_budget: int | None = None
    ) -> list:
        """Nearest catalog images to one image file -> list of Hit (.path .score .scores), best first."""
        from searcher.errors import ImageError

        result = self.query_result(path, top=top, metric=metric, hist_method=hist_method, verify_budget=verify_budget)
        if result.error:
            raise ImageError(f"{result.query}: {result.error}")
        return result.hits

    def query_paths(
        self, paths, top: int = 10, metric: str = "fused", hist_method: str = "bhattacharyya", verify_budget: int | None = None
    ) -> list:
        """query_result of every image given (folders expand to the images inside them)."""
        from searcher.query import VERIFY_BUDGET, query_paths

        budget = VERIFY_BUDGET if verify_budget is None else verify_budget
        return query_paths(
            self, [os.fspath(p) for p in paths], top=top, metric=metric, hist_method=hist_method, verify_budget=budget
        )

    def duplicates(
        self,
        threshold: float | None = None,
        neighbours: int | None = None,
        workers: int = 0,
        reporter=None,
        verify_budget: int | None = None,
        review=None,
    ):
        """Near-duplicate groups of the whole catalog with the figures of the run -> DupsResult.
        `review`: keep rule, reference folders and scope (searcher.group_review.ReviewOptions)."""
        from searcher import dups
        from searcher.scoring import DEFAULT_THRESHOLD

        threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        neighbours = dups.DEFAULT_NEIGHBOURS if neighbours is None else neighbours
        budget = dups.DEFAULT_VERIFY_BUDGET if verify_budget is None else verify_budget
        return dups.find_duplicates(
            self,
            threshold=threshold,
            neighbours=neighbours,
            workers=workers,
            reporter=reporter,
            verify_budget=budget,
            review=review,
        )

    def find_duplicates(
        self, threshold: float | None = None, neighbours: int | None = None, workers: int = 0, reporter=None
    ) -> list:
        """Near-duplicate groups (.id .keep .members, each member .path .score), biggest first."""
        return self.duplicates(threshold, neighbours, workers, reporter).groups

    def compare(self, a, b, threshold: float | None = None):
        """Every measure of image A against B and the verdict, averaging the signatures this catalog holds."""
        from searcher.comparison import compare_images
        from searcher.scoring import DEFAULT_THRESHOLD

        threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        return compare_images(a, b, threshold=threshold, signatures=tuple(self.store.signature_names()), warn=self.warn)

    def info(self):
        """Where the catalog is, its schema, what it holds and what it weighs -> CatalogInfo."""
        from searcher.info import catalog_info

        return catalog_info(self)

    def reindex(self) -> dict[str, int]:
        """Rebuild and save every vector index from the catalog; returns vectors per index."""
        from searcher.reindex import rebuild_indexes

        return rebuild_indexes(self)

    def plan_moves(self, groups, destination):
        """Where move_duplicates would put each member but the kept copy (DEST/<group id>/<name>)."""
        from searcher.moves import plan_moves

        return plan_moves(groups, destination)

    def move_duplicates(self, groups, destination, log_path=None, moves=None):
        """Move all but the kept copy of each group under `destination`, logged, rows re-pointed -> MoveOutcome."""
        from searcher.moves import default_log_path, move_duplicates, plan_moves

        moves = plan_moves(groups, destination) if moves is None else moves
        log_path = default_log_path(destination) if log_path is None else log_path
        return move_duplicates(groups, moves, log_path, self, warn=self.warn, destination=destination)

    def prune(self):
        """Remove the rows of every catalog file gone from disk -> PruneResult (searcher.prune)."""
        from searcher.prune import prune

        return prune(self)

    def undo(self, log_path):
        """Move every file of a move log back and re-point this catalog's rows -> UndoOutcome."""
        from searcher.moves import undo_moves

        return undo_moves(log_path, self, warn=self.warn)

    def repoint(self, old: str, new: str) -> None:
        """The row of file `old` now describes `new` (a file this catalog moved)."""
        if not self.store.repoint(old, new):
            self.warn(f"catalog already has a row for {new}; run searcher ingest to reconcile")
