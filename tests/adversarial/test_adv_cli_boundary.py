"""The CLI's error boundary: any unexpected exception is one line (and exit 1) unless --debug asks
for the traceback; --version; usage errors exit 2 (D26 and the issue's "no traceback" rule)."""

from __future__ import annotations

import sys

import pytest

from helpers import cli


def _run_main(monkeypatch, capsys, *argv):
    from searcher.cli import main

    monkeypatch.setattr(sys, "argv", ["searcher", *argv])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr()


@pytest.fixture
def broken_info(monkeypatch):
    """Opening any catalog raises an exception no code expects."""
    import searcher.catalog

    def boom(*args, **kwargs):
        raise RuntimeError("the unexpected\nhappened")

    monkeypatch.setattr(searcher.catalog.Catalog, "open", boom)


def test_an_unexpected_exception_is_one_line(broken_info, monkeypatch, capsys, tmp_path):
    """Any exception left over: `error: <type>: <message> (run with --debug for the traceback)`, exit 1."""
    code, captured = _run_main(monkeypatch, capsys, "info", "--catalog", str(tmp_path))
    assert code == 1
    assert captured.err == "error: RuntimeError: the unexpected happened (run with --debug for the traceback)\n"


def test_debug_shows_the_traceback(broken_info, monkeypatch, capsys, tmp_path):
    code, captured = _run_main(monkeypatch, capsys, "--debug", "info", "--catalog", str(tmp_path))
    assert code == 1
    assert "Traceback" in captured.err and "RuntimeError: the unexpected" in captured.err


def test_version():
    """D26: `searcher --version` prints the version and exits 0."""
    from searcher import __version__

    result = cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == __version__


def test_a_usage_error_exits_2_in_one_line():
    result = cli("query")
    assert result.returncode == 2 and "Traceback" not in result.stderr
