"""The benchmark's image sets, generated reproducibly (fixed seed, versioned generator) under bench/work/.

Accuracy set (DATASET_VERSION), Copydays / DISC21 style:
  originals/  74 real photos: the 56 of ../shared/corpus/photos (bytes as shipped) and 18 of
              scikit-image's bundled photos (PNG/JPEG as shipped; synthetic images left out).
  copies/<family>/  one transformed copy of every original per family (TRANSFORMS below), made
              from the full-size original and written as JPEG quality 90 (the jpeg families use their
              own quality); random parameters come from default_rng([SEED, family, original]).
  distractors/ the even frames of vtest.avi (398, JPEG q90, 768x576) and the "b" side of each
              natural pair.
  natural/    queries with real near duplicates: the "a" side of ../shared/corpus/pairs/pairs.csv
              (+ scikit-image's motorcycle_right, whose twin motorcycle_left is an original), and
              every 10th odd frame of vtest.avi (its neighbours, the even frames before and after, are
              in the catalog).
  The catalog to search is originals/ + distractors/ (485 images).

Speed sets (SPEED_VERSION): the same photos at three sizes, see make_speed_sets().
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from bench.common import CORPUS, SEED, WORK, log

DATASET_VERSION = "1"
SPEED_VERSION = "2"  # 2: more files per set, so that starting 2 worker processes is amortised

SKIMAGE_PHOTOS = (
    "astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png", "coffee.png",
    "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png", "motorcycle_left.png",
    "page.png", "retina.jpg", "rocket.jpg", "text.png",
)  # fmt: skip
VIDEO = CORPUS / "video" / "vtest.avi"
VIDEO_QUERY_STRIDE = 10


def skimage_data() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


# ---------------------------------------------------------------- transforms
# Each takes the full-size BGR original and an rng, and returns (image, jpeg_quality).


def _jpeg_q(q: int):
    return lambda img, rng: (img, q)


def _resize(f: float):
    def t(img, rng):
        h, w = img.shape[:2]
        interp = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC
        return cv2.resize(img, (max(8, round(w * f)), max(8, round(h * f))), interpolation=interp), 90

    return t


def _crop_box(img, keep_area: float, rng):
    h, w = img.shape[:2]
    side = np.sqrt(keep_area)
    kh, kw = max(8, int(h * side)), max(8, int(w * side))
    y0 = int(rng.integers(0, h - kh + 1))
    x0 = int(rng.integers(0, w - kw + 1))
    return img[y0 : y0 + kh, x0 : x0 + kw]


def _crop(removed: float):
    """Remove `removed` of the area: keep a random window with the same aspect ratio."""
    return lambda img, rng: (_crop_box(img, 1.0 - removed, rng), 90)


def _rotate_img(img, angle):
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def _rotate(degrees: float):
    """Rotate about the centre by +-degrees (random sign), same canvas, black corners."""
    return lambda img, rng: (_rotate_img(img, float(rng.choice([-1, 1])) * degrees), 90)


def _brightness(img, rng):
    delta = float(rng.choice([-1, 1])) * 45.0
    return cv2.convertScaleAbs(img, alpha=1.0, beta=delta), 90


def _contrast(img, rng):
    alpha = float(rng.choice([0.55, 1.6]))
    return cv2.convertScaleAbs(img, alpha=alpha, beta=128.0 * (1.0 - alpha)), 90


def _gamma(img, rng):
    g = float(rng.choice([0.5, 2.0]))
    lut = np.clip(((np.arange(256) / 255.0) ** g) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.LUT(img, lut), 90


def _grey(img, rng):
    return cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR), 90


def _blur(img, rng):
    """Gaussian blur, sigma = 0.5% of the long side (3.2 px at the 640 px working size)."""
    sigma = 0.005 * max(img.shape[:2])
    return cv2.GaussianBlur(img, (0, 0), sigma), 90


def _noise(img, rng):
    noisy = img.astype(np.float32) + rng.normal(0.0, 20.0, img.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8), 90


WORDS = ("COPYRIGHT", "near duplicate", "sample text", "SALE 50%", "#meme", "breaking news", "2024-06-11", "do not copy")


def _text(img, rng):
    """Three lines of text, height ~7% of the image each, random colours and positions."""
    out = img.copy()
    h, w = out.shape[:2]
    for _ in range(3):
        words = " ".join(rng.choice(WORDS, size=2))
        scale = 0.07 * h / 22.0
        thickness = max(1, int(round(scale * 2)))
        (tw, th), _ = cv2.getTextSize(words, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        x = int(rng.integers(0, max(1, w - tw)))
        y = int(rng.integers(th, max(th + 1, h)))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.putText(out, words, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)
    return out, 90


_LOGO: np.ndarray | None = None


def _logo(img, rng):
    """scikit-image's logo (RGBA), 30% of the width, alpha-blended in a random corner."""
    global _LOGO
    if _LOGO is None:
        _LOGO = cv2.imread(str(skimage_data() / "logo.png"), cv2.IMREAD_UNCHANGED)
    h, w = img.shape[:2]
    lw = max(8, int(0.3 * w))
    logo = cv2.resize(_LOGO, (lw, lw), interpolation=cv2.INTER_AREA)
    lh = min(lw, h)
    logo = logo[:lh]
    corner = int(rng.integers(0, 4))
    y0 = 0 if corner < 2 else h - lh
    x0 = 0 if corner % 2 == 0 else w - lw
    out = img.copy()
    alpha = logo[:, :, 3:4].astype(np.float32) / 255.0
    region = out[y0 : y0 + lh, x0 : x0 + lw].astype(np.float32)
    out[y0 : y0 + lh, x0 : x0 + lw] = (alpha * logo[:, :, :3] + (1 - alpha) * region).astype(np.uint8)
    return out, 90


