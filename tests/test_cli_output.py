"""A CLI that reads well (issue 13, points 4-6 and 8): 80-column tables with one line per hit and
whole file names, higher-is-better scores everywhere, plain help, --version, exit codes, progress."""

import fcntl
import json
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios

import pytest
from typer.testing import CliRunner

from searcher.api import ingest, query_paths
from searcher.catalog import CatalogLocation
from searcher.cli import app
from searcher.cli.output import format_query, shorten
from searcher.errors import UsageError
from searcher.ingest import IngestOptions

from conftest import PHOTOS

runner = CliRunner()
SIGNATURES = ("hist", "mse", "orb")
LONG = "a_rather_long_folder_name_that_goes_on"


def cli(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kwargs)


def run_cli(*args, cwd=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "searcher", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def deep_catalog(tmp_path_factory):
    """Photos three long folders deep, with long names, ingested."""
    root = tmp_path_factory.mktemp("deep")
    folder = root / LONG / LONG / LONG
    folder.mkdir(parents=True)
    for k, photo in enumerate(PHOTOS[:8]):  # names of 45-50 characters: whole, they fit 80 columns
        shutil.copy(photo, folder / f"{k:02d}_{photo.stem[:24]}_with_a_long_file_name.jpg")
    location = CatalogLocation(root / "catalog")
    ingest([root / LONG], location, IngestOptions(workers=1, signatures=SIGNATURES))
    return root, folder, location


def test_the_80_column_table_has_one_line_per_hit_with_the_whole_file_name(deep_catalog):
    root, folder, location = deep_catalog
    query = sorted(folder.glob("*.jpg"))[0]
    results = query_paths([str(query)], location, top=8)
    text = format_query(results, "table", None, 80)
    lines = text.splitlines()
    assert lines[1].split() == ["rank", "score", "verdict", "path"]
    hits = lines[2:]
    assert len(hits) == 8
    names = {p.name for p in folder.glob("*.jpg")}
    for line in hits:
        assert len(line) <= 80, line
        assert line.split()[-1].split("/")[-1] in names  # the whole file name, never cut
    assert hits[0].split()[:3] == ["1", "1.000", "near-dup"]


def test_the_table_fits_a_real_80_column_terminal(deep_catalog):
    """Through a pseudo-terminal 80 columns wide, as a person sees it."""
    root, folder, location = deep_catalog
    query = sorted(folder.glob("*.jpg"))[1]
    main, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 80, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "searcher", "query", str(query), "--catalog", str(location.directory), "--top", "5"],
        stdout=secondary, stderr=subprocess.DEVNULL, cwd=root, env={**os.environ, "COLUMNS": "80", "TERM": "xterm"},
    )  # fmt: skip
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=300)
    os.close(main)
    lines = [line for line in b"".join(chunks).decode().splitlines() if line.strip()]
    assert lines[1].split() == ["rank", "score", "verdict", "path"]
    assert len(lines) == 2 + 5 and all(len(line) <= 80 for line in lines), lines
    assert lines[2].split()[-1].endswith(query.name)  # relative to the current folder, the name whole


def test_shorten_is_relative_to_the_current_folder_and_never_cuts_a_name(tmp_path):
    path = f"/x/{LONG}/{LONG}/photo.jpg"
    assert shorten(path, cwd="/x") == f"{LONG}/{LONG}/photo.jpg"
    assert shorten(path, 50, cwd="/x") == f"…/{LONG}/photo.jpg"  # leading folders go first, whole
    assert shorten(path, 12, cwd="/x") == "…/photo.jpg"
    assert shorten(path, 3, cwd="/x") == "photo.jpg"


def test_wide_columns_and_paths_formats(deep_catalog):
    root, folder, location = deep_catalog
    query = sorted(folder.glob("*.jpg"))[2]
    wide = cli("query", query, "--catalog", location.directory, "--format", "wide", "--top", "3").stdout.splitlines()
    assert wide[1].split() == [
        "rank",
        "score",
        "verdict",
        "fused",
        "hist",
        "mse",
        "orb_inliers",
        "orb_matches",
        "hist_bhattacharyya_distance",
        "mse_distance",
        "p_same",
        "path",
    ]
    picked = cli(
        "query", query, "--catalog", location.directory, "--columns", "mse,orb_inliers", "--top", "3"
    ).stdout.splitlines()
    assert picked[1].split() == ["rank", "score", "verdict", "mse", "orb_inliers", "path"]
    with pytest.raises(UsageError, match="no score named 'speed'"):
        cli("query", query, "--catalog", location.directory, "--columns", "mse,speed")
    paths = cli("query", query, folder, "--catalog", location.directory, "--format", "paths", "--top", "2").stdout.splitlines()
    assert len(paths) == 2 * 9 and all(os.path.isabs(p) and os.path.isfile(p) for p in paths)


def test_every_score_is_higher_for_more_similar_and_distances_say_so(deep_catalog):
    root, folder, location = deep_catalog
    query = sorted(folder.glob("*.jpg"))[3]
    line = json.loads(cli("query", query, "--catalog", location.directory, "--format", "jsonl", "--top", "5").stdout)
    assert set(line) == {"query", "results"} and {"rank", "path", "score", "scores"} <= set(line["results"][0])
    first, last = line["results"][0], line["results"][-1]
    for key, value in first["scores"].items():
        if key.endswith("_distance"):
            assert value <= last["scores"][key], key
        else:
            assert value >= last["scores"][key], key
    assert "hist_bhattacharyya" not in first["scores"] and first["scores"]["mse"] > 0.99


