"""The `serve` command: the HTTP API and review page over one catalog (searcher.server)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from searcher.cli.common import CatalogOption, err


def serve(
    catalog: Optional[str] = CatalogOption,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; other than loopback needs --token."),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="TCP port."),
    token: Optional[str] = typer.Option(
        None,
        "--token",
        envvar="SEARCHER_TOKEN",
        help="Required on every request: Authorization: Bearer TOKEN, or open /?token=TOKEN once.",
        show_default=False,
    ),
    move_to: Optional[Path] = typer.Option(
        None,
        "--move-to",
        help="Where moved duplicates go (default: searcher-duplicates beside the catalog folder).",
        file_okay=False,
    ),
    max_upload_mb: float = typer.Option(50.0, "--max-upload-mb", min=0.1, help="Largest upload accepted."),
) -> None:
    """Answer HTTP: a JSON API (OpenAPI at /docs) and a web page to search and review duplicates."""
    from searcher.catalog import locate
    from searcher.server import serve as run_server

    run_server(
        locate(catalog),
        host,
        port,
        token or None,
        move_to=move_to,
        max_upload_mb=max_upload_mb,
        announce=lambda m: err.print(m, markup=False),
    )


def register(app: typer.Typer) -> None:
    app.command()(serve)
