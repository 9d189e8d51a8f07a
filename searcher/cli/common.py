"""What every command-line module shares: the two consoles, the --catalog option, warnings, progress bars."""

from __future__ import annotations

from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

err = Console(stderr=True, highlight=False, soft_wrap=True)  # progress, warnings, errors
out = Console(highlight=False, soft_wrap=True)  # results

CatalogOption = typer.Option(
    None,
    "--catalog",
    envvar="SEARCHER_CATALOG",
    help="Catalog folder, or database URL (postgresql+psycopg://USER@HOST/DB) [default: $SEARCHER_CATALOG, else ./.searcher]",
    show_default=False,
    # A string, not a Path: a database URL's "//" must survive (a Path would collapse it).
    metavar="<path>",
)
VectorsOption = typer.Option(
    None,
    "--vectors",
    envvar="SEARCHER_VECTORS",
    help="Vector backend: hnsw (files beside the catalog) or milvus:PATH_OR_URI (Milvus Lite file or http://HOST:19530) [default: hnsw]",
    show_default=False,
)


def catalog_at(catalog: str | None, vectors: str | None):
    """The CatalogLocation named by --catalog and --vectors (both checked here, before any work)."""
    from searcher.catalog import locate

    return locate(catalog, vectors)


def warn(message: str) -> None:
    err.print(f"warning: {message}", markup=False)


@contextmanager
def progress_bar():
    """A transient rich progress display on stderr."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        yield progress


class IngestProgress:
    """Ingest reporter drawing a rich progress bar on stderr."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.task = None

    def start(self, total: int) -> None:
        self.task = self.progress.add_task("extracting", total=total)

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)

    def warn(self, message: str) -> None:
        self.progress.console.print(f"warning: {message}", markup=False)

    def failed(self, path: str, reason: str) -> None:
        self.progress.console.print(f"failed: {path}: {reason}", markup=False)
