"""What every command-line module shares: the two consoles, the --catalog and --weights options, warnings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

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


WeightsOption = typer.Option(
    None,
    "--weights",
    help="Autoencoder weights for the ae signature, e.g. from `searcher train` [default: $SEARCHER_AE_WEIGHTS, else the shipped weights]",
    dir_okay=False,
    show_default=False,
    metavar="FILE",
)


def use_weights(weights: Optional[Path]) -> None:
    """--weights FILE: every ae extractor of this process and its workers loads FILE (via the environment)."""
    if weights is None:
        return
    if not weights.is_file():
        from searcher.errors import UsageError

        raise UsageError(f"no such weights file: {weights}")
    from searcher.features.ae_weights import WEIGHTS_ENV

    os.environ[WEIGHTS_ENV] = str(weights.resolve())
