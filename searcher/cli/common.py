"""What every command-line module shares: the two consoles, the --catalog and --weights options, warnings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

err = Console(stderr=True, highlight=False, soft_wrap=True)  # progress, warnings, errors
out = Console(highlight=False, soft_wrap=True)  # results

CatalogOption = typer.Option(
    None,
    "--catalog",
    envvar="SEARCHER_CATALOG",
    help="Catalog folder [default: $SEARCHER_CATALOG, else ./.searcher]",
    show_default=False,
    # A string, not a Path: a database URL's "//" must survive (a Path would collapse it).
    metavar="<path>",
)


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
