"""A catalog on PostgreSQL with its vectors on Milvus answers as the embedded default does, and
survives what a shared server sees: concurrent ingests, a killed ingest, a move from SQLite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine, func, select

from searcher.catalog import Catalog
from searcher.catalog.schema import ImageRow, SignatureRow
from searcher.errors import CatalogError
from searcher.features import DEFAULT_SIGNATURES
from searcher.ingest import IngestOptions

from conftest import PHOTOS, SAMPLE

pytestmark = pytest.mark.backends
QUERIES = sorted((SAMPLE / "copies").iterdir()) + PHOTOS
SIGNATURES = len(DEFAULT_SIGNATURES)  # hist, mse, orb, ae, cnn for every image
ROUNDS = 12  # copies of each sample photo in the killed ingest


def _ranking(catalog: Catalog) -> dict[str, list[str]]:
    """Each query's top 10 paths. Hits whose scores tie (an image and its lossless PNG copy) come in
    no particular order, which may differ between backends: within a tie they are put in path order."""

    def top10(query) -> list[str]:
        hits = sorted(((hit.score, hit.path) for hit in catalog.query(query, top=15)), reverse=True)
        ties: list[list[tuple[float, str]]] = []
        for score, path in hits:
            if ties and ties[-1][0][0] - score < 1e-6:
                ties[-1].append((score, path))
            else:
                ties.append([(score, path)])
        return [path for tie in ties for _, path in sorted(tie, key=lambda hit: hit[1])][:10]

    return {q.name: top10(q) for q in QUERIES}


def _groups(catalog: Catalog) -> list[tuple[str, frozenset[str]]]:
    return sorted((g.id, frozenset(m.path for m in g.members)) for g in catalog.find_duplicates())


def _rows(url: str) -> tuple[list[str], int]:
    """(paths of the image rows, signature rows) straight from the database."""
    engine = create_engine(url)
    with engine.connect() as c:
        paths = list(c.execute(select(ImageRow.path)).scalars())
        signatures = c.execute(select(func.count()).select_from(SignatureRow)).scalar()
    engine.dispose()
    return paths, signatures


@pytest.mark.slow
def test_postgresql_and_milvus_give_the_rankings_and_groups_of_sqlite_and_hnswlib(pg_url, milvus_uri, tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCHER_CACHE", str(tmp_path / "cache"))
    with Catalog.open(tmp_path / "folder") as embedded:
        embedded.ingest([SAMPLE], IngestOptions(workers=2))
        expected_ranking, expected_groups = _ranking(embedded), _groups(embedded)
    with Catalog.open(pg_url, vectors=f"milvus:{milvus_uri}") as scaled:
        summary = scaled.ingest([SAMPLE], IngestOptions(workers=2))
        assert summary.added == len(QUERIES) and summary.failed == 0
        assert _ranking(scaled) == expected_ranking
        assert _groups(scaled) == expected_groups
    assert expected_groups, "sample_data holds near-duplicate groups"


def _cli(*args, env=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "searcher", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _env(tmp_path, machine: str = "a") -> dict:
    """The environment of an ingest run on `machine`: each machine has its own vector cache folder
    (where one machine's writer lock lives), as two hosts writing to one server would."""
    return {**os.environ, "SEARCHER_CACHE": str(tmp_path / f"cache-{machine}"), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_two_concurrent_ingests_of_overlapping_folders_store_every_file_once(pg_url, tmp_path):
    files = QUERIES  # 48 files; each ingest is given 32 of them, 16 in common, in opposite orders
    shares = (files[:32], files[16:][::-1])
    runs = [
        _cli("ingest", *share, "--catalog", pg_url, "--workers", "1", "--format", "json", env=_env(tmp_path, machine))
        for share, machine in zip(shares, "ab")
    ]
    summaries = []
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        summaries.append(json.loads(out))
    # The 16 shared files are added by one ingest and found stored by the other.
    assert sum(s["added"] for s in summaries) == len(files)
    assert sum(s["added"] + s["unchanged"] for s in summaries) == 64 and not any(s["updated"] or s["failed"] for s in summaries)
    paths, signatures = _rows(pg_url)
    assert sorted(paths) == sorted(str(f) for f in files)  # every file once: none lost, none twice
    assert signatures == SIGNATURES * len(files)
    with Catalog.open(pg_url) as catalog:  # the indexes follow the catalog whichever ingest saved last
        for query in (files[0], files[20], files[40]):
            assert catalog.query(query, top=1)[0].path == str(query)


def _kill_after_first_commit(url: str, process: subprocess.Popen, timeout: float = 240) -> None:
    """SIGKILL the ingest as soon as it has committed rows (polled every 20 ms on one connection)."""
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as connection:
        while time.monotonic() < deadline:
            assert process.poll() is None, "the ingest finished before it could be killed: give it more files"
            try:
                if connection.execute("SELECT count(*) FROM images").fetchone()[0]:
                    process.send_signal(signal.SIGKILL)
                    process.wait(timeout=30)
                    return
            except psycopg.errors.UndefinedTable:  # the ingest has not made the tables yet
                pass
            time.sleep(0.02)
    raise AssertionError(f"no row committed in {timeout} s")


@pytest.mark.slow
def test_an_ingest_killed_mid_way_resumes_without_losing_anything(pg_url, tmp_path):
    import cv2

    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in PHOTOS:  # 288 distinct files: the ingest takes several commits (one per ~2 s)
        big = cv2.resize(cv2.imread(str(photo)), None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
        data = cv2.imencode(".jpg", big)[1].tobytes()
        for round_ in range(ROUNDS):  # a byte appended after the JPEG's end changes the hash, not the image
            (folder / f"{round_}-{photo.name}").write_bytes(data + bytes([round_]))
    total = ROUNDS * len(PHOTOS)
    first = _cli("ingest", folder, "--catalog", pg_url, "--workers", "1", env=_env(tmp_path))
    _kill_after_first_commit(pg_url, first)
    paths, _ = _rows(pg_url)
    assert 0 < len(paths) < total  # killed mid-way, with some batches committed

    second = _cli("ingest", folder, "--catalog", pg_url, "--workers", "2", "--format", "json", env=_env(tmp_path))
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    summary = json.loads(out)
    assert summary["added"] == total - len(paths) and summary["unchanged"] == len(paths) and summary["failed"] == 0
    paths, signatures = _rows(pg_url)
    assert sorted(paths) == sorted(str(p) for p in folder.iterdir()) and signatures == SIGNATURES * total
    with Catalog.open(pg_url) as catalog:  # the index saved by the killed run is not trusted
        copies = {str(folder / f"{round_}-{PHOTOS[5].name}") for round_ in range(ROUNDS)}  # the same pixels
        assert {hit.path for hit in catalog.query(PHOTOS[5], top=ROUNDS)} == copies


def test_a_sqlite_catalog_moves_to_postgresql_with_its_ids(pg_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCHER_CACHE", str(tmp_path / "cache"))
    from searcher import api

    with Catalog.open(tmp_path / "folder") as source:
        source.ingest(PHOTOS[:6], IngestOptions(workers=1, signatures=("hist", "mse", "orb")))
        expected = {q.name: [(h.path, round(h.score, 6)) for h in source.query(q, top=3)] for q in PHOTOS[:6]}
    counts = api.migrate(tmp_path / "folder", pg_url)
    assert (counts["images"], counts["signatures"]) == (6, 18) and counts["catalog_state"] >= 1  # the generation at least
    with pytest.raises(CatalogError, match="already holds 6 images"):
        api.migrate(tmp_path / "folder", pg_url)  # never into a catalog that has rows
    before = dict(_ids(tmp_path / "folder" / "catalog.db"))
    assert dict(_ids(pg_url)) == before
    with Catalog.open(pg_url) as moved:
        assert {q.name: [(h.path, round(h.score, 6)) for h in moved.query(q, top=3)] for q in PHOTOS[:6]} == expected
        moved.ingest(PHOTOS[6:7], IngestOptions(workers=1, signatures=("hist", "mse", "orb")))
    assert dict(_ids(pg_url))[str(PHOTOS[6])] > max(before.values())


def _ids(where) -> list[tuple[str, int]]:
    url = where if "://" in str(where) else f"sqlite:///{where}"
    engine = create_engine(url)
    with engine.connect() as c:
        rows = [tuple(r) for r in c.execute(select(ImageRow.path, ImageRow.id))]
    engine.dispose()
    return rows
