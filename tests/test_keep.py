"""Keep rules: the original beats its upscaled and heavily recompressed copies; reference folders win."""

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from searcher.keep import RULES, choose, choose_with_references, jpeg_quality, quality_class, read_facts

from conftest import PHOTOS


@dataclass
class Copy:
    path: str
    width: int
    height: int
    size: int
    mtime_ns: int


def _write(path: Path, bgr: np.ndarray, quality: int | None = None, mtime: float | None = None) -> Copy:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if quality is not None else []
    assert cv2.imwrite(str(path), bgr, params)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    st = path.stat()
    return Copy(str(path), bgr.shape[1], bgr.shape[0], st.st_size, st.st_mtime_ns)


def _original(index: int, width: int = 451) -> np.ndarray:
    image = cv2.imread(str(PHOTOS[index]))
    height = round(image.shape[0] * width / image.shape[1])
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("index", [0, 3, 7, 11])
def test_original_beats_its_2x_upscaled_q70_copy_and_a_1280x800_q40_screenshot(tmp_path, index):
    """The issue's case: largest-resolution-first kept the upscaled copies. Copies are made older
    than the original, so age cannot be what decides."""
    original = _original(index)
    h, w = original.shape[:2]
    upscaled = cv2.resize(original, (2 * w, 2 * h), interpolation=cv2.INTER_CUBIC)
    scale = min(1280 / w, 800 / h)
    screenshot = cv2.resize(original, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_LINEAR)
    members = [
        _write(tmp_path / "up.jpg", upscaled, 70, mtime=1_000_000),
        _write(tmp_path / "shot.jpg", screenshot, 40, mtime=1_000_000),
        _write(tmp_path / "original.jpg", original, 95, mtime=2_000_000),
    ]
    keep, reason = choose(members, "original")
    assert members[keep].path.endswith("original.jpg"), reason
    assert "most real detail" in reason
    largest, _ = choose(members, "largest")
    assert not members[largest].path.endswith("original.jpg")  # the old rule's mistake, still available on demand


@pytest.mark.parametrize("index", [1, 5])
def test_a_genuinely_larger_original_beats_its_downscaled_and_cropped_copies(tmp_path, index):
    big = _original(index, width=1200)
    members = [
        _write(tmp_path / "big.jpg", big, 90, mtime=2_000_000),
        _write(tmp_path / "half.jpg", cv2.resize(big, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA), 95, mtime=1_000_000),
        _write(tmp_path / "crop.jpg", big[100:-100, 150:-150], 95, mtime=1_000_000),
    ]
    keep, reason = choose(members, "original")
    assert members[keep].path.endswith("big.jpg"), reason


def test_same_size_copies_keep_the_better_jpeg_quality_then_the_oldest(tmp_path):
    image = _original(2, width=600)
    q40 = _write(tmp_path / "q40.jpg", image, 40, mtime=1_000_000)
    q92 = _write(tmp_path / "q92.jpg", image, 92, mtime=2_000_000)
    keep, reason = choose([q40, q92], "original")
    assert keep == 1 and "quality" in reason
    again = _write(tmp_path / "q90.jpg", image, 90, mtime=3_000_000)
    keep, reason = choose([again, q92], "original")
    assert keep == 1 and "oldest" in reason


def test_jpeg_quality_is_read_from_the_quantization_tables(tmp_path):
    image = _original(0)
    for quality in (40, 70, 92):
        path = _write(tmp_path / f"q{quality}.jpg", image, quality).path
        with Image.open(path) as im:
            assert abs(jpeg_quality(im.quantization) - quality) <= 1
    png = _write(tmp_path / "x.png", image).path
    assert read_facts(png).quality is None and quality_class(None) == 0
    assert [quality_class(q) for q in (95, 70, 40)] == [0, 1, 2]


def test_oldest_and_newest_prefer_the_exif_capture_time_over_mtime(tmp_path):
    image = Image.fromarray(_original(0)[:, :, ::-1])
    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = "2001:02:03 04:05:06"
    image.save(tmp_path / "captured.jpg", exif=exif)
    image.save(tmp_path / "plain.jpg")
    os.utime(tmp_path / "plain.jpg", (1_500_000_000, 1_500_000_000))  # 2017, after 2001
    os.utime(tmp_path / "captured.jpg", (1_600_000_000, 1_600_000_000))
    members = [
        Copy(str(tmp_path / n), image.width, image.height, 1, (tmp_path / n).stat().st_mtime_ns)
        for n in ("plain.jpg", "captured.jpg")
    ]
    keep, reason = choose(members, "oldest")
    assert keep == 1 and "captured 2001-02-03" in reason
    keep, _ = choose(members, "newest")
    assert keep == 0


