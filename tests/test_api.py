"""The Python API: the interface others build on, the README example, stdin scripts, catalog locations."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

import searcher
from searcher.cli import app

from conftest import PHOTOS, SAMPLE, transform

ROOT = Path(__file__).resolve().parents[1]
NO_AE = ("hist", "mse", "orb")


def test_the_interface_of_the_issue(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in PHOTOS[:4]:
        shutil.copy(photo, folder / photo.name)
    cv2.imwrite(str(folder / "copy.jpg"), transform(cv2.imread(str(PHOTOS[0])), "resized"))
    with searcher.Catalog.open(tmp_path / "CATALOG_DIR") as cat:
        summary = cat.ingest([str(folder)], searcher.IngestOptions(workers=1, signatures=NO_AE))
        assert (summary.added, summary.updated, summary.moved, summary.unchanged, summary.removed, summary.failed) == (
            5,
            0,
            0,
            0,
            0,
            0,
        )
        hits = cat.query(str(PHOTOS[0]), top=3)
        assert len(hits) == 3 and {hits[0].path, hits[1].path} == {str(folder / PHOTOS[0].name), str(folder / "copy.jpg")}
        assert hits[0].score >= hits[1].score >= hits[2].score and "fused" in hits[0].scores
        groups = cat.find_duplicates()
    [group] = groups
    assert group.id.startswith("g") and group.keep.path == str(folder / PHOTOS[0].name)
    assert {m.path for m in group.members} == {str(folder / PHOTOS[0].name), str(folder / "copy.jpg")}
    assert all(0.5 <= m.score <= 1.0 for m in group.members)


def test_a_query_of_an_unreadable_file_raises_a_clear_error(sample_catalog, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    with (
        searcher.Catalog.open(sample_catalog, create=False) as cat,
        pytest.raises(searcher.ImageError, match="not a recognised image"),
    ):
        cat.query(bad)


def test_compare_query_and_dups_give_a_pair_the_same_score(tmp_path):
    folder = tmp_path / "pair"
    folder.mkdir()
    original, copy = folder / "original.jpg", folder / "copy.jpg"
    shutil.copy(PHOTOS[3], original)
    cv2.imwrite(str(copy), transform(cv2.imread(str(PHOTOS[3])), "cropped"))
    with searcher.Catalog.open(tmp_path / "catalog") as cat:
        cat.ingest([folder], searcher.IngestOptions(workers=1, signatures=NO_AE))
        by_query = next(h.score for h in cat.query(original, top=2) if h.path == str(copy))
        [group] = cat.find_duplicates()
        by_dups = next(m.score for m in group.members if m.path == str(copy))
        by_compare = cat.compare(original, copy).score
    # Exactly the same rule; the stored signatures are rounded (float16, uint8), the compared ones are not.
    assert by_query == pytest.approx(by_compare, abs=0.01)
    assert by_dups == pytest.approx(by_compare, abs=0.01)


@pytest.mark.slow
def test_the_readme_example_runs(tmp_path):
    readme = (ROOT / "README.md").read_text()
    [example] = re.findall(r"## Python API.*?```python\n(.*?)```", readme, flags=re.S)
    os.symlink(SAMPLE, tmp_path / "sample_data")
    result = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "my-catalog" / "catalog.db").is_file()
    assert "near duplicate" in result.stdout and " keep " in result.stdout


STDIN_SCRIPT = """
import searcher, searcher.dups, searcher.ingest_work
searcher.ingest_work.CHUNK = 2     # small tasks, so that a few images use the process pools
searcher.dups.CHUNK = 4
with searcher.Catalog.open({catalog!r}) as cat:
    summary = cat.ingest([{photos!r}, {copies!r}], searcher.IngestOptions(workers=2, signatures=("hist", "mse", "orb")))
    groups = cat.find_duplicates(workers=2)
print("added", summary.added, "groups", len(groups))
"""


@pytest.mark.slow
def test_find_duplicates_runs_from_a_script_on_stdin(tmp_path):
    """Worker processes must not try to re-import a __main__ that is `<stdin>`."""
    script = STDIN_SCRIPT.format(catalog=str(tmp_path / "cat"), photos=str(SAMPLE / "photos"), copies=str(SAMPLE / "copies"))
    result = subprocess.run([sys.executable, "-"], input=script, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    added, groups = re.search(r"added (\d+) groups (\d+)", result.stdout).groups()
    assert int(added) == 48 and int(groups) >= 5


@pytest.mark.slow
def test_a_user_script_without_a_main_guard_is_not_rerun_by_the_workers(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(
        textwrap.dedent(STDIN_SCRIPT).format(
            catalog=str(tmp_path / "cat"), photos=str(SAMPLE / "photos"), copies=str(SAMPLE / "copies")
        )
    )
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("added") == 1


@pytest.mark.parametrize("name", ["x.db?v2", "100% done", "a%2Fb"])
def test_a_catalog_name_is_a_folder_name_never_url_syntax(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(PHOTOS[0], photos / PHOTOS[0].name)
    result = CliRunner().invoke(app, ["ingest", "--catalog", name, "--signatures", "hist", "--workers", "1", str(photos)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["photos", name])
    assert (tmp_path / name / "catalog.db").is_file()


def test_a_database_url_is_parsed_as_one_with_its_vectors_elsewhere(tmp_path):
    from searcher.catalog.location import parse

    folder = parse(str(tmp_path / "x.db?v2"))
    assert folder.is_folder and folder.url.database == str(tmp_path / "x.db?v2" / "catalog.db")
    url = parse("postgresql+psycopg://me:secret@db.example/photos", vector_dir=tmp_path / "vectors")
    assert not url.is_folder and url.url.drivername == "postgresql+psycopg" and url.url.database == "photos"
    assert url.vector_dir == tmp_path / "vectors" and "secret" not in url.display


def test_a_sqlite_url_opens_like_a_folder(tmp_path):
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    location = searcher.CatalogLocation(tmp_path / "vectors", database_url=url)
    with searcher.Catalog.open(location) as cat:
        cat.ingest([PHOTOS[0], PHOTOS[1]], searcher.IngestOptions(workers=1, signatures=("hist", "mse")))
        assert cat.query(PHOTOS[1], top=1)[0].path == str(PHOTOS[1])
    assert (tmp_path / "elsewhere.db").is_file() and (tmp_path / "vectors" / "index-hist.bin").is_file()