def _border(img, rng):
    """A solid frame 10% of the size on every side, in a random colour."""
    h, w = img.shape[:2]
    color = [int(c) for c in rng.integers(0, 256, 3)]
    by, bx = int(0.1 * h), int(0.1 * w)
    return cv2.copyMakeBorder(img, by, by, bx, bx, cv2.BORDER_CONSTANT, value=color), 90


def _aspect(img, rng):
    """Stretch one axis by 1.5x (width or height at random)."""
    h, w = img.shape[:2]
    if rng.random() < 0.5:
        size = (int(w * 1.5), h)
    else:
        size = (w, int(h * 1.5))
    return cv2.resize(img, size, interpolation=cv2.INTER_CUBIC), 90


def _combo1(img, rng):
    """crop 25% + resize 0.5 + brightness, saved at JPEG 50."""
    out = _crop_box(img, 0.75, rng)
    out, _ = _resize(0.5)(out, rng)
    out, _ = _brightness(out, rng)
    return out, 50


def _combo2(img, rng):
    """rotation 5 deg + text overlay + gamma + horizontal flip, saved at JPEG 75."""
    out, _ = _rotate(5.0)(img, rng)
    out, _ = _text(out, rng)
    out, _ = _gamma(out, rng)
    return np.ascontiguousarray(out[:, ::-1]), 75


TRANSFORMS: dict[str, Callable] = {
    "jpeg10": _jpeg_q(10),
    "jpeg30": _jpeg_q(30),
    "jpeg50": _jpeg_q(50),
    "jpeg75": _jpeg_q(75),
    "resize0.25": _resize(0.25),
    "resize0.5": _resize(0.5),
    "resize2": _resize(2.0),
    "crop10": _crop(0.10),
    "crop25": _crop(0.25),
    "crop50": _crop(0.50),
    "rot5": _rotate(5.0),
    "rot15": _rotate(15.0),
    "rot90": lambda img, rng: (cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE), 90),
    "rot180": lambda img, rng: (cv2.rotate(img, cv2.ROTATE_180), 90),
    "hflip": lambda img, rng: (np.ascontiguousarray(img[:, ::-1]), 90),
    "brightness": _brightness,
    "contrast": _contrast,
    "gamma": _gamma,
    "grey": _grey,
    "blur": _blur,
    "noise": _noise,
    "text": _text,
    "logo": _logo,
    "border": _border,
    "aspect": _aspect,
    "combo1": _combo1,
    "combo2": _combo2,
}
FAMILIES = tuple(TRANSFORMS)


def write_jpeg(path: Path, img: np.ndarray, quality: int = 90) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"cannot encode {path}")
    path.write_bytes(buf.tobytes())


