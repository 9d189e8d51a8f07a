"""Side study behind the ORB extraction settings (searcher/features/orb.py): cost and verification
rates of ORB signatures computed on smaller images / fewer pyramid levels.

For every setting: ms per extraction on the 640 px working images; for copies of the originals in
the families where ORB matters (the query and its mirror image verified against the original, as a
query does) the share verified (>= MIN_INLIERS inliers) and the mean ORB score; the same copies
against 3 unrelated originals (false verifications); the corpus's 10 natural pairs.
Tuning and evaluation are kept apart: settings are chosen on the originals the autoencoder was
trained on (sample_data/photos, "tuning"); the other originals ("held-out") are reported beside them.

Run: .venv/bin/python -m bench.orb_study (after the accuracy set exists: python -m bench.dataset).
"""

from __future__ import annotations

import csv
import time

import cv2
import numpy as np

from bench.accuracy import TRAINING_PHOTOS
from bench.common import CORPUS
from bench.dataset import accuracy_set
from searcher import images
from searcher.features.orb import MIN_INLIERS, OrbExtractor

FAMILIES = ("crop50", "rot15", "aspect", "combo2", "border", "hflip", "text", "resize0.25", "jpeg10", "blur")
SETTINGS = {
    "640 px, 8 levels (v1)": dict(side=None),
    "640 px, FAST 30": dict(side=None, fast=30),
    "640 px, FAST 40": dict(side=None, fast=40),
    "640 px, 6 levels, FAST 30": dict(side=None, levels=6, fast=30),
    "560 px, FAST 30": dict(side=560, fast=30),
    "480 px, 8 levels": dict(side=480),
    "480 px, FAST 30": dict(side=480, fast=30),
    "400 px, 8 levels": dict(side=400),
}


def _verify(orb: OrbExtractor, query_bgr: np.ndarray, stored: np.ndarray) -> int:
    return max(orb.verify(v, stored).inliers for v in orb.query_signatures(query_bgr))


def main() -> None:
    cv2.setNumThreads(1)
    data = accuracy_set()
    trained = {p.stem for p in TRAINING_PHOTOS.glob("*")}
    originals = data.originals
    copies = {(c["family"], str(c["original"])): c["path"] for c in data.copies}
    work = {str(p): images.load_image(p).bgr for p in originals}
    with open(CORPUS / "pairs" / "pairs.csv", newline="") as f:
        pairs = [(CORPUS / "pairs" / r["a"], CORPUS / "pairs" / r["b"]) for r in csv.DictReader(f)]
    print(f"{len(originals)} originals ({sum(p.stem in trained for p in originals)} tuning), families {', '.join(FAMILIES)}")
    for label, settings in SETTINGS.items():
        orb = OrbExtractor(**settings)
        ms = 1e9
        for _ in range(3):  # the fastest of 3 passes: the machine is shared
            clock = time.perf_counter()
            stored = {k: orb.extract(v) for k, v in work.items()}
            ms = min(ms, (time.perf_counter() - clock) / len(work) * 1000)
        rows = {"tuning": ([], [], []), "held-out": ([], [], [])}
        for k, original in enumerate(originals):
            split = "tuning" if original.stem in trained else "held-out"
            pos, neg, scores = rows[split]
            for family in FAMILIES:
                query = images.load_image(copies[(family, str(original))]).bgr
                inliers = _verify(orb, query, stored[str(original)])
                pos.append(inliers >= MIN_INLIERS)
                scores.append(min(1.0, max(0.0, (inliers - MIN_INLIERS) / (3.0 * MIN_INLIERS))))
                if family in ("crop50", "combo2", "text"):
                    for other in (
                        originals[(k + 7) % len(originals)],
                        originals[(k + 23) % len(originals)],
                        originals[(k + 41) % len(originals)],
                    ):
                        neg.append(_verify(orb, query, stored[str(other)]) >= MIN_INLIERS)
        natural = [_verify(orb, images.load_image(a).bgr, orb.extract(images.load_image(b).bgr)) for a, b in pairs]
        line = f"{label:24s} {ms:5.2f} ms |"
        for split, (pos, neg, scores) in rows.items():
            line += f" {split}: verified {np.mean(pos):.3f} score {np.mean(scores):.3f} false {np.mean(neg):.3f} |"
        line += f" natural pairs verified {sum(n >= MIN_INLIERS for n in natural)}/10 inliers {natural}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
