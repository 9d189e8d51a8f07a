"""A near-duplicate evaluation set built from ../shared/corpus/photos, and retrieval metrics on it.

Set: every corpus photo that is NOT in sample_data/photos (those are training images), plus
len(TRANSFORMS) transformed copies of each. A copy is made from the full-size decoded original,
saved as JPEG quality 90 (unless the transform says otherwise) and decoded back with
searcher.images.decode, exactly as ingest would see it (long side <= 640). Random parameters are
drawn from numpy.random.default_rng([seed, photo index]), so the set is the same on every run.

Protocol ("all vs all"): each of the N images queries the other N - 1; the relevant results are the
other members of its group (original + copies). Reported: mAP, recall@1 (the nearest other image
is in the group), per transform the recall@1 of the copies of that transform, and the separation:
the mean cosine within a group against the 99th percentile of the cosine across groups.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(REPO))

from searcher.images import decode  # noqa: E402

CORPUS_PHOTOS = Path(os.environ.get("SEARCHER_CORPUS", REPO.parent / "shared" / "corpus")) / "photos"
SAMPLE_PHOTOS = REPO / "sample_data" / "photos"
N_SAMPLE_FALLBACK = 18  # sample_data/photos holds the first 18 corpus photos (sorted by name)


def _jpeg(img: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    assert ok
    return buf.tobytes()


def t_jpeg20(img, rng):
    return _jpeg(img, 20)


def t_resize25(img, rng):
    h, w = img.shape[:2]
    return _jpeg(cv2.resize(img, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA))


def _crop(img, keep, rng):
    h, w = img.shape[:2]
    kh, kw = int(h * keep), int(w * keep)
    y0 = int(rng.integers(0, h - kh + 1))
    x0 = int(rng.integers(0, w - kw + 1))
    return img[y0 : y0 + kh, x0 : x0 + kw]


def t_crop90(img, rng):
    return _jpeg(_crop(img, 0.9, rng))


def t_crop70(img, rng):
    return _jpeg(_crop(img, 0.7, rng))


def t_rot8(img, rng):
    h, w = img.shape[:2]
    angle = float(rng.choice([-1, 1]) * rng.uniform(5, 10))
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    return _jpeg(cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT))


def t_flip(img, rng):
    return _jpeg(np.ascontiguousarray(img[:, ::-1]))


def t_color(img, rng):
    f = img.astype(np.float32)
    alpha = rng.uniform(1.2, 1.4)
    beta = rng.choice([-1, 1]) * rng.uniform(15, 30)
    f = (f - f.mean()) * alpha + f.mean() + beta
    grey = f.mean(axis=2, keepdims=True)
    f = grey + (f - grey) * rng.uniform(0.5, 0.7)
    return _jpeg(np.clip(f, 0, 255).astype(np.uint8))


def t_blur(img, rng):
    sigma = 0.008 * max(img.shape[:2])
    return _jpeg(cv2.GaussianBlur(img, (0, 0), sigma))


def t_noise(img, rng):
    noise = rng.normal(0, 20, size=img.shape).astype(np.float32)
    return _jpeg(np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8))


def t_text(img, rng):
    out = img.copy()
    h, w = out.shape[:2]
    word = str(rng.choice(["COPYRIGHT 2024", "breaking news", "my holiday!", "SAMPLE", "@someone"]))
    scale = w / 500
    thick = max(2, int(round(scale * 2.5)))
    (tw, th), _ = cv2.getTextSize(word, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x = int(rng.integers(0, max(1, w - tw)))
    y = int(rng.integers(th, max(th + 1, h - 4)))
    cv2.putText(out, word, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 3, cv2.LINE_AA)
    cv2.putText(out, word, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    s = int(0.12 * min(h, w))  # a logo in a corner
    cv2.rectangle(out, (w - s - 10, 10), (w - 10, 10 + s // 2), (40, 40, 200), -1)
    return _jpeg(out)


def t_frame(img, rng):
    h, w = img.shape[:2]
    b = int(0.06 * max(h, w))
    colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
    return _jpeg(cv2.copyMakeBorder(img, b, b, b, b, cv2.BORDER_CONSTANT, value=colour))


def t_combo(img, rng):
    out = _crop(img, 0.85, rng)
    h, w = out.shape[:2]
    out = cv2.resize(out, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    out = cv2.convertScaleAbs(out, alpha=1.1, beta=-20)
    return _jpeg(out, 40)


TRANSFORMS: dict[str, Callable[[np.ndarray, np.random.Generator], bytes]] = {
    "jpeg20": t_jpeg20,
    "resize25": t_resize25,
    "crop90": t_crop90,
    "crop70": t_crop70,
    "rot8": t_rot8,
    "flip": t_flip,
    "color": t_color,
    "blur": t_blur,
    "noise": t_noise,
    "text": t_text,
    "frame": t_frame,
    "combo": t_combo,
}


def t_hue40(img, rng):
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    hsv[:, :, 0] = ((hsv[:, :, 0].astype(np.int32) + 20) % 180).astype(np.uint8)
    return _jpeg(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR))


def t_gray(img, rng):
    return _jpeg(cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR))


def t_rot90(img, rng):
    return _jpeg(cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE))


# Outside the list of near-duplicate changes (and the training augmentations, except a small
# hue shift and grey at 10 %): reported apart, as recall@1 against the main set.
EXTRA_TRANSFORMS: dict[str, Callable[[np.ndarray, np.random.Generator], bytes]] = {
    "hue40": t_hue40,
    "gray": t_gray,
    "rot90": t_rot90,
}


@dataclass
class EvalSet:
    images: list[np.ndarray]  # BGR uint8, long side <= 640 (as ingest decodes them)
    groups: np.ndarray  # group id per image (one per original photo)
    kinds: list[str]  # "original" or the transform name
    names: list[str]  # original photo file name per image
    extra_images: list[np.ndarray] | None = None  # copies by EXTRA_TRANSFORMS, not part of the main set
    extra_groups: np.ndarray | None = None
    extra_kinds: list[str] | None = None


def eval_photo_paths(corpus: Path = CORPUS_PHOTOS, sample: Path = SAMPLE_PHOTOS) -> list[Path]:
    """Corpus photos that are not training images (not in sample_data/photos), sorted."""
    all_photos = sorted(p for p in corpus.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if sample.is_dir():
        taken = {p.name for p in sample.iterdir()}
    else:
        taken = {p.name for p in all_photos[:N_SAMPLE_FALLBACK]}
    return [p for p in all_photos if p.name not in taken]


def build_eval_set(seed: int = 0, corpus: Path = CORPUS_PHOTOS, limit: int | None = None) -> EvalSet:
    images: list[np.ndarray] = []
    groups: list[int] = []
    kinds: list[str] = []
    names: list[str] = []
    extra_images: list[np.ndarray] = []
    extra_groups: list[int] = []
    extra_kinds: list[str] = []
    paths = eval_photo_paths(corpus)
    if limit:
        paths = paths[:limit]
    for gi, path in enumerate(paths):
        data = path.read_bytes()
        full = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        rng = np.random.default_rng([seed, gi])
        images.append(decode(data).bgr)
        groups.append(gi)
        kinds.append("original")
        names.append(path.name)
        for tname, fn in TRANSFORMS.items():
            images.append(decode(fn(full, rng)).bgr)
            groups.append(gi)
            kinds.append(tname)
            names.append(path.name)
        for tname, fn in EXTRA_TRANSFORMS.items():
            extra_images.append(decode(fn(full, rng)).bgr)
            extra_groups.append(gi)
            extra_kinds.append(tname)
    return EvalSet(images, np.asarray(groups), kinds, names, extra_images, np.asarray(extra_groups), extra_kinds)


def extra_recall(
    main: np.ndarray, groups: np.ndarray, extra: np.ndarray, extra_groups: np.ndarray, extra_kinds: Sequence[str]
) -> dict:
    """recall@1 per extra transform: is the nearest image of the main set in the copy's group?"""
    a = main / np.maximum(np.linalg.norm(main, axis=1, keepdims=True), 1e-12)
    b = extra / np.maximum(np.linalg.norm(extra, axis=1, keepdims=True), 1e-12)
    hit = groups[np.argmax(b @ a.T, axis=1)] == extra_groups
    kinds = np.asarray(extra_kinds)
    return {k: float(hit[kinds == k].mean()) for k in dict.fromkeys(extra_kinds)}


