"""Regenerate sample_data/: real photos plus near-duplicate copies of some of them.

Provenance only (tests read the files this writes; they do not run it).

    .venv/bin/python sample_data/make_sample_data.py [--corpus /work/shared/corpus/photos]

Recipe
------
photos/   24 originals. Each is resized so its long side is 640 px (cv2.INTER_AREA when
          shrinking, cv2.INTER_CUBIC when enlarging) and saved as JPEG quality 90.
          * 6 colour photographs bundled with scikit-image (no pooch download needed).
          * the first 18 colour photographs of sorted(os.listdir(CORPUS)), skipping the
            ones listed in CORPUS_SKIP (not photographs); the corpus file stem is kept.
copies/   near-duplicates of 9 originals (chosen with a fixed seed), 2 or 3 each, made from
          the decoded JPEG in photos/ and named <original stem>__<transform>.<ext>.
manifest.csv  path,original,transform (paths relative to sample_data/).

Everything is deterministic: fixed seed, fixed lists, sorted inputs.
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import skimage.data

SEED = 20240601
LONG_SIDE = 640
JPEG_QUALITY = 90
N_CORPUS = 18
N_COPIED = 9
HERE = Path(__file__).resolve().parent
DEFAULT_CORPUS = "/work/shared/corpus/photos"

# scikit-image photographs bundled in the wheel (stem -> loader returning RGB uint8).
# Left out: motorcycle_right (a near-duplicate of motorcycle_left), cat (== chelsea),
# immunohistochemistry and retina (scientific colour images), and the greyscale,
# texture, drawn or synthetic images (camera, brick, grass, gravel, logo, colorwheel...).
SKIMAGE_PHOTOS = {
    "skimage_astronaut": skimage.data.astronaut,
    "skimage_chelsea": skimage.data.chelsea,
    "skimage_coffee": skimage.data.coffee,
    "skimage_rocket": skimage.data.rocket,
    "skimage_motorcycle_left": lambda: skimage.data.stereo_motorcycle()[0],
    "skimage_hubble_deep_field": skimage.data.hubble_deep_field,
}

# Corpus files that are not photographs (checked by eye); greyscale files are skipped
# automatically by is_colour().
CORPUS_SKIP = {
    "lomiri_umang_by_Abhishek_Mudgal.jpg",  # computer-generated colour gradient
}

# Near-duplicate transforms: name -> (function on a BGR image, file extension, JPEG quality).
def resize50(img, rng):
    h, w = img.shape[:2]
    return cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)


def crop10(img, rng):
    """Keep the central 90% of width and height (5% cut off each border)."""
    h, w = img.shape[:2]
    dy, dx = round(h * 0.05), round(w * 0.05)
    return img[dy:h - dy, dx:w - dx]


def rot90(img, rng):
    return cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)


def identity(img, rng):
    return img


def bright(img, rng):
    """+40 on every channel, clipped (cv2.convertScaleAbs alpha=1, beta=40).

    Not +40 on HSV V: that turns dark near-grey pixels into saturated colour blotches."""
    return cv2.convertScaleAbs(img, alpha=1.0, beta=40)


def text(img, rng):
    """A big white caption with a thin black outline, at a seeded position."""
    out = img.copy()
    h, w = out.shape[:2]
    caption = str(rng.choice(["SAMPLE", "COPYRIGHT", "REPOST", "MEME TEXT"]))
    font, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, w / 320.0, max(2, w // 100)
    (tw, th), _ = cv2.getTextSize(caption, font, scale, thick)
    x = int(rng.integers(0, max(1, w - tw)))
    y = int(rng.integers(th + 5, max(th + 6, h - 5)))
    cv2.putText(out, caption, (x, y), font, scale, (0, 0, 0), thick + 4, cv2.LINE_AA)
    cv2.putText(out, caption, (x, y), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def hue(img, rng):
    """Rotate the hue by 40 degrees (20 of OpenCV's 180 steps)."""
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + 20) % 180).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def flip(img, rng):
    return cv2.flip(img, 1)


