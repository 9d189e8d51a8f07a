"""Signatures: pinned values, blob round trips, and agreement between index distance and compareHist."""

import numpy as np
import pytest

from searcher import images
from searcher.features.histogram import METHODS, HistogramExtractor
from searcher.features.orb import OrbExtractor
from searcher.features.thumbnail import ThumbnailExtractor

from conftest import PHOTOS, transform


@pytest.fixture(scope="module")
def photo():
    return images.load_image(PHOTOS[0]).bgr


@pytest.fixture(scope="module")
def other():
    return images.load_image(PHOTOS[3]).bgr


def test_histogram_of_a_flat_colour_is_one_bin():
    red = np.zeros((32, 32, 3), np.uint8)
    red[:] = (0, 0, 255)  # BGR pure red: hue 0, saturation 255
    hist = HistogramExtractor().extract(red)
    assert hist.shape == (HistogramExtractor.dim,)
    assert hist[15] == pytest.approx(1.0)  # hue bin 0, last saturation bin
    assert hist.sum() == pytest.approx(1.0)


def test_index_distance_agrees_with_opencv_bhattacharyya(photo, other):
    hist = HistogramExtractor()
    a, b = hist.extract(photo), hist.extract(other)
    l2_squared = float(np.sum((hist.embedding(a) - hist.embedding(b)) ** 2))
    bhattacharyya = hist.compare(a, b, "bhattacharyya")
    assert np.sqrt(l2_squared / 2) == pytest.approx(bhattacharyya, abs=1e-4)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_compare_hist_method_prefers_the_copy(photo, other, method):
    hist = HistogramExtractor()
    original = hist.extract(photo)
    copy = hist.extract(transform(photo, "recompressed"))
    assert hist.similarity(original, copy, method) > hist.similarity(original, hist.extract(other), method)
    assert hist.similarity(original, original, method) == pytest.approx(1.0, abs=1e-5)


def test_thumbnail_mse_is_squared_l2_over_pixels(photo, other):
    thumb = ThumbnailExtractor()
    a, b = thumb.extract(photo), thumb.extract(other)
    assert thumb.mse(a, b) == pytest.approx(float(np.sum((a - b) ** 2)) / a.size)
    assert thumb.mse(a, thumb.extract(transform(photo, "resized"))) < 0.001 < thumb.mse(a, b)


def test_thumbnail_query_variants_include_the_rotated_copy(photo):
    thumb = ThumbnailExtractor()
    rotated = thumb.extract(transform(photo, "rotated"))
    best = min(thumb.mse(v, rotated) for v in thumb.query_signatures(photo))
    assert best < 0.001


@pytest.mark.parametrize("extractor", [HistogramExtractor(), ThumbnailExtractor(), OrbExtractor()], ids=lambda e: e.name)
def test_blob_round_trip_is_compact_and_faithful(extractor, photo):
    signature = extractor.extract(photo)
    blob = extractor.to_blob(signature)
    restored = extractor.from_blob(blob)
    assert len(blob) <= 10_000
    np.testing.assert_allclose(np.asarray(restored, np.float32), np.asarray(signature, np.float32), atol=2e-3)


def test_orb_verifies_a_rotated_copy_and_rejects_another_photo(photo, other):
    orb = OrbExtractor()
    original = orb.extract(photo)
    assert orb.verify(original, orb.extract(transform(photo, "rotated"))).inliers >= 40
    assert orb.verify(original, orb.extract(other)).score == 0.0


def test_orb_flipped_query_variant_matches_a_mirrored_copy(photo):
    orb = OrbExtractor()
    mirrored = orb.extract(np.ascontiguousarray(photo[:, ::-1]))
    best = max(orb.verify(v, mirrored).inliers for v in orb.query_signatures(photo))
    assert best >= 40


def test_orb_on_a_blank_image_gives_no_keypoints_and_no_match():
    orb = OrbExtractor()
    blank = orb.extract(np.full((100, 100, 3), 128, np.uint8))
    assert blank.shape[0] == 0
    assert orb.verify(blank, blank).inliers == 0
