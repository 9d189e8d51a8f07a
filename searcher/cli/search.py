"""Commands that build and search a catalog: ingest, query, train, reindex."""

from __future__ import annotations

import csv
import io
import json
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from searcher.cli.common import CatalogOption, IngestProgress, VectorsOption, catalog_at, err, out, progress_bar, warn
from searcher.errors import UsageError
from searcher.text import json_safe, printable_name

# Repeated from the library so that --help imports nothing heavy (tests/test_accuracy.py checks they agree).
DEFAULT_SIGNATURES = "hist,mse,orb,ae,cnn"  # searcher.features.DEFAULT_SIGNATURES
VERIFY_BUDGET = 100  # searcher.query.VERIFY_BUDGET


class Format(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


class SummaryFormat(str, Enum):
    text = "text"
    json = "json"


class Metric(str, Enum):
    fused = "fused"
    hist = "hist"
    mse = "mse"
    ae = "ae"
    cnn = "cnn"
    orb = "orb"


class HistMethod(str, Enum):
    correl = "correl"
    chisqr = "chisqr"
    intersect = "intersect"
    bhattacharyya = "bhattacharyya"


def ingest(
    paths: List[Path] = typer.Argument(..., help="Image files or folders (searched recursively)."),
    catalog: Optional[str] = CatalogOption,
    vectors: Optional[str] = VectorsOption,
    workers: int = typer.Option(0, "--workers", "-w", min=0, help="Extraction processes [default: one per core]."),
    max_megapixels: float = typer.Option(200.0, "--max-megapixels", min=0.01, help="Skip images larger than this."),
    signatures: str = typer.Option(DEFAULT_SIGNATURES, "--signatures", help="Comma-separated signatures to compute."),
    fmt: SummaryFormat = typer.Option(SummaryFormat.text, "--format", help="Summary format."),
    every: int = typer.Option(10, "--every", min=1, help="Videos: keep one frame in N."),
    scene_change: Optional[float] = typer.Option(
        None,
        "--scene-change",
        min=0.001,
        max=1.0,
        help="Videos: keep a frame when its grey thumbnail differs from the last kept one by this RMSE (e.g. 0.05); replaces --every.",
    ),
    people: bool = typer.Option(False, "--people", help="Videos: also index each moving person as a crop (static cameras)."),
    wait: bool = typer.Option(
        True, "--wait/--no-wait", help="When another ingest is running on the catalog: wait for it, or fail at once."
    ),
    save_frames: Optional[Path] = typer.Option(
        None,
        "--save-frames",
        help="Videos: write kept frames as JPEGs into this folder (as <stem>-<path hash>_f<frame>.jpg; never overwrites a file).",
    ),
    executor: str = typer.Option(
        "local",
        "--executor",
        envvar="SEARCHER_EXECUTOR",
        help="Where extraction runs: local (process pool), ray (a local Ray, or $RAY_ADDRESS) or ray://HOST:PORT.",
    ),
) -> None:
    """Add images and videos under PATHS to the catalog, or bring it up to date (new, changed, moved, deleted files)."""
    from searcher import api
    from searcher.executors import parse_executor
    from searcher.features import parse_signature_list
    from searcher.ingest import IngestOptions
    from searcher.video import Sampling

    sampling = Sampling(
        every=every, scene_change=scene_change, people=people, save_frames=str(save_frames) if save_frames else None
    )
    options = IngestOptions(
        workers=workers,
        max_megapixels=max_megapixels,
        signatures=parse_signature_list(signatures),
        sampling=sampling,
        executor=parse_executor(executor),
        wait=wait,
    )
    with progress_bar() as progress:
        summary = api.ingest(paths, catalog_at(catalog, vectors), options, IngestProgress(progress))
    counts = summary.counts()
    if summary.frames or summary.crops:
        err.print(f"videos: {summary.frames} frames and {summary.crops} person crops stored", markup=False)
    if fmt is SummaryFormat.json:
        out.print(json.dumps(counts), markup=False)
    else:
        out.print(", ".join(f"{v} {k}" for k, v in counts.items()), markup=False)


def query(
    paths: List[Path] = typer.Argument(..., help="Query images, or folders of them (need not be in the catalog)."),
    catalog: Optional[str] = CatalogOption,
    vectors: Optional[str] = VectorsOption,
    top: int = typer.Option(10, "--top", "-k", min=1, help="Results per query."),
    metric: Metric = typer.Option(
        Metric.fused, "--metric", help="Ranking: fused (re-ranked by ORB/RANSAC) or one signature alone."
    ),
    hist_method: HistMethod = typer.Option(
        HistMethod.bhattacharyya, "--hist-method", help="cv2.compareHist method for the hist score."
    ),
    fmt: Format = typer.Option(Format.table, "--format", help="Output format."),
    verify_budget: int = typer.Option(
        VERIFY_BUDGET,
        "--verify-budget",
        min=0,
        help="Most ORB verifications per query (adaptive: it stops once no candidate can still reach the top).",
    ),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write the queries and their results as a page of thumbnails."),
) -> None:
    """Find the nearest catalog images to each query image."""
    from searcher import api

    results = api.query_paths(
        [str(p) for p in paths],
        catalog_at(catalog, vectors),
        top=top,
        metric=metric.value,
        hist_method=hist_method.value,
        warn=warn,
        verify_budget=verify_budget,
    )
    for result in results:
        if result.error:
            err.print(f"error: {result.query}: {result.error}", markup=False)
    good = [r for r in results if not r.error]
    _print_results(good, fmt)
    if html is not None and good:
        from searcher.report import write_query_html

        write_query_html(good, html)
        err.print(f"wrote {html}", markup=False)
    if not good:
        raise SystemExit(1)


def _result_dict(result) -> dict:
    return result.to_dict()


def _where(hit) -> str:
    """A hit's place for a person: the path, plus frame, time and box inside a video."""
    if hit.frame is None:
        return printable_name(hit.path)
    box = f" box={','.join(map(str, hit.box))}" if hit.box else ""
    return f"{printable_name(hit.path)} frame={hit.frame} t={hit.time:.2f}s{box}"


def _print_results(results, fmt: Format) -> None:
    if fmt is Format.jsonl:
        for result in results:
            sys.stdout.write(json_safe(json.dumps(_result_dict(result), ensure_ascii=False)) + "\n")
    elif fmt is Format.json:
        sys.stdout.write(json_safe(json.dumps([_result_dict(r) for r in results], ensure_ascii=False, indent=2)) + "\n")
    elif fmt is Format.csv:
        keys = sorted({k for r in results for h in r.hits for k in h.scores})
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["query", "rank", "path", "frame", "time", "box", "score", *keys])
        for r in results:
            for rank, hit in enumerate(r.hits, 1):
                video = (
                    (hit.frame, f"{hit.time:.3f}", ",".join(map(str, hit.box)) if hit.box else "")
                    if hit.frame is not None
                    else ("", "", "")
                )
                writer.writerow([r.query, rank, hit.path, *video, f"{hit.score:.6f}", *(_fmt(hit.scores.get(k)) for k in keys)])
        sys.stdout.write(buffer.getvalue())
    else:
        for r in results:
            keys = [
                k
                for k in ("p_same", "fused", "hist", "mse", "ae", "cnn", "orb_inliers", "orb_matches")
                if any(k in h.scores for h in r.hits)
            ]
            table = Table(title=printable_name(r.query), title_justify="left")
            for column in ("rank", "score", *keys):
                table.add_column(column, justify="right")
            table.add_column("path", overflow="fold")
            for rank, hit in enumerate(r.hits, 1):
                table.add_row(str(rank), f"{hit.score:.4f}", *(_fmt(hit.scores.get(k)) for k in keys), _where(hit))
            out.print(table)