def read_bgr(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise RuntimeError(f"cannot read {path}")
    return img


def video_frames(indices=None):
    """(index, BGR frame) of vtest.avi, in order."""
    cap = cv2.VideoCapture(str(VIDEO))
    wanted = None if indices is None else set(indices)
    i = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if wanted is None or i in wanted:
                yield i, frame
            i += 1
    finally:
        cap.release()


# ---------------------------------------------------------------- accuracy set


@dataclass
class AccuracySet:
    root: Path
    originals: list[Path]
    distractors: list[Path]
    copies: list[dict]  # {"path", "family", "original"}
    natural: list[dict]  # {"path", "family": "pairs"|"video", "relevant": [paths]}

    @property
    def catalog_roots(self) -> list[Path]:
        return [self.root / "originals", self.root / "distractors"]


def accuracy_set(work: Path = WORK) -> AccuracySet:
    root = work / f"dataset-v{DATASET_VERSION}"
    manifest = root / "manifest.json"
    if not manifest.exists():
        _make_accuracy_set(root)
    data = json.loads(manifest.read_text())
    to_path = lambda p: root / p  # noqa: E731
    return AccuracySet(
        root=root,
        originals=[to_path(p) for p in data["originals"]],
        distractors=[to_path(p) for p in data["distractors"]],
        copies=[{**c, "path": to_path(c["path"]), "original": to_path(c["original"])} for c in data["copies"]],
        natural=[{**n, "path": to_path(n["path"]), "relevant": [to_path(r) for r in n["relevant"]]} for n in data["natural"]],
    )


def _make_accuracy_set(root: Path) -> None:
    log(f"generating the accuracy set v{DATASET_VERSION} in {root}")
    if root.exists():
        shutil.rmtree(root)
    (root / "originals").mkdir(parents=True)
    originals: list[Path] = []
    for src in sorted((CORPUS / "photos").glob("*.jpg")):
        dst = root / "originals" / src.name
        shutil.copyfile(src, dst)
        originals.append(dst)
    for name in SKIMAGE_PHOTOS:
        dst = root / "originals" / f"skimage_{name}"
        shutil.copyfile(skimage_data() / name, dst)
        originals.append(dst)

    copies = []
    for oi, original in enumerate(originals):
        img = read_bgr(original)
        for fi, (family, transform) in enumerate(TRANSFORMS.items()):
            rng = np.random.default_rng([SEED, fi, oi])
            out, quality = transform(img, rng)
            dst = root / "copies" / family / (original.stem + ".jpg")
            write_jpeg(dst, out, quality)
            copies.append({"path": dst, "family": family, "original": original})

    distractors: list[Path] = []
    natural = []
    for i, frame in video_frames():
        if i % 2 == 0:
            dst = root / "distractors" / "video" / f"vtest_{i:04d}.jpg"
            write_jpeg(dst, frame)
            distractors.append(dst)
        elif i % VIDEO_QUERY_STRIDE == 1:
            dst = root / "natural" / "video" / f"vtest_{i:04d}.jpg"
            write_jpeg(dst, frame)
            natural.append({"path": dst, "family": "video", "relevant": [i - 1, i + 1]})
    n_frames = i + 1
    for item in natural:
        item["relevant"] = [root / "distractors" / "video" / f"vtest_{j:04d}.jpg" for j in item["relevant"] if 0 <= j < n_frames]
    pairs_dir = CORPUS / "pairs"
    with open(pairs_dir / "pairs.csv", newline="") as f:
        for row in csv.DictReader(f):
            a = root / "natural" / "pairs" / row["a"]
            b = root / "distractors" / "pairs" / row["b"]
            a.parent.mkdir(parents=True, exist_ok=True)
            b.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(pairs_dir / row["a"], a)
            shutil.copyfile(pairs_dir / row["b"], b)
            distractors.append(b)
            natural.append({"path": a, "family": "pairs", "relevant": [b]})
    moto = root / "natural" / "pairs" / "skimage_motorcycle_right.png"
    shutil.copyfile(skimage_data() / "motorcycle_right.png", moto)
    natural.append({"path": moto, "family": "pairs", "relevant": [root / "originals" / "skimage_motorcycle_left.png"]})

    rel = lambda p: str(Path(p).relative_to(root))  # noqa: E731
    manifest = {
        "version": DATASET_VERSION,
        "seed": SEED,
        "originals": [rel(p) for p in originals],
        "distractors": [rel(p) for p in distractors],
        "copies": [{"path": rel(c["path"]), "family": c["family"], "original": rel(c["original"])} for c in copies],
        "natural": [
            {"path": rel(n["path"]), "family": n["family"], "relevant": [rel(r) for r in n["relevant"]]} for n in natural
        ],
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    log(
        f"accuracy set: {len(originals)} originals, {len(copies)} copies, {len(distractors)} distractors, {len(natural)} natural queries"
    )


# ---------------------------------------------------------------- speed sets


def speed_sets(work: Path = WORK) -> dict[str, list[Path]]:
    """Three sets of JPEG q90 files made from the accuracy set's originals (SPEED_VERSION):

    s640  2000 files, long side 640: random crops (70-100% of each side) of the originals, INTER_AREA.
    s1080  200 files, 1920x1080: an original upscaled (INTER_CUBIC) to cover 1920x1080, centre-cropped,
           with Gaussian noise sigma 2 added (the sensor noise of a real photo; without it the upscaled
           image compresses and decodes unrealistically fast).
    s4000  100 files, 4000x3000: 2x2 tiles, each a different original upscaled to cover 2000x1500 and
           centre-cropped, plus noise sigma 2 (about 12 MP, 3-5 MB, like a phone photo).
    """
    root = work / f"speed-v{SPEED_VERSION}"
    done = root / "done.json"
    if not done.exists():
        _make_speed_sets(root)
    return {name: sorted((root / name).glob("*.jpg")) for name in ("s640", "s1080", "s4000")}


def _cover(img, w, h):
    ih, iw = img.shape[:2]
    scale = max(w / iw, h / ih)
    interp = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    big = cv2.resize(img, (max(w, round(iw * scale)), max(h, round(ih * scale))), interpolation=interp)
    y0 = (big.shape[0] - h) // 2
    x0 = (big.shape[1] - w) // 2
    return big[y0 : y0 + h, x0 : x0 + w]


def _noisy(img, rng, sigma=2.0):
    return np.clip(img.astype(np.float32) + rng.normal(0, sigma, img.shape).astype(np.float32), 0, 255).astype(np.uint8)


def _make_speed_sets(root: Path) -> None:
    log(f"generating the speed sets v{SPEED_VERSION} in {root}")
    originals = accuracy_set().originals
    if root.exists():
        shutil.rmtree(root)
    rng = np.random.default_rng([SEED, 1000])
    cache: dict[int, np.ndarray] = {}

    def original(k):
        k %= len(originals)
        if k not in cache:
            cache[k] = read_bgr(originals[k])
        return cache[k]

    for n in range(2000):
        img = original(n)
        h, w = img.shape[:2]
        fh, fw = rng.uniform(0.7, 1.0, 2)
        kh, kw = int(h * fh), int(w * fw)
        y0, x0 = int(rng.integers(0, h - kh + 1)), int(rng.integers(0, w - kw + 1))
        crop = img[y0 : y0 + kh, x0 : x0 + kw]
        scale = 640 / max(kh, kw)
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        out = cv2.resize(crop, (round(kw * scale), round(kh * scale)), interpolation=interp)
        write_jpeg(root / "s640" / f"s640_{n:04d}.jpg", out)
    for n in range(200):
        write_jpeg(root / "s1080" / f"s1080_{n:04d}.jpg", _noisy(_cover(original(n), 1920, 1080), rng))
    for n in range(100):
        tiles = [_cover(original(4 * n + k), 2000, 1500) for k in range(4)]
        big = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
        write_jpeg(root / "s4000" / f"s4000_{n:04d}.jpg", _noisy(big, rng))
    (root / "done.json").write_text(json.dumps({"version": SPEED_VERSION, "seed": SEED}))


if __name__ == "__main__":
    s = accuracy_set()
    print(len(s.originals), len(s.copies), len(s.distractors), len(s.natural))
    print({k: len(v) for k, v in speed_sets().items()})
