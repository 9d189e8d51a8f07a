"""The command-line contract: formats, exit codes, stdout for results and stderr for the rest."""

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from searcher.cli import app

from conftest import PHOTOS

runner = CliRunner()


def invoke(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)


@pytest.fixture
def ingested(photo_dir, tmp_path):
    catalog = tmp_path / "cat"
    result = invoke("ingest", photo_dir, "--catalog", catalog, "--signatures", "hist,mse,orb", "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"added": 6, "updated": 0, "moved": 0, "unchanged": 0, "removed": 0, "failed": 0}
    return catalog


def test_ingest_prints_a_summary_line(photo_dir, tmp_path):
    result = invoke("ingest", photo_dir, "--catalog", tmp_path / "c", "--signatures", "hist,mse,orb")
    assert result.exit_code == 0
    assert re.fullmatch(
        r"6 added, 0 updated, 0 moved, 0 unchanged, 0 removed, 0 failed in \d+\.\d s, \d+\.\d images/s", result.stdout.strip()
    ), result.stdout


def test_catalog_comes_from_the_environment(photo_dir, tmp_path):
    env = {"SEARCHER_CATALOG": str(tmp_path / "envcat")}
    assert invoke("ingest", photo_dir, "--signatures", "hist", env=env).exit_code == 0
    assert (tmp_path / "envcat" / "catalog.db").exists()


def test_query_jsonl_has_one_line_per_query_with_absolute_paths(ingested, photo_dir):
    result = invoke("query", photo_dir, "--catalog", ingested, "--top", "3", "--format", "jsonl")
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 6
    for line in lines:
        assert os.path.isabs(line["query"])
        assert [r["rank"] for r in line["results"]] == [1, 2, 3]
        first = line["results"][0]
        assert first["path"] == line["query"] and os.path.isabs(first["path"])
        assert {"fused", "hist", "mse", "orb_inliers"} <= set(first["scores"])
        scores = [r["score"] for r in line["results"]]
        assert scores == sorted(scores, reverse=True)


def test_query_json_and_csv_and_table(ingested, photo_dir):
    one = sorted(photo_dir.glob("*.jpg"))[0]
    data = json.loads(invoke("query", one, "--catalog", ingested, "--format", "json", "--top", "2").stdout)
    assert data[0]["results"][0]["path"] == str(one)
    rows = list(csv.DictReader(io.StringIO(invoke("query", one, "--catalog", ingested, "--format", "csv", "--top", "2").stdout)))
    assert [r["rank"] for r in rows] == ["1", "2"] and rows[0]["path"] == str(one)
    table = invoke("query", one, "--catalog", ingested, "--top", "2")
    assert table.exit_code == 0 and one.name[:10] in table.stdout


def test_query_metric_option(ingested, photo_dir):
    one = sorted(photo_dir.glob("*.jpg"))[1]
    for metric in ("hist", "mse", "orb"):
        result = invoke("query", one, "--catalog", ingested, "--metric", metric, "--format", "jsonl", "--top", "1")
        assert json.loads(result.stdout)["results"][0]["path"] == str(one), metric


def test_reindex_rebuilds_every_index(ingested):
    (ingested / "index-hist.bin").unlink()
    result = invoke("reindex", "--catalog", ingested)
    assert result.exit_code == 0
    assert "hist: 6 vectors" in result.stdout and "mse: 6 vectors" in result.stdout
    assert (ingested / "index-hist.bin").exists()


def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "searcher", *map(str, args)], capture_output=True, text=True, **kw)


def test_user_errors_exit_1_with_one_line_and_no_traceback(tmp_path):
    result = run_cli("query", PHOTOS[0], "--catalog", tmp_path / "missing")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: no catalog at") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_bad_usage_exits_2(tmp_path):
    result = run_cli("query", PHOTOS[0], "--catalog", tmp_path, "--metric", "telepathy")
    assert result.returncode == 2


@pytest.mark.slow
def test_end_to_end_in_a_real_process(tmp_path, photo_dir):
    """ingest -> bad files named on stderr -> query a copy -> original first."""
    (photo_dir / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    catalog = tmp_path / "cat"
    ingest = run_cli("ingest", photo_dir, "--catalog", catalog, "--workers", "2", "--signatures", "hist,mse,orb")
    assert ingest.returncode == 0, ingest.stderr
    assert ingest.stdout.startswith("6 added, 0 updated, 0 moved, 0 unchanged, 0 removed, 1 failed in ")
    assert f"failed: {photo_dir / 'broken.jpg'}:" in ingest.stderr
    original = sorted(photo_dir.glob("*.jpg"))[2]
    copy = tmp_path / "copy.jpg"
    shutil.copy(original, copy)
    query = run_cli("query", copy, "--catalog", catalog, "--format", "jsonl", "--top", "3")
    assert query.returncode == 0, query.stderr
    assert json.loads(query.stdout)["results"][0]["path"] == str(original)


def test_query_html_report_shows_the_query_and_its_results(ingested, photo_dir, tmp_path):
    one = sorted(photo_dir.glob("*.jpg"))[0]
    page = tmp_path / "report.html"
    result = invoke("query", one, "--catalog", ingested, "--top", "3", "--format", "jsonl", "--html", page)
    assert result.exit_code == 0
    text = page.read_text()
    assert text.count("<img") == 4  # the query and three results
    assert one.name in text


def test_an_index_saved_without_its_vector_copy_gets_one_on_first_use(ingested, photo_dir):
    """Catalogs saved before the copies existed are not rebuilt: their next reader writes the copy once."""
    for copy in ingested.glob("index-*.npy"):
        copy.unlink()
    result = invoke("query", sorted(photo_dir.glob("*.jpg"))[0], "--catalog", ingested, "--top", "1")
    assert result.exit_code == 0
    assert sorted(p.name for p in ingested.glob("index-hist.*")) == [
        "index-hist.bin",
        "index-hist.json",
        "index-hist.labels.npy",
        "index-hist.vectors.npy",
    ]
    assert "rebuilt" not in result.output
