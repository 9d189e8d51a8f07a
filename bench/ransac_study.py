"""Side study behind a suggestion in bench/notes.md: the cost and the false-verification rate of the
geometric check used by searcher's ORB re-ranking, against cheaper estimators from OpenCV.

For 12 originals x 6 families (copies vs their original: should verify) and the same copies vs 3
unrelated originals (should not), ORB signatures are matched as searcher.features.orb does
(cross-checked Hamming <= 64, the query and its mirror image), then each estimator fits the matches
with an 8 px threshold; a pair counts as verified at >= 8 inliers (orb.MIN_INLIERS). Prints ms per fit on
the unrelated pairs (where RANSAC runs to its iteration cap), the false-verification rate, and the
verified rate per family. Run: .venv/bin/python -m bench.ransac_study (after the accuracy set exists).
"""

import csv
import glob
import time

import cv2
import numpy as np

cv2.setNumThreads(1)
from searcher import images
from searcher.features.orb import OrbExtractor, split

o = OrbExtractor()
from bench.dataset import accuracy_set

root = str(accuracy_set().root)
origs = sorted(glob.glob(f"{root}/originals/*.jpg"))[:24]
osig = {f: o.extract(images.load_image(f).bgr) for f in origs}
m = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)


def pts(a, b):
    pa, da = split(a)
    pb, db = split(b)
    good = [x for x in m.match(da, db) if x.distance <= 64]
    return pa[[x.queryIdx for x in good]].reshape(-1, 1, 2), pb[[x.trainIdx for x in good]].reshape(-1, 1, 2)


def best(qvars, s):
    return [pts(q, s) for q in qvars]


fams = ["aspect", "rot15", "crop50", "combo2", "border", "hflip"]
pos, neg = {f: [] for f in fams + ["pairs"]}, []
for f in origs[:12]:
    stem = f.split("/")[-1][:-4]
    for fam in fams:
        img = images.load_image(f"{root}/copies/{fam}/{stem}.jpg").bgr
        qv = [o.extract(img), o.extract(np.ascontiguousarray(img[:, ::-1]))]
        pos[fam].append(best(qv, osig[f]))
        for g in origs[12:15]:
            neg.append(best(qv, osig[g]))
for row in csv.DictReader(open("/work/shared/corpus/pairs/pairs.csv")):
    a = images.load_image(f"{root}/natural/pairs/{row['a']}").bgr
    b = o.extract(images.load_image(f"{root}/distractors/pairs/{row['b']}").bgr)
    pos["pairs"].append(best([o.extract(a), o.extract(np.ascontiguousarray(a[:, ::-1]))], b))
methods = {
    "homography RANSAC (current)": lambda s, d: cv2.findHomography(s, d, cv2.RANSAC, 8.0),
    "homography USAC_DEFAULT": lambda s, d: cv2.findHomography(s, d, cv2.USAC_DEFAULT, 8.0),
    "affine RANSAC": lambda s, d: cv2.estimateAffine2D(s, d, method=cv2.RANSAC, ransacReprojThreshold=8.0),
    "similarity RANSAC": lambda s, d: cv2.estimateAffinePartial2D(s, d, method=cv2.RANSAC, ransacReprojThreshold=8.0),
}


def inl(fn, pairs):
    out = []
    for s, d in pairs:
        if len(s) < 4:
            out.append(0)
            continue
        M, mask = fn(s, d)
        out.append(int(mask.sum()) if M is not None and mask is not None else 0)
    return max(out)


for name, fn in methods.items():
    t = time.perf_counter()
    nv = [inl(fn, p) for p in neg]
    tn = (time.perf_counter() - t) / (2 * len(neg)) * 1000
    line = f"{name:28s} neg {tn:6.2f} ms/fit false>=8: {np.mean(np.array(nv) >= 8):.3f} |"
    for fam, P in pos.items():
        line += f" {fam} {np.mean(np.array([inl(fn, p) for p in P]) >= 8):.2f}"
    print(line, flush=True)
