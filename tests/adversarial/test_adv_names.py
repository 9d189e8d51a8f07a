"""Hostile file names in human-readable output: rich markup (D12), non-UTF-8 bytes (D13) and
terminal escape sequences (D27) are printed as the characters of the name, never interpreted."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from helpers import PHOTOS, assert_no_traceback, cli, cli_ingest

pytestmark = pytest.mark.slow

ESC = "\x1b"


@pytest.fixture
def hostile(tmp_path):
    """A catalog of four copies of one photo under hostile names, and the photo folder."""
    folder = tmp_path / "ph"
    folder.mkdir()
    names = {
        "markup": "[red]x.jpg",
        "brackets": "a[1].jpg",
        "escape": f"esc{ESC}[31mred{ESC}]0;pwned\a.jpg",
    }
    paths = {key: folder / name for key, name in names.items()}
    for path in paths.values():
        shutil.copy(PHOTOS[0], path)
    raw = os.fsencode(folder) + b"/bad\xff.jpg"
    shutil.copy(PHOTOS[0], raw)
    paths["non_utf8"] = raw
    shutil.copy(PHOTOS[1], folder / "other.jpg")
    catalog = tmp_path / "catalog"
    cli_ingest(folder, catalog)
    return catalog, folder, paths


def test_markup_in_a_query_path_is_printed_as_is(hostile):
    """D12: `[red]x.jpg` was printed as `x.jpg` (rich markup), and unbalanced `[` broke the print."""
    catalog, _, paths = hostile
    result = cli("query", paths["markup"], "--catalog", catalog, "--top", "5")
    assert_no_traceback(result)
    assert result.returncode == 0
    assert "[red]x.jpg" in result.stdout.replace("\n", "").replace("│", "").replace(" ", "")


def test_markup_in_names_survives_dups_output(hostile):
    """D12: dups prints member paths through rich; `[1]` and `[red]` are kept."""
    catalog, _, _ = hostile
    result = cli("dups", "--catalog", catalog)
    assert_no_traceback(result)
    flat = result.stdout.replace("\n", "")
    assert "[red]x.jpg" in flat and "a[1].jpg" in flat


def test_escape_sequences_never_reach_the_terminal(hostile):
    """D27: ESC from a file name was written raw to the terminal by query, dups and ingest."""
    catalog, folder, paths = hostile
    for args in (("query", paths["escape"], "--top", "5"), ("dups",), ("info",)):
        result = cli(*args, "--catalog", catalog)
        assert_no_traceback(result)
        assert ESC not in result.stdout and ESC not in result.stderr, args
        assert "\a" not in result.stdout and "\a" not in result.stderr, args
    again = cli_ingest(folder, catalog)
    assert ESC not in again.stdout + again.stderr


def test_escape_sequences_stay_intact_in_json(hostile):
    """D27: machine formats keep the exact name (JSON escapes the control characters itself)."""
    catalog, _, paths = hostile
    result = cli("query", paths["escape"], "--catalog", catalog, "--top", "5", "--format", "jsonl")
    assert result.returncode == 0
    assert ESC not in result.stdout
    record = json.loads(result.stdout.splitlines()[0])
    assert record["query"] == str(paths["escape"])


def test_a_non_utf8_query_name_is_printed_and_written_to_html(hostile, tmp_path):
    """D13: a query image with a non-UTF-8 name raised UnicodeEncodeError and left a 0-byte html."""
    catalog, _, paths = hostile
    html = tmp_path / "report.html"
    result = cli("query", paths["non_utf8"], "--catalog", catalog, "--top", "3", "--html", html)
    assert_no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert "bad" in result.stdout
    assert html.stat().st_size > 0
    assert "bad" in html.read_text(encoding="utf-8")


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl", "csv"])
def test_a_non_utf8_query_name_in_every_format(hostile, fmt):
    """D13: every output format prints a non-UTF-8 name without a UnicodeEncodeError."""
    catalog, _, paths = hostile
    result = cli("query", paths["non_utf8"], "--catalog", catalog, "--top", "2", "--format", fmt)
    assert_no_traceback(result)
    assert result.returncode == 0, result.stderr
    if fmt in ("json", "jsonl"):
        json.loads(result.stdout if fmt == "json" else result.stdout.splitlines()[0])
