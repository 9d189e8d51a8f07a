"""Index files are a cache of the catalog and must never be trusted when they disagree with it:
a stale index saved as current (D6), same-size corruption (D7), a sidecar that is JSON but not an
object (D14), a disk that fills up while an index is saved (D17)."""

from __future__ import annotations

import json
import resource
import shutil

import pytest

from helpers import PHOTOS, assert_no_traceback, assert_one_line_error, cli, cli_ingest

pytestmark = pytest.mark.slow


@pytest.fixture
def catalog(tmp_path):
    folder = tmp_path / "ph"
    folder.mkdir()
    for photo in PHOTOS[:8]:
        shutil.copy(photo, folder / photo.name)
    catalog = tmp_path / "catalog"
    cli_ingest(folder, catalog)
    return catalog, folder


def _top(result):
    assert_no_traceback(result)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.splitlines()[0])
    return record["results"][0]["path"] if record["results"] else None


def _query(catalog, image, metric="fused"):
    return cli("query", image, "--catalog", catalog, "--top", "3", "--format", "jsonl", "--metric", metric)


def test_an_index_saved_behind_the_catalog_is_not_trusted(catalog, tmp_path):
    """D6: a process that read the generation at its start and saved its index after another process
    committed rows left an index marked current that lacked those rows; they were never found again.
    Reproduced as the state it leaves: the index files of an earlier catalog content, recorded as current."""
    catalog, folder = catalog
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    for path in catalog.glob("index-*"):
        shutil.copy(path, snapshot / path.name)
    late = tmp_path / "late"
    late.mkdir()
    for photo in PHOTOS[8:12]:
        shutil.copy(photo, late / photo.name)
    cli_ingest(late, catalog)
    current = {p.name: json.loads(p.read_text()) for p in catalog.glob("index-*.json")}
    for path in snapshot.iterdir():
        shutil.copy(path, catalog / path.name)
        if path.suffix == ".json":  # what the racing process wrote: the catalog state it read, as current
            meta = json.loads(path.read_text())
            for key in ("generation", "catalog"):  # the sidecar's claim about the catalog, in either format
                if key in current[path.name]:
                    meta[key] = current[path.name][key]
            (catalog / path.name).write_text(json.dumps(meta))
    for photo in PHOTOS[8:12]:
        for metric in ("hist", "mse"):
            assert _top(_query(catalog, late / photo.name, metric)) == str(late / photo.name)


@pytest.mark.parametrize("name", ["hist", "mse"])
def test_same_size_corruption_of_an_index_is_detected_and_rebuilt(catalog, name):
    """D7: bytes changed inside an index file (same size) segfaulted hnswlib or gave other scores,
    and the bad file was saved again as current."""
    catalog, folder = catalog
    index = catalog / f"index-{name}.bin"
    data = bytearray(index.read_bytes())
    data[200:4200] = b"\xff" * 4000
    index.write_bytes(bytes(data))
    image = folder / PHOTOS[3].name
    result = _query(catalog, image, name)
    assert _top(result) == str(image)
    assert f"{name} index" in result.stderr and "rebuilt" in result.stderr
    assert index.read_bytes() != bytes(data)  # the rebuilt index replaced the corrupt one
    again = _query(catalog, image, name)
    assert _top(again) == str(image) and "rebuilt" not in again.stderr


@pytest.mark.parametrize("content", ["[1, 2]", '"text"', "42", "null"])
def test_a_sidecar_that_is_not_an_object_is_rebuilt_with_a_warning(catalog, content):
    """D14: a sidecar holding valid JSON that is not an object raised AttributeError."""
    catalog, folder = catalog
    (catalog / "index-hist.json").write_text(content)
    image = folder / PHOTOS[2].name
    result = _query(catalog, image, "hist")
    assert _top(result) == str(image)
    assert "hist index" in result.stderr and "rebuilt" in result.stderr
    info = cli("info", "--catalog", catalog)
    assert_no_traceback(info)
    assert info.returncode == 0


def _limit_file_size(limit):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_while_saving_indexes_is_one_line_and_records_nothing_broken(tmp_path):
    """D17: with the disk full, hnswlib wrote a short (even 0-byte) file, recorded as up to date.
    A file-size limit makes every write past it fail as a full disk does: above SQLite's 32 KB
    shared-memory file, below the size of the index files of 48 images."""
    folder = tmp_path / "ph"
    folder.mkdir()
    for n in range(2):
        for photo in PHOTOS:
            shutil.copy(photo, folder / f"{n}-{photo.name}")
    catalog = tmp_path / "catalog"
    cli_ingest(folder, catalog)
    assert min(p.stat().st_size for p in catalog.glob("index-*.bin")) > 40_000
    result = cli("reindex", "--catalog", catalog, preexec_fn=_limit_file_size(40_000))
    assert_one_line_error(result, "index")
    assert not list(catalog.glob("*.tmp"))
    image = folder / f"0-{PHOTOS[5].name}"
    for name in ("hist", "mse"):
        query = _query(catalog, image, name)
        assert _top(query) in (str(image), str(folder / f"1-{PHOTOS[5].name}")), query.stderr
    for sidecar in catalog.glob("index-*.json"):
        meta = json.loads(sidecar.read_text())
        assert meta["file_size"] == sidecar.with_suffix(".bin").stat().st_size > 0


def test_a_full_disk_during_ingest_is_one_line(catalog, tmp_path):
    """D17: "database or disk is full" came out as a traceback."""
    catalog, folder = catalog
    more = tmp_path / "more"
    more.mkdir()
    for i, photo in enumerate(PHOTOS[:12]):
        shutil.copy(photo, more / f"m{i}.jpg")
    size = (catalog / "catalog.db").stat().st_size
    result = cli(
        "ingest", more, "--catalog", catalog, "--signatures", "hist,mse,orb", "--workers", "1", preexec_fn=_limit_file_size(size)
    )
    assert_one_line_error(result)
    after = cli_ingest(more, catalog)
    assert after.returncode == 0
