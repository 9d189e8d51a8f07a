"""Smoke test of the real-edits bench: its ImageMagick recipes make valid files, and its AP is AP@10."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.realedits import average_precision
from bench.realedits_data import EDITS, _job, imagemagick

SAMPLE = sorted((Path(__file__).resolve().parents[1] / "sample_data" / "photos").glob("*.jpg"))


def _has_imagemagick() -> bool:
    try:
        imagemagick()
        return True
    except SystemExit:
        return False


@pytest.mark.skipif(not _has_imagemagick(), reason="ImageMagick is not installed (apt-get install -y imagemagick)")
@pytest.mark.parametrize("family,edit", [("grey", "bilevel_1bit"), ("geometric", "perspective"), ("screenshot", "window_light")])
def test_an_imagemagick_edit_makes_a_readable_copy(tmp_path, family, edit):
    original = tmp_path / "photo.jpg"
    shutil.copyfile(SAMPLE[0], original)
    recipe = next(e for e in EDITS[family] if e[0] == edit)
    out = tmp_path / f"copy.{recipe[2]}"
    _job(imagemagick(), original, original, family, recipe, out)
    with Image.open(out) as im, Image.open(original) as src:
        im.load()
        assert min(im.size) > 16
        if edit == "bilevel_1bit":
            assert set(np.unique(np.asarray(im.convert("L")))) <= {0, 255}
        if edit == "window_light":  # upscaled 2x, plus a frame
            assert im.size[0] > 2 * src.size[0] and im.size[1] > 2 * src.size[1]


def test_average_precision_at_10_divides_by_the_relevant_items_it_could_show():
    ranked = ["a", "x", "b"] + ["y"] * 7
    assert average_precision(ranked, {"a", "b"}) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert average_precision(["x"] * 10 + ["a"], {"a"}) == 0.0  # beyond 10 counts as missed
    many = {f"r{i}" for i in range(15)}
    assert average_precision(sorted(many)[:10], many) == pytest.approx(1.0)  # 10 relevant shown of 15: perfect
