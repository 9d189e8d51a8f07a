"""Commands that look after a catalog's storage: migrate (copy a catalog to another database)."""

from __future__ import annotations

from typing import Optional

import typer

from searcher.cli.common import CatalogOption, VectorsOption, catalog_at, err, out
from searcher.cli.progress import ProgressReporter


def migrate(
    to: str = typer.Option(
        ..., "--to", help="Destination: a database URL (postgresql+psycopg://USER@HOST/DB) or a folder; must hold no images."
    ),
    catalog: Optional[str] = CatalogOption,
    vectors: Optional[str] = VectorsOption,
) -> None:
    """Copy the whole catalog (images, signatures, ids) into another database, e.g. SQLite -> PostgreSQL.

    The copy is one transaction: interrupted, it leaves the destination empty. Vector indexes are
    rebuilt from the new catalog on first use (or with `searcher reindex --catalog DEST`).
    """
    from searcher import api

    with ProgressReporter(unit="rows") as reporter:
        tables: list[str] = []

        def advance(table: str, rows: int) -> None:
            if not tables or tables[-1] != table:
                tables.append(table)
                reporter.start(0, f"copying {table}")
            reporter.advance(rows - reporter.done)

        counts = api.migrate(catalog_at(catalog, vectors), to, advance)
    err.print(f"copied into {to}", markup=False)
    out.print(", ".join(f"{table}: {n} rows" for table, n in counts.items()), markup=False)


def register(app: typer.Typer) -> None:
    app.command()(migrate)
