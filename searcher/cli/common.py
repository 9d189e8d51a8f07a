"""What every command-line module shares: the two consoles, the --catalog option, warnings, progress bars."""

from __future__ import annotations

from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from searcher.text import printable


class _Console(Console):
    """A rich Console for text that holds file names: no markup is interpreted (`[red]x.jpg` is a
    name), and control characters and undecodable bytes are shown escaped (searcher.text)."""

    def print(self, *objects, **kwargs) -> None:
        kwargs.setdefault("markup", False)
        super().print(*(printable(o) if isinstance(o, str) else o for o in objects), **kwargs)


err = _Console(stderr=True, highlight=False, soft_wrap=True, markup=False)  # progress, warnings, errors
out = _Console(highlight=False, soft_wrap=True, markup=False)  # results


class Interrupted(Exception):
    """Ctrl-C, carried to the error boundary with what the user needs to know (e.g. the move log)."""

    def __init__(self, note: str = ""):
        super().__init__(note)
        self.note = note


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
    """A transient rich progress display on stderr, drawn only on a terminal (in a log or a pipe it
    would leave a blank line behind, the only trace of a bar nobody saw)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
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