TRANSFORMS = {
    # name: (function, extension, JPEG quality or None)
    "resize50": (resize50, "jpg", JPEG_QUALITY),
    "crop10": (crop10, "jpg", JPEG_QUALITY),
    "rot90": (rot90, "jpg", JPEG_QUALITY),
    "jpeg30": (identity, "jpg", 30),
    "bright": (bright, "jpg", JPEG_QUALITY),
    "text": (text, "jpg", JPEG_QUALITY),
    "hue": (hue, "jpg", JPEG_QUALITY),
    "flip": (flip, "jpg", JPEG_QUALITY),
    "png": (identity, "png", None),
}


def is_colour(bgr: np.ndarray) -> bool:
    """False for greyscale images stored as 3 channels (mean |channel - grey| < 2)."""
    grey = bgr.mean(axis=2, keepdims=True)
    return float(np.abs(bgr.astype(np.float32) - grey).mean()) >= 2.0


def to_long_side(bgr: np.ndarray, long_side: int = LONG_SIDE) -> np.ndarray:
    h, w = bgr.shape[:2]
    s = long_side / max(h, w)
    if s == 1:
        return bgr
    size = (max(1, round(w * s)), max(1, round(h * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    return cv2.resize(bgr, size, interpolation=interp)


def write(path: Path, bgr: np.ndarray, quality: int | None) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if quality else [cv2.IMWRITE_PNG_COMPRESSION, 9]
    if not cv2.imwrite(str(path), bgr, params):
        raise RuntimeError(f"could not write {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=DEFAULT_CORPUS, help="folder of corpus photos")
    ap.add_argument("--out", default=str(HERE), help="output folder (default: this folder)")
    args = ap.parse_args()
    out = Path(args.out)
    photos_dir, copies_dir = out / "photos", out / "copies"
    for d in (photos_dir, copies_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)

    originals: list[str] = []  # stems, in a fixed order
    for stem, load in SKIMAGE_PHOTOS.items():
        rgb = load()
        bgr = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2BGR)
        write(photos_dir / f"{stem}.jpg", to_long_side(bgr), JPEG_QUALITY)
        originals.append(stem)

    taken = 0
    for name in sorted(os.listdir(args.corpus)):
        if taken == N_CORPUS:
            break
        if name in CORPUS_SKIP:
            print(f"skip {name}: not a photograph")
            continue
        bgr = cv2.imread(os.path.join(args.corpus, name), cv2.IMREAD_COLOR)
        if bgr is None or not is_colour(bgr):
            print(f"skip {name}: unreadable or greyscale")
            continue
        stem = Path(name).stem
        write(photos_dir / f"{stem}.jpg", to_long_side(bgr), JPEG_QUALITY)
        originals.append(stem)
        taken += 1
    if taken < N_CORPUS:
        raise SystemExit(f"only {taken} corpus photos found in {args.corpus}")

    # Copies: 9 originals chosen with the seed; the transforms are dealt out from a seeded
    # permutation in turn, so every transform appears 2-3 times and never twice per original.
    rng = np.random.default_rng(SEED)
    chosen = sorted(rng.choice(len(originals), size=N_COPIED, replace=False))
    counts = [3] * 6 + [2] * (N_COPIED - 6)  # 24 copies
    names = list(TRANSFORMS)
    order = [names[i] for i in rng.permutation(len(names))]
    rows, slot = [], 0
    for idx, n in zip(chosen, counts):
        stem = originals[idx]
        src = cv2.imread(str(photos_dir / f"{stem}.jpg"), cv2.IMREAD_COLOR)
        for _ in range(n):
            tname = order[slot % len(order)]
            slot += 1
            fn, ext, quality = TRANSFORMS[tname]
            rel = f"copies/{stem}__{tname}.{ext}"
            write(out / rel, fn(src, rng), quality)
            rows.append((rel, f"photos/{stem}.jpg", tname))

    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["path", "original", "transform"])
        w.writerows(rows)
    print(f"{len(originals)} photos, {len(rows)} copies -> {out}")


if __name__ == "__main__":
    main()
