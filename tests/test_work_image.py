"""The shared thumbnail: signatures made from it equal those of a direct reduction of the image."""

import cv2
import numpy as np

from searcher import images
from searcher.features.ae_numpy import preprocess
from searcher.features.thumbnail import ThumbnailExtractor
from searcher.features.work_image import SQUARE, WorkImage

from conftest import PHOTOS


def test_the_mse_thumbnail_and_the_ae_input_are_a_direct_reduction_to_one_uint8_step():
    for path in PHOTOS[:8]:
        bgr = images.load_image(path).bgr
        work = WorkImage(bgr)
        assert work.square.shape == (SQUARE, SQUARE, 3)
        direct = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), (16, 16), interpolation=cv2.INTER_AREA) / 255.0
        assert np.abs(ThumbnailExtractor().extract(work) - direct.ravel()).max() <= 1.5 / 255
        direct64 = cv2.resize(bgr, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
        shared64 = preprocess(work) * 0.25 + 0.5  # back to [0, 1] RGB, CHW
        assert np.abs(shared64.transpose(1, 2, 0)[:, :, ::-1] * 255 - direct64).max() <= 1.5


def test_an_extractor_gives_the_same_signature_from_an_array_and_from_a_work_image():
    from searcher.features import build_extractors

    bgr = images.load_image(PHOTOS[0]).bgr
    work = WorkImage(bgr)
    for extractor in build_extractors(("hist", "mse", "orb")):
        assert np.array_equal(extractor.extract(bgr), extractor.extract(work)), extractor.name
