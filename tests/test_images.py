"""Decoding: orientation, reduced decoding, and a clear reason for every kind of bad file."""

import os

import cv2
import numpy as np
import pytest
from PIL import Image

from searcher import images
from searcher.errors import ImageError

from conftest import PHOTOS


def test_decodes_a_photo_to_work_size_keeping_its_full_size():
    decoded = images.load_image(PHOTOS[0])
    full = cv2.imread(str(PHOTOS[0]))
    assert (decoded.height, decoded.width) == full.shape[:2]
    assert max(decoded.bgr.shape[:2]) <= images.WORK_SIZE
    assert decoded.bgr.dtype == np.uint8 and decoded.bgr.shape[2] == 3


def test_large_jpeg_is_decoded_reduced_but_reports_its_real_size(tmp_path):
    big = cv2.resize(cv2.imread(str(PHOTOS[0])), (4000, 3000))
    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), big)
    decoded = images.load_image(path)
    assert (decoded.width, decoded.height) == (4000, 3000)
    assert max(decoded.bgr.shape[:2]) == images.WORK_SIZE


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    im = Image.new("RGB", (400, 200), (200, 30, 30))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 on display
    im.save(path, exif=exif)
    decoded = images.load_image(path)
    assert (decoded.width, decoded.height) == (200, 400)
    assert decoded.bgr.shape[:2] == (400, 200)


def test_large_rotated_jpeg_reports_rotated_size(tmp_path):
    path = tmp_path / "rotated_big.jpg"
    im = Image.fromarray(cv2.resize(cv2.imread(str(PHOTOS[1]))[:, :, ::-1], (3000, 2000)))
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(path, exif=exif)
    decoded = images.load_image(path)
    assert (decoded.width, decoded.height) == (2000, 3000)
    assert decoded.bgr.shape[0] > decoded.bgr.shape[1]


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty file"),
        (b"this is a text file, not a picture\n", "not a recognised image"),
    ],
)
def test_bad_bytes_are_refused_with_a_reason(content, reason):
    with pytest.raises(ImageError, match=reason):
        images.decode(content)


def test_truncated_jpeg_is_refused():
    data = PHOTOS[0].read_bytes()
    with pytest.raises(ImageError, match="corrupt or truncated"):
        images.decode(data[: len(data) // 2])


def test_corrupt_png_is_refused():
    ok, png = cv2.imencode(".png", cv2.imread(str(PHOTOS[0])))
    data = bytearray(png.tobytes())
    data[200:4000] = b"\x00" * 3800
    with pytest.raises(ImageError, match="corrupt or truncated"):
        images.decode(bytes(data))


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    cv2.imwrite(str(path), np.zeros((6000, 5000), np.uint8))  # 30 MP, a few KB on disk
    with pytest.raises(ImageError, match="30 MP.*max-megapixels 20"):
        images.load_image(path, max_megapixels=20)


def test_unreadable_file_says_permission_denied(tmp_path, monkeypatch):
    path = tmp_path / "locked.jpg"
    path.write_bytes(PHOTOS[0].read_bytes())
    real_open = os.open  # files are opened with os.open (O_NONBLOCK: a FIFO must not block)

    def refusing_open(file, *args, **kwargs):
        if os.fspath(file) == str(path):
            raise PermissionError(13, "Permission denied")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("os.open", refusing_open)
    with pytest.raises(ImageError, match="permission denied"):
        images.load_image(path)


def test_unicode_file_name_is_read(tmp_path):
    path = tmp_path / "사진 é 🖼.jpg"
    path.write_bytes(PHOTOS[0].read_bytes())
    assert images.load_image(path).width > 0


def test_scan_finds_images_recursively_and_skips_hidden_and_other_files(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for name in ("a/one.JPG", "a/b/two.png", "a/b/three.webp", ".hidden/four.jpg", "a/notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    found = sorted(os.path.relpath(f.path, tmp_path) for f in images.scan_files([tmp_path]))
    assert found == ["a/b/three.webp", "a/b/two.png", "a/one.JPG"]
