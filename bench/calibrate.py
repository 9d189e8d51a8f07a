"""Fit the calibrated pair score (searcher/calibration.json) on pairs from the TUNING originals only.

    python -m bench.calibrate               # ingest the tuning set, collect pairs, fit, write the JSON
    python -m bench.calibrate --dry-run     # fit and print, write nothing

Data. bench.realedits' tuning set (even-index corpus photos, their ImageMagick copies and the
distractors; the held-out originals are never opened). One catalog of it (default signatures). Each
copy queries it exactly as `searcher query` collects candidates (the union of every index's
shortlist, exact similarities, grey flags), its own entry left out. Positives: the candidates that
are the same picture (its original and the other copies of that original); negatives: the rest.
Every positive is verified with ORB, and the NEGATIVES_VERIFIED hardest negatives (highest mean
similarity) plus NEGATIVES_RANDOM others; unverified negatives are left out (their inliers are unknown).

Model. For each set of signatures a catalog can have (every subset of hist, mse, ae, cnn, with and
without orb) a logistic regression of "same picture" on that set's features (searcher.calibration),
fitted by Newton's method with a small L2 penalty (numpy; intercept not penalised).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import REPO, log

WORK = REPO / "bench" / "work" / "calibrate"
NEGATIVES_VERIFIED = 40
NEGATIVES_RANDOM = 10
L2 = 1.0  # ridge penalty on the weights (a prior of about one pair), not on the intercept
VERSION_PREFIX = "2"  # 2: grey pairs get grey_hist instead of a grey term


def collect(catalog_dir: Path, image_set, seed: int = 0) -> dict:
    """Feature columns (similarities, grey, inliers) and labels of the sampled pairs of every tuning copy."""
    from searcher import images, query, scoring
    from searcher.catalog import Catalog

    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {k: [] for k in ("hist", "mse", "ae", "cnn", "grey", "inliers", "label", "query")}
    with Catalog.open(str(catalog_dir), create=False) as catalog:
        path_of = {r.id: os.path.realpath(r.path) for r in catalog.store.ok_rows()}
        for n, q in enumerate(image_set.copies):
            me = os.path.realpath(q.path)
            relevant = {os.path.realpath(p) for p in q.relevant}
            signatures = query._query_signatures(catalog, images.load_image(str(q.path)).bgr)
            ids = [i for i in query._candidates(catalog, signatures, "fused", query.SHORTLIST) if path_of.get(i) != me]
            sims, _, grey, _ = query._exact_scores(catalog, ids, signatures, "bhattacharyya")
            labels = np.array([path_of.get(i) in relevant for i in ids])
            mean = np.nanmean(np.vstack([sims[s] for s in scoring.FUSED_SIGNATURES if s in sims]), axis=0)
            negatives = np.flatnonzero(~labels)
            hard = negatives[np.argsort(-mean[negatives], kind="stable")[:NEGATIVES_VERIFIED]]
            rest = np.setdiff1d(negatives, hard)
            easy = rng.choice(rest, size=min(NEGATIVES_RANDOM, len(rest)), replace=False) if len(rest) else rest
            chosen = np.concatenate([np.flatnonzero(labels), hard, easy]).astype(int)
            stored = catalog.stored_signatures([ids[k] for k in chosen], "orb")
            for k in chosen:
                v = (
                    scoring.best_verification(signatures["orb"].variants(None), stored[ids[k]])
                    if ids[k] in stored
                    else scoring.Verification(0, 0)
                )
                for name in ("hist", "mse", "ae", "cnn"):
                    rows[name].append(float(sims[name][k]) if name in sims else np.nan)
                rows["grey"].append(bool(grey[k]))
                rows["inliers"].append(v.inliers)
                rows["label"].append(bool(labels[k]))
                rows["query"].append(n)
            if n % 50 == 0:
                log(f"calibrate: {n + 1}/{len(image_set.copies)} queries, {len(rows['label'])} pairs")
    return {k: np.array(v) for k, v in rows.items()}


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, iterations: int = 50) -> tuple[np.ndarray, float]:
    """Weights and intercept of an L2-penalised logistic regression, by Newton's method."""
    design = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(design.shape[1])
    penalty = np.full(design.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ w, -50, 50)))
        gradient = design.T @ (p - y) + penalty * w
        hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


