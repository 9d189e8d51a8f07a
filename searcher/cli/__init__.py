"""Command line: parse, call one library function, print. Results on stdout, the rest on stderr.

The commands live in searcher.cli.search (ingest, query, train, reindex, prune), searcher.cli.review
(compare, dups, undo, info), searcher.cli.serve (serve) and searcher.cli.admin (migrate);
searcher.cli.output formats results and
searcher.cli.progress draws progress. This module builds the app and is the error boundary: whatever
a command raises becomes one line on stderr and an exit code (1 error, 2 bad usage, 130 Ctrl-C);
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
import traceback

import typer

from searcher.cli import admin, review, search, serve
from searcher.cli.common import Interrupted, err, out
from searcher.errors import SearcherError, one_line
from searcher.text import printable

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Near-duplicate image search with a persistent index.",
    pretty_exceptions_enable=False,
    # Plain Click help: text in square brackets ([default: ...]) is shown as written, not eaten as markup.
    rich_markup_mode=None,
)

INTERRUPTED = "interrupted: work committed so far is kept"


def _print_version(value: bool) -> None:
    """--version: handled while the options are parsed, so no command is needed after it."""
    if value:
        from searcher import __version__

        out.print(__version__, markup=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
    debug: bool = typer.Option(False, "--debug", help="On an unexpected error, show the Python traceback."),
) -> None:
    """Near-duplicate image search with a persistent index."""


search.register(app)
review.register(app)
serve.register(app)
admin.register(app)


def _fail(message: str, code: int) -> None:
    err.print(printable(message), markup=False)
    sys.exit(code)


def main() -> None:
    """Entry point and error boundary (see the module docstring). Usage errors are typer's (exit 2);
    typer turns a KeyboardInterrupt inside a command into exit 130 without a word, said here."""
    debug = "--debug" in sys.argv[1:]
    try:
        app()
    except SystemExit as e:
        if e.code == 130:
            _fail(INTERRUPTED, 130)
        raise
    except (KeyboardInterrupt, Interrupted) as e:
        note = getattr(e, "note", "")
        _fail(f"{INTERRUPTED}{'; ' + note if note else ''}", 130)
    except SearcherError as e:
        _fail(f"error: {e}", 1)
    except BrokenPipeError:  # `searcher query ... | head`: the reader left; nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 (the boundary: anything left becomes one line)
        if debug:
            traceback.print_exc()
            sys.exit(1)
        _fail(f"error: {type(e).__name__}: {one_line(str(e))} (run with --debug for the traceback)", 1)