def test_metric_orb_keeps_score_a_similarity(deep_catalog):
    root, folder, location = deep_catalog
    query = sorted(folder.glob("*.jpg"))[4]
    results = json.loads(
        cli("query", query, "--catalog", location.directory, "--metric", "orb", "--format", "jsonl", "--top", "5").stdout
    )["results"]
    assert all(0.0 <= r["score"] <= 1.0 for r in results)
    assert results[0]["score"] == 1.0 and results[0]["scores"]["orb_inliers"] > 32
    inliers = [r["scores"]["orb_inliers"] for r in results]
    assert inliers == sorted(inliers, reverse=True)


def test_version():
    result = cli("--version")
    assert result.exit_code == 0 and re.fullmatch(r"\d+\.\d+\.\d+\S*", result.stdout.strip())


@pytest.mark.parametrize("command", ["ingest", "query", "dups", "train", "undo", "prune", "compare", "info", "reindex", "serve"])
def test_help_keeps_bracketed_text_and_has_no_bool_metavar(command):
    text = " ".join(cli(command, "--help", terminal_width=400).stdout.split())  # as written, not wrapped
    assert "<bool>" not in text
    if command == "ingest":
        assert "[default: one per core]" in text and "[default: 200.0" in text
    if command == "dups":
        assert "[default: original]" in text
    if command == "train":
        assert "[default: searcher-ae.pt]" in text


@pytest.mark.slow
def test_piped_stderr_has_no_blank_line_and_the_summary_names_time_and_rate(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    for photo in PHOTOS[:3]:
        shutil.copy(photo, folder)
    result = run_cli("ingest", folder, "--catalog", tmp_path / "c", "--signatures", "hist")
    assert result.returncode == 0
    assert "\n\n" not in result.stderr and not result.stderr.startswith("\n")
    assert re.search(r"in \d+\.\d s, \d+\.\d images/s$", result.stdout.strip())
    missing = run_cli("query", folder / "nope.jpg", "--catalog", tmp_path / "c")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1


def test_query_exits_1_when_any_file_failed_but_prints_the_others(deep_catalog, tmp_path):
    root, folder, location = deep_catalog
    queries = tmp_path / "q"
    queries.mkdir()
    shutil.copy(sorted(folder.glob("*.jpg"))[0], queries / "good.jpg")
    (queries / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    result = cli("query", queries, "--catalog", location.directory, "--format", "jsonl", "--top", "1")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["query"].endswith("good.jpg")
    assert "broken.jpg" in result.stderr and "1 of 2 query file(s) failed" in result.stderr


def test_weights_option_loads_a_trained_weights_file(tmp_path, deep_catalog):
    from searcher.features.ae_weights import WEIGHTS_ENV, default_weights_path

    root, folder, location = deep_catalog
    mine = tmp_path / "my-ae.pt"
    shutil.copy(default_weights_path(), mine)
    catalog = tmp_path / "cat"
    try:
        result = cli("ingest", folder, "--catalog", catalog, "--signatures", "ae", "--weights", mine)
        assert result.exit_code == 0, result.output
        assert os.environ[WEIGHTS_ENV] == str(mine)
        query = cli(
            "query",
            sorted(folder.glob("*.jpg"))[0],
            "--catalog",
            catalog,
            "--metric",
            "ae",
            "--weights",
            mine,
            "--format",
            "paths",
            "--top",
            "1",
        )
        assert query.stdout.strip() == str(sorted(folder.glob("*.jpg"))[0])
        with pytest.raises(UsageError, match="no such weights file"):
            cli("query", folder, "--catalog", catalog, "--weights", tmp_path / "nope.pt")
    finally:
        os.environ.pop(WEIGHTS_ENV, None)


def test_train_names_the_extra_when_torch_is_missing(monkeypatch, tmp_path):
    from searcher.errors import SearcherError

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(SearcherError, match=r"pip install 'searcher\[train\]'"):
        cli("train", tmp_path)


def test_progress_draws_nothing_when_stderr_is_not_a_terminal(photo_dir, tmp_path):
    result = cli("ingest", photo_dir, "--catalog", tmp_path / "c", "--signatures", "hist")
    assert result.stderr == ""


@pytest.mark.slow
def test_every_default_command_runs_without_torch(photo_dir, tmp_path):
    """torch is the `train` extra: ingest (ae included), query, compare, dups and prune never import it."""
    script = (
        "import sys; sys.modules['torch'] = None\n"  # import torch -> ImportError, as if not installed
        "from searcher.cli import main\n"
        "sys.argv = ['searcher', *sys.argv[1:]]\n"
        "main()\n"
    )
    catalog = tmp_path / "c"
    photos = sorted(photo_dir.glob("*.jpg"))
    for args in (
        ["ingest", photo_dir, "--catalog", catalog],
        ["query", photos[0], "--catalog", catalog, "--format", "paths", "--top", "1"],
        ["compare", photos[0], photos[1], "--catalog", catalog],
        ["dups", "--catalog", catalog, "--workers", "1"],
        ["prune", "--catalog", catalog],
    ):
        result = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (args[0], result.stderr)
    info = subprocess.run([sys.executable, "-c", script, "info", "--catalog", str(catalog)], capture_output=True, text=True)
    assert "signature   ae" in info.stdout


@pytest.mark.slow
def test_progress_on_a_terminal_counts_images_and_shows_rate_and_eta(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    for photo in PHOTOS[:20]:
        shutil.copy(photo, folder)
    main, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "searcher", "ingest", str(folder), "--catalog", str(tmp_path / "c"), "--signatures", "hist,mse,orb", "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=secondary, env={**os.environ, "TERM": "xterm"},
    )  # fmt: skip
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=300) == 0
    os.close(main)
    drawn = b"".join(chunks).decode(errors="replace")
    assert "extracting" in drawn and "ETA" in drawn and "/20" in drawn
