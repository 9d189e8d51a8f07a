"""Incremental ingest: every kind of change, every kind of bad file, interruptions."""

import os
import shutil

import cv2
import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from searcher.api import ingest
from searcher.catalog import Catalog
from searcher.catalog.engine import open_engine
from searcher.catalog.schema import ImageRow, SignatureRow
from searcher.errors import UsageError
from searcher.ingest import IngestOptions

from conftest import PHOTOS, ingest_quiet

SIGNATURES = ("hist", "mse", "orb")


def run(paths, location, **kw):
    kw.setdefault("signatures", SIGNATURES)
    return ingest_quiet(paths, location, **kw).counts()


def catalog_rows(location):
    engine = open_engine(location)
    with Session(engine) as s:
        rows = {r.path: r for r in s.scalars(select(ImageRow))}
        sig_count = s.scalar(select(func.count()).select_from(SignatureRow))
    engine.dispose()
    return rows, sig_count


def counts(added=0, updated=0, moved=0, unchanged=0, removed=0, failed=0):
    return dict(added=added, updated=updated, moved=moved, unchanged=unchanged, removed=removed, failed=failed)


def test_first_ingest_adds_everything_and_rerun_changes_nothing(photo_dir, location):
    assert run([photo_dir], location) == counts(added=6)
    rows, sigs = catalog_rows(location)
    assert sigs == 6 * len(SIGNATURES)
    assert all(r.status == "ok" and len(r.sha256) == 64 and r.width > 0 for r in rows.values())

    def index_files():
        return {p.name: p.stat().st_mtime_ns for p in location.directory.glob("index-*")}

    before = index_files()
    assert run([photo_dir], location) == counts(unchanged=6)
    assert index_files() == before  # a no-op rerun does not even rewrite the indexes


def test_parallel_and_serial_ingest_store_the_same_signatures(photo_dir, tmp_path, monkeypatch):
    import searcher.ingest_work as ingest_module
    from searcher.catalog import CatalogLocation

    monkeypatch.setattr(ingest_module, "CHUNK", 2)  # so six files make three tasks for the pool
    one, two = CatalogLocation(tmp_path / "one"), CatalogLocation(tmp_path / "two")
    run([photo_dir], one, workers=1)
    run([photo_dir], two, workers=2)

    def blobs(location):
        engine = open_engine(location)
        with Session(engine) as s:
            out = {(r.path, sig.extractor): sig.data for r, sig in s.execute(select(ImageRow, SignatureRow).join(SignatureRow))}
        engine.dispose()
        return out

    assert blobs(one) == blobs(two)


def test_modified_moved_deleted_and_added_files(photo_dir, location):
    run([photo_dir], location)
    files = sorted(photo_dir.glob("*.jpg"))
    # modify: new content at the same path
    img = cv2.imread(str(files[0]))
    cv2.imwrite(str(files[0]), cv2.GaussianBlur(img, (9, 9), 3))
    # move into a subfolder under a new name
    (photo_dir / "sub").mkdir()
    moved_to = photo_dir / "sub" / "renamed.jpg"
    shutil.move(files[1], moved_to)
    # delete
    files[2].unlink()
    # add a byte-identical copy of an existing photo
    shutil.copy(files[3], photo_dir / "copy.jpg")
    # add a new photo
    shutil.copy(PHOTOS[10], photo_dir / "new.jpg")
    assert run([photo_dir], location) == counts(added=2, updated=1, moved=1, unchanged=3, removed=1)
    rows, sigs = catalog_rows(location)
    assert str(moved_to) in rows and str(files[1]) not in rows and str(files[2]) not in rows
    assert sigs == len(rows) * len(SIGNATURES)
    assert run([photo_dir], location) == counts(unchanged=7)


def test_touched_file_with_same_bytes_is_not_reextracted(photo_dir, location):
    run([photo_dir], location)
    target = next(photo_dir.glob("*.jpg"))
    os.utime(target, ns=(1_000_000_000, 1_000_000_000))
    assert run([photo_dir], location) == counts(unchanged=6)
    assert run([photo_dir], location) == counts(unchanged=6)


def test_removal_is_limited_to_the_folders_ingested(photo_dir, tmp_path, location):
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(PHOTOS[12], other / "x.jpg")
    run([photo_dir, other], location)
    assert run([other], location) == counts(unchanged=1)  # photo_dir's images are not "missing"
    rows, _ = catalog_rows(location)
    assert len(rows) == 7


def make_bad_files(folder):
    data = PHOTOS[0].read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "notes.jpg").write_text("not an image at all\n")
    (folder / "empty.png").write_bytes(b"")
    (folder / "bomb.png").write_bytes(cv2.imencode(".png", np.zeros((6000, 6000), np.uint8))[1].tobytes())
    return {
        "truncated.jpg": "truncated",
        "notes.jpg": "not a recognised image",
        "empty.png": "empty file",
        "bomb.png": "max-megapixels",
    }


