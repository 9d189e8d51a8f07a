"""Command line: parse, call one library function, print. Results on stdout, the rest on stderr.

The commands live in searcher.cli.search (ingest, query, train, reindex, prune), searcher.cli.review
(compare, dups, undo, info) and searcher.cli.serve (serve); searcher.cli.output formats results,
searcher.cli.progress draws progress; this module builds the app and turns errors into exit codes.
"""

from __future__ import annotations

import sys

import typer

from searcher.cli import review, search, serve
from searcher.cli.common import err, out
from searcher.errors import SearcherError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Near-duplicate image search with a persistent index.",
    pretty_exceptions_enable=False,
    # Plain Click help: text in square brackets ([default: ...]) is shown as written, not eaten as markup.
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from searcher import __version__

        out.print(f"searcher {__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
) -> None:
    """Near-duplicate image search with a persistent index."""


search.register(app)
review.register(app)
serve.register(app)


def main() -> None:
    """Entry point: SearcherError becomes one line on stderr and exit code 1; usage errors exit 2."""
    try:
        app()
    except SearcherError as e:
        err.print(f"error: {e}", markup=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted: work committed so far is kept; rerun to resume", markup=False)
        sys.exit(130)
