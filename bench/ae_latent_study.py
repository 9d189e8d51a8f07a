"""Latent-size study for the autoencoder signature ("ae"), as the seed did for its MNIST autoencoder.

For each latent size (and, optionally, each weight of the contrastive term) this trains the "ae"
autoencoder on the training photos (scikit-image's bundled images, every 20th frame of vtest.avi,
corpus/pairs, sample_data/photos), then measures retrieval of the `ae` metric alone on the
near-duplicate set of bench/ae_eval_set.py (corpus photos NOT used for training + 12 transformed
copies of each). Latents go through the extractor's float16 storage before they are compared.

    .venv/bin/python bench/ae_latent_study.py                       # the table in models/README.md
    .venv/bin/python bench/ae_latent_study.py --dims 64 --contrastive 0 1 --epochs 10

Weights and checkpoints go to bench/work/ae_study/ (a rerun resumes or reuses them); the table goes
to bench/results/ae_latent_study.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ae_eval_set import build_eval_set, extra_recall, retrieval_metrics, thumbnail_vectors  # noqa: E402

from searcher.features.autoencoder import AutoencoderExtractor  # noqa: E402
from searcher.training import TrainConfig, collect_sources, train_with_config  # noqa: E402

SHARED = Path(os.environ.get("SEARCHER_SHARED", REPO.parent / "shared"))


def training_paths() -> list[Path]:
    import skimage

    return [
        Path(skimage.__file__).parent / "data",
        SHARED / "corpus" / "video" / "vtest.avi",
        SHARED / "corpus" / "pairs",
        REPO / "sample_data" / "photos",
    ]


def ae_vectors(weights: Path, images) -> np.ndarray:
    ex = AutoencoderExtractor(weights)
    sigs = ex.extract_batch(images)
    return np.stack([ex.embedding(ex.from_blob(ex.to_blob(s))) for s in sigs])


def inference_ms(weights: Path, images, batch: int = 32, repeats: int = 3) -> dict:
    """ms per image at batch 32 on one thread, preprocessing of the <= 640 px images included.

    numpy backend (the default, no torch) and torch backend (torch.set_num_threads(1)).
    """
    import torch

    threads = torch.get_num_threads()
    old_env = os.environ.get("SEARCHER_TORCH_THREADS")
    os.environ["SEARCHER_TORCH_THREADS"] = "1"
    out = {"batch": batch, "threads": 1}
    try:
        chunk = list(images[:batch])
        for backend in ("numpy", "torch"):
            ex = AutoencoderExtractor(weights, backend=backend)
            ex.extract_batch(chunk)
            best = float("inf")
            for _ in range(repeats):  # best of: the machine is shared
                t = time.perf_counter()
                ex.extract_batch(chunk)
                best = min(best, time.perf_counter() - t)
            out[f"ms_per_image_{backend}"] = round(best / len(chunk) * 1000, 3)
    finally:
        torch.set_num_threads(threads)
        if old_env is None:
            os.environ.pop("SEARCHER_TORCH_THREADS", None)
        else:
            os.environ["SEARCHER_TORCH_THREADS"] = old_env
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    ap.add_argument("--contrastive", type=float, default=TrainConfig.contrastive_weight, help="weight of the contrastive term")
    ap.add_argument(
        "--ablate-dims", type=int, nargs="*", default=[128], help="latent sizes also trained with --ablate-contrastive"
    )
    ap.add_argument(
        "--ablate-contrastive", type=float, nargs="*", default=[0.0], help="other contrastive weights (0 = denoising AE only)"
    )
    ap.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    ap.add_argument("--samples-per-epoch", type=int, default=TrainConfig.samples_per_epoch)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=REPO / "bench" / "work" / "ae_study")
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "ae_latent_study")
    ap.add_argument("--also-weights", type=Path, nargs="*", default=[], help="also evaluate these weights files")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    eval_set = build_eval_set()
    print(f"eval set: {len(eval_set.images)} images in {len(set(eval_set.groups.tolist()))} groups", file=sys.stderr)
    sources = collect_sources(training_paths())
    print(f"training sources: {len(sources)} images/frames", file=sys.stderr)

    rows = []

    def evaluate(vectors_fn) -> dict:
        main = vectors_fn(eval_set.images)
        metrics = retrieval_metrics(main, eval_set.groups, eval_set.kinds)
        metrics["extra_recall@1_by_kind"] = extra_recall(
            main, eval_set.groups, vectors_fn(eval_set.extra_images), eval_set.extra_groups, eval_set.extra_kinds
        )
        return metrics

    base = evaluate(thumbnail_vectors)
    rows.append({"model": "64x64 RGB thumbnail (no model, reference)", "latent_dim": 64 * 64 * 3, **base})

    runs = [(d, args.contrastive) for d in args.dims] + [(d, w) for w in args.ablate_contrastive for d in args.ablate_dims]
    for d, w in runs:
        cfg = TrainConfig(
            epochs=args.epochs, latent_dim=d, seed=args.seed, samples_per_epoch=args.samples_per_epoch, contrastive_weight=w
        )
        out = args.workdir / f"ae_d{d}_c{w:g}_e{args.epochs}_s{args.samples_per_epoch}.pt"
        info = train_with_config([], out, cfg, resume=True, progress=not args.no_progress, sources=sources)
        metrics = evaluate(lambda images, out=out: ae_vectors(out, images))
        row = {
            "model": f"ae d={d} contrastive={w:g}",
            "latent_dim": d,
            "contrastive_weight": w,
            "epochs": args.epochs,
            "final_loss": info["final_loss"],
            "final_recon_mse": info["final_recon_mse"],
            "train_seconds": info["seconds"],
            "weights": str(out.relative_to(REPO)) if out.is_relative_to(REPO) else str(out),
            "weights_bytes": out.stat().st_size,
            **metrics,
            **inference_ms(out, eval_set.images),
        }
        rows.append(row)
        print(
            f"d={d:4d} c={w:g}: mAP {metrics['mAP']:.3f}  R@1 {metrics['recall@1']:.3f}  loss {info['final_loss']:.4f}",
            file=sys.stderr,
        )
    for extra in args.also_weights:
        metrics = evaluate(lambda images, extra=extra: ae_vectors(extra, images))
        rows.append(
            {"model": f"weights {extra}", "latent_dim": AutoencoderExtractor(extra).dim, "weights": str(extra), **metrics}
        )

    kinds = list(rows[0]["recall@1_by_kind"].keys())
    lines = [
        "# Autoencoder latent-size study",
        "",
        f"Eval set: {rows[0]['images']} images = {rows[0]['groups']} corpus photos not used for training x "
        f"(original + {len(kinds) - 1} transforms); all-vs-all cosine retrieval of the `ae` metric alone, "
        "latents stored as float16. Training: "
        f"{args.epochs} epochs x {args.samples_per_epoch} samples, seed {args.seed}.",
        "",
        "| model | latent | mAP | recall@1 | cos same | cos other p99 | final loss | recon MSE | train s | weights KB | ms/image numpy | ms/image torch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        fl = f"{r['final_loss']:.4f}" if r.get("final_loss") is not None else ""
        rm = f"{r['final_recon_mse']:.4f}" if r.get("final_recon_mse") is not None else ""
        ts = f"{r['train_seconds']:.0f}" if r.get("train_seconds") is not None else ""
        kb = f"{r['weights_bytes'] / 1024:.0f}" if r.get("weights_bytes") else ""
        ms = " | ".join(f"{r[k]:.2f}" if r.get(k) else "" for k in ("ms_per_image_numpy", "ms_per_image_torch"))
        lines.append(
            f"| {r['model']} | {r['latent_dim']} | {r['mAP']:.3f} | {r['recall@1']:.3f} | {r['pos_cos_mean']:.3f} | {r['neg_cos_p99']:.3f} | {fl} | {rm} | {ts} | {kb} | {ms} |"
        )
    lines += ["", "Recall@1 by transform:", "", "| model | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds)]
    for r in rows:
        lines.append(f"| {r['model']} | " + " | ".join(f"{r['recall@1_by_kind'][k]:.2f}" for k in kinds) + " |")
    extra_kinds = list(rows[0]["extra_recall@1_by_kind"].keys())
    lines += [
        "",
        "Transforms outside the near-duplicate set (not in the mAP above): recall@1 of such a copy against the main set:",
        "",
        "| model | " + " | ".join(extra_kinds) + " |",
        "|---|" + "---:|" * len(extra_kinds),
    ]
    for r in rows:
        lines.append(f"| {r['model']} | " + " | ".join(f"{r['extra_recall@1_by_kind'][k]:.2f}" for k in extra_kinds) + " |")
    lines += [
        "",
        "cos same: mean cosine between two members of a group; cos other p99: 99th percentile of the cosine between "
        "images of different groups (lower = more room before a distinct image looks like a copy).",
        "ms/image: extract_batch at batch 32 on one thread (best of 3), preprocessing of the decoded (<= 640 px) images "
        "included; numpy = the default backend (no torch import), torch = backend='torch'.",
    ]
    train_total = sum(r.get("train_seconds") or 0 for r in rows)
    lines += [
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared with other work: timings are noisy). "
        f"Training time, all runs: {train_total:.0f} s; this invocation: {time.perf_counter() - t0:.0f} s "
        "(runs already in --workdir are reused).",
    ]
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.with_suffix(".md").write_text("\n".join(lines) + "\n")
    args.results.with_suffix(".json").write_text(
        json.dumps(
            {
                "rows": rows,
                "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "also_weights"},
            },
            indent=1,
            default=str,
        )
        + "\n"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
