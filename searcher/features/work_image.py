"""The working image of one picture and the smaller images the signatures are computed from.

Ingest decodes a file once to its working image (long side <= images.WORK_SIZE); several
signatures then need the same smaller versions of it. A WorkImage makes each of them once, on
first use, and every extractor that reads it shares them:

    bgr      the working image itself (uint8 H x W x 3)
    grey     bgr -> grey
    square   SQUARE x SQUARE BGR, aspect ratio ignored: bilinear to 2 SQUARE, then a 2x box
             reduction (INTER_AREA, whole-number factor), within 0.3 grey levels (mean) of a direct
             INTER_AREA resize at a quarter of its cost (OpenCV's INTER_AREA takes a slow path for
             fractional factors: 2-5 ms of a 640 px image). hist, mse (16 x 16) and ae (64 x 64)
             are made from it by whole-number reductions. A cnn input (224 x 224) can be taken
             from it too.
"""

from __future__ import annotations

from functools import cached_property

import cv2
import numpy as np

SQUARE = 256  # a multiple of 16 (mse) and of 64 (ae), and >= 224 (a cnn input)


class WorkImage:
    __slots__ = ("bgr", "__dict__")

    def __init__(self, bgr: np.ndarray):
        self.bgr = bgr

    @cached_property
    def grey(self) -> np.ndarray:
        return cv2.cvtColor(self.bgr, cv2.COLOR_BGR2GRAY) if self.bgr.ndim == 3 else self.bgr

    @cached_property
    def square(self) -> np.ndarray:
        bgr = self.bgr if self.bgr.ndim == 3 else cv2.cvtColor(self.bgr, cv2.COLOR_GRAY2BGR)
        if max(bgr.shape[:2]) > 3 * SQUARE:  # larger than a working image: bilinear would alias
            return cv2.resize(bgr, (SQUARE, SQUARE), interpolation=cv2.INTER_AREA)
        double = cv2.resize(bgr, (2 * SQUARE, 2 * SQUARE), interpolation=cv2.INTER_LINEAR)
        return cv2.resize(double, (SQUARE, SQUARE), interpolation=cv2.INTER_AREA)


def as_work(image: np.ndarray | WorkImage) -> WorkImage:
    """A WorkImage as it is, or a fresh one around a BGR array."""
    return image if isinstance(image, WorkImage) else WorkImage(np.asarray(image))


def mirror(image: np.ndarray) -> np.ndarray:
    """The left-right mirror image, contiguous: cv2.flip (a 640 x 480 BGR image in 0.5 ms against
    3 ms for numpy's copy of the reversed view; the same values)."""
    return cv2.flip(np.asarray(image), 1)


def mirrored_work(work: WorkImage) -> WorkImage:
    """A WorkImage of the grey image mirrored, for extractors that read only `grey` (ORB): the
    grey of the mirrored colour image is the mirrored grey, at a third of the pixels to flip."""
    return WorkImage(mirror(work.grey))


LEVEL_PERCENTILES = (1.0, 99.0)  # auto-level: these percentiles of all channels go to 0 and 255
MIN_SPREAD = 8.0  # an image flatter than this (grey levels between the percentiles) is left alone


def level_percentiles(image: np.ndarray) -> tuple[float, float]:
    """np.percentile(image, LEVEL_PERCENTILES) of a uint8 image (linear interpolation), read off its
    histogram: the same two numbers at a tenth of the cost of sorting the pixels."""
    counts = np.bincount(np.asarray(image, dtype=np.uint8).ravel(), minlength=256).cumsum()
    n = int(counts[-1])
    out = []
    for q in LEVEL_PERCENTILES:
        position = q / 100.0 * (n - 1)
        below = int(np.floor(position))
        at = int(np.searchsorted(counts, below + 1))  # the value of the below-th smallest pixel (0-based)
        after = int(np.searchsorted(counts, min(below + 2, n)))
        out.append(at + (position - below) * (after - at))
    return out[0], out[1]


def auto_level(image: np.ndarray) -> np.ndarray:
    """Stretch the levels of a uint8 image so that its 1st and 99th percentiles (all channels
    together, so hues keep their ratios) become 0 and 255: a near-black, dimmed or washed-out copy
    then looks like its original; an ordinary photo barely changes. (A lookup table of the per-value
    formula (v - low) * 255 / (high - low), rounded and clipped.)"""
    low, high = level_percentiles(image)
    if high - low < MIN_SPREAD:
        return image
    values = (np.arange(256, dtype=np.float32) - np.float64(low)) * (255.0 / (high - low))
    return cv2.LUT(image, np.clip(values + 0.5, 0, 255).astype(np.uint8))
