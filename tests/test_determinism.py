"""The same files give the same duplicate groups and the same query top-10, whatever the order they
were ingested in (image ids follow it), the number of workers, or the run."""

import shutil

import pytest

from searcher import Catalog
from searcher.ingest import IngestOptions

from conftest import SAMPLE

SIGNATURES = ("hist", "mse", "orb")


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """sample_data plus exact byte copies and a second copy set, in three folders."""
    root = tmp_path_factory.mktemp("library")
    shutil.copytree(SAMPLE / "photos", root / "photos")
    shutil.copytree(SAMPLE / "copies", root / "copies")
    (root / "again").mkdir()
    for name in sorted(p.name for p in (SAMPLE / "photos").iterdir())[:6]:
        shutil.copy(SAMPLE / "photos" / name, root / "again" / name)  # same bytes as photos/<name>
    return root


def _fingerprint(catalog_dir, library) -> tuple:
    """(groups with their kept copy and member scores, top-10 of four queries), paths and scores."""
    with Catalog.open(catalog_dir, create=False) as catalog:
        groups = [
            (g.id, g.keep.path, tuple((m.path, round(m.score, 9)) for m in g.members)) for g in catalog.find_duplicates(workers=1)
        ]
        queries = sorted((library / "copies").iterdir())[:4]
        tops = [tuple((h.path, round(h.score, 9)) for h in catalog.query(q, top=10)) for q in queries]
    return groups, tops


def _ingest(catalog_dir, folders, workers: int) -> None:
    with Catalog.open(catalog_dir) as catalog:
        for folder in folders:
            catalog.ingest([folder], IngestOptions(workers=workers, signatures=SIGNATURES))


def test_ingest_order_and_worker_count_change_neither_groups_nor_query_top10(library, tmp_path):
    _ingest(tmp_path / "a", [library], workers=1)
    _ingest(tmp_path / "b", [library / "copies", library / "again", library / "photos"], workers=2)
    _ingest(tmp_path / "c", [library / "again", library / "photos", library / "copies"], workers=1)
    first = _fingerprint(tmp_path / "a", library)
    assert first[0] and all(len(top) == 10 for top in first[1])  # something to compare
    assert _fingerprint(tmp_path / "b", library) == first
    assert _fingerprint(tmp_path / "c", library) == first


def test_dups_with_one_or_two_workers_and_twice_gives_the_same_groups(library, tmp_path):
    _ingest(tmp_path / "cat", [library], workers=2)
    with Catalog.open(tmp_path / "cat", create=False) as catalog:
        runs = [
            [(g.id, tuple((m.path, round(m.score, 9)) for m in g.members)) for g in catalog.find_duplicates(workers=w)]
            for w in (1, 2, 2)
        ]
    assert runs[0] and runs[0] == runs[1] == runs[2]
