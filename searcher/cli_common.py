"""What every command-line module shares: the two consoles, the --catalog option, warnings."""

from __future__ import annotations

import typer
from rich.console import Console

err = Console(stderr=True, highlight=False, soft_wrap=True)  # progress, warnings, errors
out = Console(highlight=False, soft_wrap=True)  # results

CatalogOption = typer.Option(
    None, "--catalog", envvar="SEARCHER_CATALOG", help="Catalog folder [default: $SEARCHER_CATALOG, else ./.searcher]", show_default=False
)


def warn(message: str) -> None:
    err.print(f"warning: {message}", markup=False)
