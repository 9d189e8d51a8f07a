"""A file that failed for want of access is retried on every run: chmod does not change its mtime."""

from __future__ import annotations

import pytest

from searcher import images
from searcher.catalog import CatalogLocation
from searcher.errors import ImageError

from helpers import copy_photos, run_ingest


@pytest.mark.parametrize("reason", ["permission denied", "cannot read file: Input/output error"])
def test_a_file_that_could_not_be_read_is_retried_once_readable(tmp_path, monkeypatch, reason):
    """D10: a "permission denied" failure was never retried after chmod (size and mtime unchanged)."""
    folder = tmp_path / "photos"
    victim, _ = copy_photos(folder, 2)
    location = CatalogLocation(tmp_path / "catalog")
    real_read = images.read_bytes

    def read_bytes(path):
        if path == str(victim):
            raise ImageError(reason)
        return real_read(path)

    monkeypatch.setattr(images, "read_bytes", read_bytes)
    first = run_ingest([folder], location)
    assert first.failed == 1 and first.failures[0] == (str(victim), reason)
    monkeypatch.setattr(images, "read_bytes", real_read)  # chmod a+r: nothing else changed
    again = run_ingest([folder], location)
    assert again.failed == 0 and again.counts()["updated"] == 1
    assert run_ingest([folder], location).counts()["unchanged"] == 2  # and then it is settled


def test_a_file_that_is_corrupt_is_not_decoded_again_until_it_changes(tmp_path):
    """D10 (the other half): a decode failure stays settled while size and mtime are unchanged."""
    folder = tmp_path / "photos"
    copy_photos(folder, 1)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    location = CatalogLocation(tmp_path / "catalog")
    assert run_ingest([folder], location).failed == 1
    again = run_ingest([folder], location)
    assert again.failed == 0 and again.counts()["unchanged"] == 2