class Recorder:
    def __init__(self):
        self.failures, self.warnings, self.total = [], [], 0

    def start(self, total):
        self.total = total

    def advance(self, n=1):
        pass

    def warn(self, message):
        self.warnings.append(message)

    def failed(self, path, reason):
        self.failures.append((os.path.basename(path), reason))


def test_bad_files_are_recorded_as_failed_with_a_reason_and_the_rest_goes_on(photo_dir, location):
    expected = make_bad_files(photo_dir)
    shutil.copy(PHOTOS[8], photo_dir / "фото 写真.jpg")
    recorder = Recorder()
    summary = ingest([photo_dir], location, IngestOptions(signatures=SIGNATURES, max_megapixels=30), recorder)
    assert summary.counts() == counts(added=7, failed=4)
    assert {name for name, _ in recorder.failures} == set(expected)
    for name, reason in recorder.failures:
        assert expected[name] in reason and "\n" not in reason
    rows, _ = catalog_rows(location)
    assert rows[str(photo_dir / "фото 写真.jpg")].status == "ok"
    assert rows[str(photo_dir / "notes.jpg")].status == "failed"
    # unchanged bad files are not retried, and the user is told so
    recorder = Recorder()
    summary = ingest([photo_dir], location, IngestOptions(signatures=SIGNATURES, max_megapixels=30), recorder)
    assert summary.counts() == counts(unchanged=11)
    assert any("4 unchanged file(s) failed before" in w for w in recorder.warnings)
    # a fixed file is picked up
    shutil.copy(PHOTOS[9], photo_dir / "notes.jpg")
    assert run([photo_dir], location, max_megapixels=30) == counts(updated=1, unchanged=10)


def test_a_good_file_that_turns_bad_leaves_the_indexes(photo_dir, location):
    run([photo_dir], location)
    victim = sorted(photo_dir.glob("*.jpg"))[0]
    victim.write_bytes(victim.read_bytes()[:500])
    assert run([photo_dir], location) == counts(failed=1, unchanged=5)
    with Catalog.open(location, create=False) as searcher:
        assert all(len(index) == 5 for index in searcher.indexes.values())


def test_missing_path_is_a_usage_error(location, tmp_path):
    with pytest.raises(UsageError, match="no such file or folder"):
        ingest([tmp_path / "nope"], location)


def test_interrupted_ingest_keeps_committed_work_and_resumes(photo_dir, location, monkeypatch):
    import searcher.ingest_apply as apply_module
    import searcher.ingest_work as ingest_module

    for i, photo in enumerate(PHOTOS[6:20]):
        shutil.copy(photo, photo_dir / f"more_{i}.jpg")
    monkeypatch.setattr(apply_module, "COMMIT_EVERY", 16)
    real = ingest_module._process_chunk
    calls = {"n": 0}

    def dies_on_second_chunk(tasks):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(tasks)

    monkeypatch.setattr(ingest_module, "_process_chunk", dies_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        run([photo_dir], location, workers=1)
    rows, _ = catalog_rows(location)
    assert len(rows) == 16  # the first chunk was committed
    monkeypatch.setattr(ingest_module, "_process_chunk", real)
    assert run([photo_dir], location, workers=1) == counts(added=4, unchanged=16)
    rows, sigs = catalog_rows(location)
    assert len(rows) == 20 and sigs == 20 * len(SIGNATURES)
    with Catalog.open(location, create=False) as searcher:
        assert all(len(index) == 20 for index in searcher.indexes.values())


def test_index_lost_after_a_crash_is_rebuilt_from_the_catalog(photo_dir, location):
    run([photo_dir], location)
    location.index_path("hist").unlink()
    warnings = []
    with Catalog.open(location, create=False, warn=warnings.append) as searcher:
        assert len(searcher.indexes["hist"]) == 6
    assert any("hist index missing: rebuilt" in w for w in warnings)


def test_stale_signature_version_is_recomputed_once_and_only_for_that_signature(photo_dir, location, monkeypatch):
    from searcher.features.histogram import HistogramExtractor
    from searcher.features.orb import OrbExtractor

    run([photo_dir], location)
    monkeypatch.setattr(HistogramExtractor, "version", "99")
    recorder = Recorder()
    summary = ingest([photo_dir], location, IngestOptions(signatures=SIGNATURES), recorder)
    assert summary.counts() == counts(updated=6)
    engine = open_engine(location)
    with Session(engine) as s:
        versions = dict(
            s.execute(
                select(SignatureRow.extractor, func.group_concat(SignatureRow.version.distinct())).group_by(
                    SignatureRow.extractor
                )
            ).all()
        )
    engine.dispose()
    assert versions == {"hist": "99", "mse": "1", "orb": OrbExtractor.version}
    assert run([photo_dir], location) == counts(unchanged=6)
