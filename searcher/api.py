"""Module-level conveniences of the public API, for work that needs no open catalog."""

from __future__ import annotations

import os

from searcher.scoring import DEFAULT_THRESHOLD


def compare(a: str | os.PathLike, b: str | os.PathLike, catalog=None, threshold: float = DEFAULT_THRESHOLD, warn=None):
    """Every measure of image A against B and the near-duplicate verdict -> Comparison.

    With a catalog (a location or an open Catalog; None: $SEARCHER_CATALOG, else ./.searcher) that
    exists, the fused score averages the signatures it holds, as `searcher dups` on it does."""
    from searcher.catalog import Catalog, locate
    from searcher.comparison import compare_images

    if isinstance(catalog, Catalog):
        return catalog.compare(a, b, threshold=threshold)
    location = locate(catalog)
    if not location.exists:
        return compare_images(a, b, threshold=threshold, warn=warn)
    with Catalog.open(location, create=False, warn=warn) as opened:
        return opened.compare(a, b, threshold=threshold)


def undo(log_path: str | os.PathLike, catalog=None, warn=None):
    """Move every file of a `searcher dups --move-to` log back and re-point the catalog rows -> UndoOutcome.
    The catalog is `catalog` (a location), else the one each log line names."""
    from searcher.catalog import Catalog
    from searcher.moves import undo_moves

    if catalog is None:
        return undo_moves(log_path, None, warn=warn)
    with Catalog.open(catalog, create=False, warn=warn) as opened:
        return undo_moves(log_path, opened, warn=warn)


def ingest(paths, catalog=None, options=None, reporter=None):
    """Check the paths, then open (creating) the catalog and ingest them -> IngestSummary.
    A path that does not exist is refused before any catalog is made."""
    from searcher.catalog import Catalog, locate
    from searcher.ingest_plan import check_roots, check_save_frames

    if not locate(catalog).exists:  # a root gone since an earlier ingest is pruned, with a warning, by the ingest
        check_roots([os.fspath(p) for p in paths])  # warnings come from the ingest itself
    if options is not None:
        check_save_frames(options.sampling.save_frames)
    with Catalog.open(catalog, warn=getattr(reporter, "warn", None)) as opened:
        return opened.ingest(paths, options, reporter)


def query_paths(
    paths,
    catalog=None,
    top: int = 10,
    metric: str = "fused",
    hist_method: str = "bhattacharyya",
    warn=None,
    verify_budget: int | None = None,
):
    """Query every image given (folders expand to their images) against an existing catalog -> [QueryResult]."""
    from searcher import images
    from searcher.catalog import Catalog
    from searcher.errors import UsageError

    paths = [os.fspath(p) for p in paths]
    files = images.expand_image_args(paths)
    for p in paths:
        if not os.path.exists(p):
            raise UsageError(f"no such file or folder: {p}")
    if not files:
        raise UsageError("no image files among the query paths")
    with Catalog.open(catalog, create=False, warn=warn) as opened:
        return opened.query_paths(paths, top=top, metric=metric, hist_method=hist_method, verify_budget=verify_budget)


def prune(catalog=None, warn=None):
    """Remove the rows of every file of an existing catalog that is gone from disk -> PruneResult."""
    from searcher.catalog import Catalog

    with Catalog.open(catalog, create=False, warn=warn) as opened:
        return opened.prune()


def info(catalog=None):
    """Facts about an existing catalog -> CatalogInfo."""
    from searcher.catalog import Catalog

    with Catalog.open(catalog, create=False) as opened:
        return opened.info()


def reindex(catalog=None) -> dict[str, int]:
    """Rebuild every vector index of an existing catalog; returns vectors per index."""
    from searcher.catalog import Catalog

    with Catalog.open(catalog, create=False) as opened:
        return opened.reindex()


def duplicates(
    catalog=None,
    threshold: float = DEFAULT_THRESHOLD,
    neighbours: int | None = None,
    workers: int = 0,
    reporter=None,
    verify_budget: int | None = None,
    review=None,
):
    """Near-duplicate groups of an existing catalog with the figures of the run -> DupsResult.
    `review`: keep rule, reference folders and scope (searcher.group_review.ReviewOptions)."""
    from searcher.catalog import Catalog

    with Catalog.open(catalog, create=False, warn=getattr(reporter, "warn", None)) as opened:
        return opened.duplicates(
            threshold=threshold,
            neighbours=neighbours,
            workers=workers,
            reporter=reporter,
            verify_budget=verify_budget,
            review=review,
        )


def move_duplicates(groups, moves, log_path, catalog=None, warn=None):
    """Carry out planned moves (searcher.moves.plan_moves) with their log; the catalog's rows are re-pointed -> MoveOutcome."""
    from searcher.catalog import Catalog
    from searcher.moves import move_duplicates as move

    if catalog is None:
        return move(groups, moves, log_path, None, warn=warn)
    with Catalog.open(catalog, create=False, warn=warn) as opened:
        return move(groups, moves, log_path, opened, warn=warn)


def migrate(source, destination, progress=None) -> dict[str, int]:
    """Copy the catalog at `source` into an empty catalog at `destination` (a folder or a database URL),
    ids included -> rows copied per table. Vector indexes are rebuilt there on first use."""
    from searcher.catalog.transfer import migrate as copy

    return copy(source, destination, progress)
