"""The `original` keep rule (searcher/keep.py): how its upscaling test separates, and how often it keeps the original.

    .venv/bin/python -m bench.keep_rule          # ~1 min on 2 cores; prints both tables

Tuning set (the threshold in searcher.keep was chosen on it): /work/shared/corpus/photos-style
folders given with --tuning (default: the corpus photos that are not in sample_data). Each photo,
reduced to 600 px, gets a 2x cubic q70 copy, a 1280x800 bilinear q40 copy and a 1.5x PNG copy
(upscaled), and is itself compared as the genuine larger copy of its half-size, 80 % crop and q50
versions. Printed: the detail ratio of each kind and how many fall below UPSCALED_RATIO.

Evaluation set (never tuned on): sample_data/photos. Each photo at 451 px wide with a 2x q70 copy and
a 1280x800 q40 copy (both made older than the original, so age cannot decide), and each photo at
1200 px with its half-size and cropped copies: how often `original` keeps the original.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from searcher import keep

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "photos"
CORPUS = Path("/work/shared/corpus/photos")


@dataclass
class Copy:
    path: str
    width: int
    height: int
    size: int
    mtime_ns: int


def write(path: Path, bgr: np.ndarray, quality: int | None = None, mtime: float | None = None) -> Copy:
    cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, quality] if quality else [])
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    st = path.stat()
    return Copy(str(path), bgr.shape[1], bgr.shape[0], st.st_size, st.st_mtime_ns)


def at_width(image: np.ndarray, width: int) -> np.ndarray:
    return cv2.resize(image, (width, round(image.shape[0] * width / image.shape[1])), interpolation=cv2.INTER_AREA)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_GRAYSCALE).astype(
        np.float32
    )


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)


def tuning(photos: list[Path]) -> None:
    ratios: dict[str, list[float]] = {}
    for photo in photos:
        original = at_width(cv2.imread(str(photo)), 600)
        h, w = original.shape[:2]
        small = jpeg(original, 92)
        scale = min(1280 / w, 800 / h)
        upscaled = {
            "2x q70": jpeg(cv2.resize(original, (2 * w, 2 * h), interpolation=cv2.INTER_CUBIC), 70),
            "1280x800 q40": jpeg(cv2.resize(original, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_LINEAR), 40),
            "1.5x png": grey(cv2.resize(original, (w * 3 // 2, h * 3 // 2), interpolation=cv2.INTER_CUBIC)),
        }
        for name, big in upscaled.items():
            ratios.setdefault(f"upscaled {name}", []).append(keep.detail_ratio(big, small))
        genuine = {
            "vs its half": jpeg(cv2.resize(original, (w // 2, h // 2), interpolation=cv2.INTER_AREA), 90),
            "vs its 80% crop": small[h // 10 : h - h // 10, w // 10 : w - w // 10],
            "q50 vs its half": None,
        }
        genuine["q50 vs its half"] = genuine["vs its half"]
        for name, smaller in genuine.items():
            larger = jpeg(original, 50) if name.startswith("q50") else small
            ratios.setdefault(f"genuine {name}", []).append(keep.detail_ratio(larger, smaller))
    print(f"detail ratio on {len(photos)} tuning photos (UPSCALED_RATIO = {keep.UPSCALED_RATIO})")
    print(f"{'copy':28} {'n':>3} {'p10':>6} {'median':>7} {'p90':>6} {'below':>6}")
    for name, values in ratios.items():
        v = np.array(values)
        below = int((v < keep.UPSCALED_RATIO).sum())
        print(f"{name:28} {len(v):3d} {np.percentile(v, 10):6.3f} {np.median(v):7.3f} {np.percentile(v, 90):6.3f} {below:6d}")


def evaluation(photos: list[Path]) -> None:
    kept = {"original vs 2x q70 + 1280x800 q40": 0, "1200 px vs its half + crop": 0}
    with tempfile.TemporaryDirectory() as folder:
        t = Path(folder)
        for photo in photos:
            o = at_width(cv2.imread(str(photo)), 451)
            h, w = o.shape[:2]
            s = min(1280 / w, 800 / h)
            members = [
                write(t / "up.jpg", cv2.resize(o, (2 * w, 2 * h), interpolation=cv2.INTER_CUBIC), 70, 1e6),
                write(t / "shot.jpg", cv2.resize(o, (round(w * s), round(h * s))), 40, 1e6),
                write(t / "original.jpg", o, 95, 2e6),
            ]
            kept["original vs 2x q70 + 1280x800 q40"] += keep.choose(members, "original")[0] == 2
            big = at_width(cv2.imread(str(photo)), 1200)
            members = [
                write(t / "big.jpg", big, 90, 2e6),
                write(t / "half.jpg", cv2.resize(big, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA), 95, 1e6),
                write(t / "crop.jpg", big[100:-100, 150:-150], 95, 1e6),
            ]
            kept["1200 px vs its half + crop"] += keep.choose(members, "original")[0] == 0
    print(f"\nkeep rule 'original' on {len(photos)} evaluation photos (sample_data/photos)")
    for name, n in kept.items():
        print(f"  {name:40} original kept {n}/{len(photos)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuning", type=Path, default=CORPUS, help="folder of tuning photos")
    args = parser.parse_args()
    evaluation_names = {p.name for p in SAMPLE.glob("*.jpg")}
    tuning_photos = sorted(p for p in args.tuning.glob("*.jpg") if p.name not in evaluation_names)
    if tuning_photos:
        tuning(tuning_photos)
    else:
        print(f"no tuning photos in {args.tuning}: tuning table skipped")
    evaluation(sorted(SAMPLE.glob("*.jpg")))


if __name__ == "__main__":
    main()