def grey_hist(data: dict) -> float:
    """The hist feature a grey pair gets: the mean hist similarity of the colour negative pairs."""
    colour_negatives = ~data["label"].astype(bool) & ~data["grey"].astype(bool) & ~np.isnan(data["hist"])
    return round(float(np.mean(data["hist"][colour_negatives])), 6)


def fit_all(data: dict) -> dict:
    """One model per signature set (see the module docstring), with its training figures."""
    from searcher.calibration import SIGNATURE_FEATURES, feature_columns, model_key

    sims = {s: data[s] for s in ("hist", "mse", "ae", "cnn")}
    columns = feature_columns(sims, data["grey"], data["inliers"], grey_hist=grey_hist(data))
    y = data["label"].astype(np.float64)
    models = {}
    for r in range(1, 6):
        for signatures in itertools.combinations(("hist", "mse", "ae", "cnn", "orb"), r):
            features = [f for s in ("hist", "mse", "ae", "cnn", "orb") if s in signatures for f in SIGNATURE_FEATURES[s]]
            usable = np.all([~np.isnan(columns[f]) for f in features], axis=0)
            x = np.column_stack([columns[f][usable] for f in features])
            weights, intercept = fit_logistic(x, y[usable])
            p = 1.0 / (1.0 + np.exp(-(x @ weights + intercept)))
            accuracy = float(np.mean((p >= 0.5) == (y[usable] > 0.5)))
            models[model_key(signatures)] = {
                "features": features,
                "weights": [round(float(w), 6) for w in weights],
                "intercept": round(intercept, 6),
                "train_accuracy": round(accuracy, 4),
                "train_pairs": int(usable.sum()),
            }
    return models


def ingest(catalog_dir: Path, root: Path) -> None:
    if catalog_dir.exists():
        shutil.rmtree(catalog_dir)
    exe = str(Path(sys.executable).parent / "searcher")
    cmd = [exe, "ingest", str(root), "--catalog", str(catalog_dir), "--workers", "2", "--format", "json"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="fit and print; do not write searcher/calibration.json")
    parser.add_argument("--reuse", action="store_true", help="reuse the collected pairs (bench/work/calibrate/pairs.npz)")
    args = parser.parse_args(argv)
    from bench.realedits_data import ROOT, make_image_sets

    started = time.time()
    pairs_file = WORK / "pairs.npz"
    tuning = make_image_sets()["tuning"]
    if args.reuse and pairs_file.exists():
        data = dict(np.load(pairs_file))
    else:
        WORK.mkdir(parents=True, exist_ok=True)
        catalog_dir = WORK / "tuning-catalog"
        ingest(catalog_dir, ROOT / "sets" / "tuning")
        data = collect(catalog_dir, tuning)
        np.savez(pairs_file, **data)
    models = fit_all(data)
    trained = {
        "originals": "tuning only (even-index corpus photos, bench.realedits_data.split_photos)",
        "queries": int(len(tuning.copies)),
        "pairs": int(len(data["label"])),
        "positives": int(data["label"].sum()),
        "negatives": int((~data["label"].astype(bool)).sum()),
        "sampling": f"every positive in the candidates, {NEGATIVES_VERIFIED} hardest + {NEGATIVES_RANDOM} random negatives per query",
        "l2": L2,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "command": "python -m bench.calibrate",
    }
    version = f"{VERSION_PREFIX}-{time.strftime('%Y%m%d', time.gmtime())}"
    payload = {"version": version, "trained": trained, "grey_hist": grey_hist(data), "models": models}
    full = models["ae,cnn,hist,mse,orb"]
    log(
        f"calibrate: {trained['pairs']} pairs ({trained['positives']} positive) in {time.time() - started:.0f} s; full model {full}"
    )
    if not args.dry_run:
        path = REPO / "searcher" / "calibration.json"
        path.write_text(json.dumps(payload, indent=1) + "\n")
        log(f"wrote {path}")


if __name__ == "__main__":
    main()