def retrieval_metrics(vectors: np.ndarray, groups: np.ndarray, kinds: Sequence[str]) -> dict:
    """All-vs-all retrieval by cosine similarity: mAP, recall@1, recall@1 per transform."""
    v = np.asarray(vectors, dtype=np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    sim = v @ v.T
    n = len(v)
    same = groups[:, None] == groups[None, :]
    off_diag = ~np.eye(n, dtype=bool)
    pos_mean = float(sim[same & off_diag].mean())
    neg_p99 = float(np.percentile(sim[~same], 99))
    np.fill_diagonal(sim, -np.inf)
    order = np.argsort(-sim, axis=1, kind="stable")
    aps = np.empty(n)
    top1 = np.empty(n, dtype=bool)
    for i in range(n):
        ranked = order[i, : n - 1]  # the query itself (at -inf) is last
        rel = groups[ranked] == groups[i]
        hits = np.cumsum(rel)
        precision = hits / np.arange(1, n)
        aps[i] = float((precision * rel).sum() / max(1, rel.sum()))
        top1[i] = rel[0]
    kinds_arr = np.asarray(kinds)
    per_kind = {k: float(top1[kinds_arr == k].mean()) for k in dict.fromkeys(kinds)}
    per_kind_ap = {k: float(aps[kinds_arr == k].mean()) for k in dict.fromkeys(kinds)}
    return {
        "mAP": float(aps.mean()),
        "recall@1": float(top1.mean()),
        "pos_cos_mean": pos_mean,  # mean cosine between two members of one group
        "neg_cos_p99": neg_p99,  # 99th percentile of the cosine between images of different groups
        "recall@1_by_kind": per_kind,
        "AP_by_kind": per_kind_ap,
        "images": int(n),
        "groups": int(len(set(groups.tolist()))),
    }


def thumbnail_vectors(images: Sequence[np.ndarray], size: int = 64) -> np.ndarray:
    """Baseline without any model: the 64 x 64 RGB thumbnail, mean-centred per image."""
    out = []
    for img in images:
        t = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
        out.append(t - t.mean())
    return np.stack(out)


if __name__ == "__main__":
    import time

    t = time.perf_counter()
    s = build_eval_set()
    print(f"{len(s.images)} images, {len(set(s.groups.tolist()))} groups, {time.perf_counter() - t:.1f} s")
    m = retrieval_metrics(thumbnail_vectors(s.images), s.groups, s.kinds)
    print(
        "thumbnail baseline:", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in m.items() if not isinstance(v, dict)}
    )
    print({k: round(v, 2) for k, v in m["recall@1_by_kind"].items()})