def _fmt(value) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() and abs(value) > 1 else f"{value:.4f}"


def train(
    paths: List[Path] = typer.Argument(..., help="Folders or files of images (and videos) to train on."),
    epochs: int = typer.Option(20, "--epochs", min=1, help="Training epochs (2048 augmented samples each)."),
    latent_dim: int = typer.Option(128, "--latent-dim", min=2, help="Length of the latent vector (the `ae` signature)."),
    weights: Path = typer.Option(Path("models/ae.pt"), "--out", help="Weights file to write."),
    seed: int = typer.Option(0, "--seed", help="Random seed (training is deterministic for a given seed)."),
    resume: bool = typer.Option(True, "--resume/--restart", help="Continue from OUT's checkpoint when there is one."),
) -> None:
    """Train the autoencoder behind the `ae` signature (CPU; checkpoints every epoch)."""
    from searcher.training import train_autoencoder

    for p in paths:
        if not p.exists():
            raise UsageError(f"no such file or folder: {p}")
    report = train_autoencoder(list(paths), weights, epochs=epochs, latent_dim=latent_dim, seed=seed, resume=resume)
    summary = {k: report[k] for k in ("final_loss", "version") if k in report}
    out.print(json.dumps({"weights": str(weights), **summary}), markup=False)


def reindex(catalog: Optional[str] = CatalogOption, vectors: Optional[str] = VectorsOption) -> None:
    """Rebuild every vector index from the catalog (the catalog is the source of truth)."""
    from searcher import api

    counts = api.reindex(catalog_at(catalog, vectors))
    out.print(", ".join(f"{name}: {n} vectors" for name, n in counts.items()) or "no signatures in the catalog", markup=False)


def register(app: typer.Typer) -> None:
    """Add ingest, query, train and reindex to the searcher command line."""
    app.command()(ingest)
    app.command()(query)
    app.command()(train)
    app.command()(reindex)
