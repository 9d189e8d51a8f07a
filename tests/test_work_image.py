"""The shared thumbnail: signatures made from it are those of a direct reduction of the image, up to
a few uint8 steps (the square is bilinear + box, not one slow fractional INTER_AREA)."""

import cv2
import numpy as np

from searcher import images
from searcher.features.ae_numpy import preprocess
from searcher.features.thumbnail import SPREAD, ThumbnailExtractor, contrast_normalised
from searcher.features.work_image import LEVEL_PERCENTILES, SQUARE, WorkImage, auto_level, level_percentiles

from conftest import PHOTOS


def test_the_mse_thumbnail_and_the_ae_input_are_a_direct_reduction_to_a_few_uint8_steps():
    # uint8 steps before the contrast normalisation (thumbnail) and auto-level (ae) that both
    # paths share: compared after them, with the step scaled as they scale it. Measured on these
    # photos: the thumbnail within 1.06 steps; the 64 px ae input within 3 (0.1-0.6 on average).
    for path in PHOTOS[:8]:
        bgr = images.load_image(path).bgr
        work = WorkImage(bgr)
        assert work.square.shape == (SQUARE, SQUARE, 3)
        direct = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), (16, 16), interpolation=cv2.INTER_AREA).ravel() / 255.0
        step = 1.5 / 255 * SPREAD / direct.std()
        assert np.abs(ThumbnailExtractor().extract(work) - contrast_normalised(direct)).max() <= step
        direct64 = cv2.resize(bgr, (64, 64), interpolation=cv2.INTER_AREA)
        low, high = np.percentile(direct64, LEVEL_PERCENTILES)
        shared64 = preprocess(work) * 0.25 + 0.5  # back to [0, 1] RGB, CHW
        error = np.abs(shared64.transpose(1, 2, 0)[:, :, ::-1] * 255 - auto_level(direct64).astype(np.float32))
        assert error.max() <= 3.5 * 255 / (high - low) and error.mean() <= 1.0 * 255 / (high - low)


def test_an_extractor_gives_the_same_signature_from_an_array_and_from_a_work_image():
    from searcher.features import build_extractors

    bgr = images.load_image(PHOTOS[0]).bgr
    work = WorkImage(bgr)
    for extractor in build_extractors(("hist", "mse", "orb")):
        assert np.array_equal(extractor.extract(bgr), extractor.extract(work)), extractor.name


def test_the_level_percentiles_read_off_the_histogram_are_numpys():
    rng = np.random.default_rng(3)
    for shape in [(64, 64, 3), (37, 53), (5, 7, 3), (1, 1)]:
        for low, high in [(0, 255), (0, 15), (200, 255), (90, 91)]:
            image = rng.integers(low, high + 1, shape).astype(np.uint8)
            np.testing.assert_allclose(level_percentiles(image), np.percentile(image, LEVEL_PERCENTILES))


def test_the_mirror_image_is_the_reversed_view_and_the_mirrored_grey_is_the_grey_of_the_mirror():
    from searcher.features.work_image import mirror, mirrored_work

    bgr = np.random.default_rng(3).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    assert np.array_equal(mirror(bgr), bgr[:, ::-1])
    assert np.array_equal(mirror(bgr.astype(np.float32)), bgr[:, ::-1].astype(np.float32))
    assert np.array_equal(mirrored_work(WorkImage(bgr)).grey, WorkImage(np.ascontiguousarray(bgr[:, ::-1])).grey)
