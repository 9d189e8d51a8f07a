"""The calibrated pair score: a logistic model of "same picture" over the signature similarities.

Recipe. For a pair (a query and a candidate, or two catalog images) the features are
    hist     1 - Bhattacharyya distance of the H-S histograms; when either side is grey (GREY_MASS of
             its histogram at saturation ~0) a colour histogram says nothing, and the pair gets the
             calibration's `grey_hist` instead: the mean hist similarity of the training NEGATIVES, so
             a grey pair neither gains nor loses by it against an unrelated pair. (A separate "grey"
             term, tried first, learned "grey pair -> same picture" from the bench's grey copies and
             linked distinct grey photos.)
    mse      1 - 2*RMSE of the contrast-normalised 16x16 thumbnails (best of 8 orientations)
    ae, cnn  cosine of the latents / descriptors, clipped to [0, 1]
    orb      clip((inliers - CHANCE_INLIERS) / (FULL_INLIERS - CHANCE_INLIERS), 0, 1) (ORB/MAGSAC++ inliers)
    orb_log  log(1 + min(inliers, INLIER_CAP)) / log(1 + INLIER_CAP); both 0 under CHANCE_INLIERS
and the score is p = sigmoid(intercept + sum of weight * feature). One model per set of signatures
a catalog can have (a feature of an absent signature is dropped, not imputed), all fitted by
`python -m bench.calibrate` on pairs from the TUNING originals only and shipped in
searcher/calibration.json with a version string. p >= 0.5 reads "same picture".

Rankings compare logits (exact where probabilities round to 1.0); scores shown are probabilities.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

CALIBRATION_PATH = Path(__file__).with_name("calibration.json")
FEATURES = ("hist", "mse", "ae", "cnn", "orb", "orb_log")
SIGNATURE_FEATURES = {"hist": ("hist",), "mse": ("mse",), "ae": ("ae",), "cnn": ("cnn",), "orb": ("orb", "orb_log")}
SIMILARITY_SIGNATURES = ("hist", "mse", "ae", "cnn")  # the signatures that give a similarity
INLIER_CAP = 64  # inliers beyond this say nothing more (and bound what verification can add)
MIN_INLIERS = 8  # the homography is not even fitted on fewer matches
# Unrelated photos reach 8-14 MAGSAC inliers now and then (a few dozen chance matches): so few count
# as none, or such pairs get linked (measured on the corpus's natural pairs).
CHANCE_INLIERS = 15
FULL_INLIERS = 40  # from here the linear ORB term is at its maximum
GREY_MASS = 0.9  # share of the histogram at saturation < 16/256 from which an image counts as grey
S_BINS = 16
_INLIER_GRID = np.arange(INLIER_CAP + 1)


def model_key(signatures) -> str:
    """'ae,cnn,hist,mse,orb': the calibration model of a set of signatures (order-free)."""
    return ",".join(sorted(s for s in set(signatures) if s in SIGNATURE_FEATURES))


def grey_histograms(hists: np.ndarray) -> np.ndarray:
    """True per row of H-S histograms (H-major, S_BINS saturation bins) whose mass is at saturation ~0;
    NaN rows (no histogram) are not grey."""
    hists = np.atleast_2d(np.asarray(hists, dtype=np.float64))
    total = hists.sum(axis=1)
    low = hists.reshape(len(hists), -1, S_BINS)[:, :, 0].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(low / total, nan=0.0) >= GREY_MASS


def orb_features(inliers) -> dict[str, np.ndarray]:
    """The ORB feature columns of inliers counts. Fewer than CHANCE_INLIERS count as none: random
    matches reach that many by chance (and a verifier may then skip the homography)."""
    n = np.minimum(np.asarray(inliers, dtype=np.float64), INLIER_CAP)
    n = np.where(n >= CHANCE_INLIERS, n, 0.0)
    return {
        "orb": np.clip((n - CHANCE_INLIERS) / (FULL_INLIERS - CHANCE_INLIERS), 0.0, 1.0),
        "orb_log": np.log1p(n) / math.log1p(INLIER_CAP),
    }


def feature_columns(similarities: dict[str, np.ndarray], grey, inliers=None, grey_hist: float = 0.5) -> dict[str, np.ndarray]:
    """The model's feature columns from similarities by signature (NaN: absent), the pair's grey flag
    (its hist replaced by `grey_hist`) and, when verified, the inliers."""
    grey = np.asarray(grey, dtype=np.float64)
    columns = {name: np.asarray(values, dtype=np.float64) for name, values in similarities.items() if name != "hist"}
    if "hist" in similarities:
        hist = np.asarray(similarities["hist"], dtype=np.float64)
        columns["hist"] = np.where((grey > 0) & ~np.isnan(hist), grey_hist, hist)
    if inliers is not None:
        columns.update(orb_features(inliers))
    return columns


@dataclass(frozen=True)
class Model:
    features: tuple[str, ...]
    weights: tuple[float, ...]
    intercept: float

    def weight(self, feature: str) -> float:
        return self.weights[self.features.index(feature)] if feature in self.features else 0.0

    def base_logit(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """intercept + the weighted features other than ORB's."""
        out = None
        for feature, weight in zip(self.features, self.weights):
            if feature in SIGNATURE_FEATURES["orb"]:
                continue
            term = weight * np.nan_to_num(columns[feature])
            out = term if out is None else out + term
        return self.intercept + (out if out is not None else 0.0)

    def orb_terms(self) -> np.ndarray:
        """What verification adds to the logit for 0..INLIER_CAP inliers."""
        f = orb_features(_INLIER_GRID)
        return self.weight("orb") * f["orb"] + self.weight("orb_log") * f["orb_log"]


@dataclass(frozen=True)
class Calibration:
    version: str
    models: dict[str, Model]
    trained: dict
    grey_hist: float  # the hist feature of a pair with a grey side

    def model(self, signatures) -> Model:
        key = model_key(signatures)
        if key not in self.models:
            raise KeyError(f"calibration {self.version} has no model for signatures {key!r}")
        return self.models[key]


@lru_cache(maxsize=4)
def load(path: str | None = None) -> Calibration:
    """The shipped calibration (searcher/calibration.json) or another file of the same shape."""
    data = json.loads(Path(path or CALIBRATION_PATH).read_text())
    models = {
        key: Model(tuple(m["features"]), tuple(float(w) for w in m["weights"]), float(m["intercept"]))
        for key, m in data["models"].items()
    }
    return Calibration(str(data["version"]), models, data.get("trained", {}), float(data.get("grey_hist", 0.5)))


def sigmoid(logit):
    value = 1.0 / (1.0 + np.exp(-np.clip(np.asarray(logit, dtype=np.float64), -50.0, 50.0)))
    return float(value) if np.ndim(value) == 0 else value


def logit(p: float) -> float:
    p = min(max(p, 1e-12), 1.0 - 1e-12)
    return math.log(p / (1.0 - p))
