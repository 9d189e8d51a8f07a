"""Images with a one-pixel side get signatures (or a one-line failure), and never abort a batch."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from searcher.api import query_paths
from searcher.catalog import CatalogLocation

from helpers import copy_photos, run_ingest


def write_png(path, shape):
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8))
    return path


@pytest.mark.parametrize("shape", [(1, 50, 3), (50, 1, 3), (1, 1, 3), (1, 2000, 3)])
def test_a_one_pixel_wide_image_is_ingested(tmp_path, shape):
    """D11: ORB's pyramid resize asserted (inv_scale_x > 0) on a 1-pixel side."""
    folder = tmp_path / "pics"
    folder.mkdir()
    write_png(folder / "line.png", shape)
    summary = run_ingest([folder], CatalogLocation(tmp_path / "catalog"))
    assert summary.failures == [] and summary.added == 1


def test_a_query_folder_with_a_one_pixel_image_answers_every_other_image(tmp_path):
    """D11: one such file aborted the whole query folder with a traceback."""
    photos = copy_photos(tmp_path / "photos", 3)
    location = CatalogLocation(tmp_path / "catalog")
    run_ingest([tmp_path / "photos"], location)
    queries = tmp_path / "queries"
    queries.mkdir()
    for photo in photos:
        (queries / photo.name).write_bytes(photo.read_bytes())
    write_png(queries / "a_line.png", (1, 50, 3))
    results = query_paths([str(queries)], location, top=1)
    assert len(results) == 4
    for result in results:
        assert result.error is None or "\n" not in result.error
        if result.query != str(queries / "a_line.png"):
            assert result.error is None and result.hits


def test_a_query_image_a_feature_library_chokes_on_fails_alone_in_one_line(tmp_path, monkeypatch):
    """D11: whatever breaks an extractor on one query image is that image's one-line error."""
    import searcher.features.orb as orb

    photos = copy_photos(tmp_path / "photos", 3)
    location = CatalogLocation(tmp_path / "catalog")
    run_ingest([tmp_path / "photos"], location)
    from searcher.features.work_image import as_work

    real = orb.OrbExtractor.extract

    def extract(self, image):
        if as_work(image).bgr.shape[0] == 7:
            raise cv2.error("OpenCV(5.0.0) x.cpp:1: error: (-215:Assertion failed)\nin function 'resize'\n")
        return real(self, image)

    monkeypatch.setattr(orb.OrbExtractor, "extract", extract)
    odd = write_png(tmp_path / "odd.png", (7, 50, 3))
    results = query_paths([str(photos[0]), str(odd), str(photos[1])], location, top=1)
    assert [r.error is None for r in results] == [True, False, True]
    assert "Assertion failed" in results[1].error and "\n" not in results[1].error