def test_shortest_path_and_unknown_rule():
    members = [Copy("/a/bb/c.jpg", 1, 1, 1, 1), Copy("/a/c.jpg", 1, 1, 1, 1)]
    assert choose(members, "shortest-path")[0] == 1
    assert set(RULES) == {"original", "largest", "oldest", "newest", "shortest-path"}
    with pytest.raises(ValueError):
        choose(members, "biggest")


def test_an_unreadable_copy_is_never_kept_by_the_original_rule(tmp_path):
    image = _original(4)
    small = _write(tmp_path / "small.jpg", cv2.resize(image, None, fx=0.5, fy=0.5), 90)
    gone = Copy(str(tmp_path / "gone.jpg"), image.shape[1], image.shape[0], 10, 1)
    keep, _ = choose([gone, small], "original")
    assert keep == 1


def test_reference_folder_members_are_kept_whatever_the_rule(tmp_path):
    ref = tmp_path / "ref"
    ref.mkdir()
    image = _original(6)
    members = [
        _write(tmp_path / "big.jpg", cv2.resize(image, None, fx=2, fy=2), 95),
        _write(ref / "small.jpg", image, 60),
        _write(ref / "small2.jpg", image, 50),
    ]
    keep, reason, protected = choose_with_references(members, "largest", [str(ref)])
    assert keep in (1, 2) and protected == {1, 2} and "reference folder" in reason
    keep, reason, protected = choose_with_references(members, "largest", [str(tmp_path / "elsewhere")])
    assert keep == 0 and protected == set()


def test_each_member_is_compared_with_the_least_detailed_of_the_members_much_smaller_than_it(monkeypatch):
    """Step 1 of the recipe, checked against its plain statement on a random group with repeated
    sizes and upscaled members (the detail ratio is faked by a table: who was compared with whom)."""
    from searcher import keep

    rng = np.random.default_rng(5)
    sides = rng.choice([100, 110, 150, 200, 260, 400], size=60)
    members = [Copy(f"/m{k}.jpg", int(s), int(s), 1000, 0) for k, s in enumerate(sides)]
    readable = [bool(r) for r in rng.random(60) > 0.1]
    upscaled = {(k, j) for k in range(60) for j in range(60) if rng.random() < 0.05}  # (larger, smaller) pairs
    compared = []

    def grey(path):  # as many pixels as the member, its position in the first
        k = int(path[2:-4])
        return np.full(int(sides[k]) ** 2, k, np.float32)

    def ratio(larger, smaller, smaller_band=None):
        compared.append((int(larger[0]), int(smaller[0])))
        return 0.0 if compared[-1] in upscaled else 1.0

    monkeypatch.setattr(keep, "_grey", grey)
    monkeypatch.setattr(keep, "detail_ratio", ratio)
    monkeypatch.setattr(keep, "own_top_band", lambda smaller: 1.0)

    detail, upscaled_from = keep.real_detail(members, readable)

    expected, want = [], [float(s * s) if ok else 0.0 for s, ok in zip(sides, readable)]
    order = sorted(range(60), key=lambda k: sides[k] ** 2)
    for rank, k in enumerate(order):
        smaller = [j for j in order[:rank] if readable[j] and sides[k] ** 2 > keep.SIZE_STEP * sides[j] ** 2]
        if not readable[k]:
            continue
        for j in sorted(smaller, key=lambda j: want[j])[: keep.MAX_COMPARED]:
            expected.append((k, j))
            if (k, j) in upscaled:
                want[k] = want[j]
                break
    assert compared == expected and detail == want
    assert all((k, j) in upscaled for k, j in upscaled_from.items())


def test_a_videos_frames_and_crops_in_one_group_read_the_video_once(monkeypatch):
    """Their path is the video's, which is not an image: a group of 8,474 frames read it for each."""
    from searcher import keep

    reads = []
    monkeypatch.setattr(keep, "_grey", lambda path: reads.append(path))  # None: not an image
    video = "/videos/street.avi"
    frames = [Copy(video, 768, 576, 1000, 0) for _ in range(300)] + [Copy(video, 120, 300, 1000, 0) for _ in range(20)]
    detail, upscaled_from = keep.real_detail(frames, [True] * len(frames))
    assert reads == [video] and upscaled_from == {} and detail[0] == 768 * 576
