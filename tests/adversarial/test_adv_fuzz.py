"""Fuzzing (bounded): the image decoder and the undo-log reader meet arbitrary bytes.

images.decode of mutated JPEG/PNG/TIFF bytes either succeeds or raises ImageError: never another
exception, never a hang. The undo-log reader turns any file into entries or one-line
SearcherErrors (issue #14, "fuzz test of the decoders and the undo-log reader")."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from searcher import images
from searcher.errors import ImageError, SearcherError

from helpers import PHOTOS

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
PER_CASE_SECONDS = 5.0


def _seed(ext: str) -> bytes:
    image = cv2.resize(cv2.imread(str(PHOTOS[0])), (96, 64), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


SEEDS = {ext: _seed(ext) for ext in (".jpg", ".png", ".tif")}


@st.composite
def mutated(draw, ext):
    """The seed file of one format with a few bytes flipped, a slice cut out or a tail chopped off."""
    data = bytearray(SEEDS[ext])
    for _ in range(draw(st.integers(0, 8))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        start = draw(st.integers(0, len(data) - 1))
        del data[start : start + draw(st.integers(1, 64))]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def _decode_or_image_error(data: bytes) -> None:
    clock = time.monotonic()
    try:
        result = images.decode(data)
    except ImageError as e:
        assert "\n" not in str(e) and str(e)
    else:
        assert result.bgr.dtype == np.uint8 and result.bgr.ndim == 3 and result.bgr.shape[2] == 3
    assert time.monotonic() - clock < PER_CASE_SECONDS


@pytest.mark.parametrize("ext", sorted(SEEDS))
@FUZZ
@given(data=st.data())
def test_decoding_mutated_files_fails_only_with_image_error(ext, data):
    _decode_or_image_error(data.draw(mutated(ext)))


@FUZZ
@given(blob=st.binary(max_size=2048))
def test_decoding_arbitrary_bytes_fails_only_with_image_error(blob):
    _decode_or_image_error(blob)


def _read_log(path):
    try:
        from searcher.moves import read_log
    except ImportError:  # before the storage seam split dups.py
        from searcher.dups import read_log
    return read_log(path)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["op", "from", "to", "size", "sha256", "format", "x"]), inner, max_size=6)
    ),
    max_leaves=12,
)


def _check_log(tmp_path_factory, content: bytes) -> None:
    path = tmp_path_factory.mktemp("log") / "moves.jsonl"
    path.write_bytes(content)
    try:
        result = _read_log(path)
    except SearcherError as e:
        assert "\n" not in str(e) and str(e)
        return
    entries = result if isinstance(result, list) else result.entries
    for entry in entries:
        assert isinstance(entry["from"], str) and isinstance(entry["to"], str) and isinstance(entry["size"], int)


@FUZZ
@given(content=st.binary(max_size=512))
def test_reading_arbitrary_bytes_as_a_log(tmp_path_factory, content):
    _check_log(tmp_path_factory, content)


@FUZZ
@given(lines=st.lists(JSON_VALUES, max_size=5))
def test_reading_arbitrary_json_lines_as_a_log(tmp_path_factory, lines):
    _check_log(tmp_path_factory, "".join(json.dumps(v) + "\n" for v in lines).encode())
