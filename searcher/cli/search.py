"""Commands that build and search a catalog: ingest, query, train, reindex, prune."""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from searcher.cli.common import CatalogOption, VectorsOption, WeightsOption, catalog_at, err, out, use_weights, warn
from searcher.cli.output import format_query, terminal_width
from searcher.cli.progress import ProgressReporter, rate_text
from searcher.errors import SearcherError, UsageError


class Format(str, Enum):
    table = "table"
    wide = "wide"
    paths = "paths"
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


DEFAULT_TRAIN_OUT = "searcher-ae.pt"


# ingest options, declared apart so that the command reads as what it does
_INGEST_PATHS = typer.Argument(..., help="Image files or folders (searched recursively).", show_default=False, metavar="PATH")
_INGEST_WORKERS = typer.Option(
    0, "--workers", "-w", min=0, help="Extraction processes [default: one per core]", show_default=False
)
_INGEST_MAX_MEGAPIXELS = typer.Option(200.0, "--max-megapixels", min=0.01, help="Skip images larger than this.")
# Repeated from the library so that --help imports nothing heavy (tests/test_accuracy.py checks they agree).
DEFAULT_SIGNATURES = "hist,mse,orb,ae,cnn"  # searcher.features.DEFAULT_SIGNATURES
VERIFY_BUDGET = 100  # searcher.query.VERIFY_BUDGET
_INGEST_SIGNATURES = typer.Option(DEFAULT_SIGNATURES, "--signatures", help="Comma-separated signatures to compute.")
_INGEST_EXCLUDE = typer.Option(
    None,
    "--exclude",
    help="Leave out files and folders matching this glob (repeatable): a name (*.tmp, @eaDir) or a path under the folder (raw/*.png)",
    show_default=False,
)
_INGEST_FMT = typer.Option(SummaryFormat.text, "--format", help="Summary format.")
_INGEST_EVERY = typer.Option(10, "--every", min=1, help="Videos: keep one frame in N.")
_INGEST_SCENE_CHANGE = typer.Option(
    None,
    "--scene-change",
    min=0.001,
    max=1.0,
    help="Videos: keep a frame when its grey thumbnail differs from the last kept one by this RMSE (e.g. 0.05); replaces --every.",
)
_INGEST_PEOPLE = typer.Option(False, "--people", help="Videos: also index each moving person as a crop (static cameras).")
_INGEST_WAIT = typer.Option(
    True, "--wait/--no-wait", help="When another ingest is running on the catalog: wait for it, or fail at once."
)
_INGEST_EXECUTOR = typer.Option(
    "local",
    "--executor",
    envvar="SEARCHER_EXECUTOR",
    help="Where extraction runs: local (process pool), ray (a local Ray, or $RAY_ADDRESS) or ray://HOST:PORT.",
)
_INGEST_SAVE_FRAMES = typer.Option(
    None,
    "--save-frames",
    help="Videos: write kept frames as JPEGs into this folder (as <stem>-<path hash>_f<frame>.jpg; never overwrites a file).",
)


def ingest(
    paths: List[Path] = _INGEST_PATHS,
    catalog: Optional[str] = CatalogOption,
    vectors: Optional[str] = VectorsOption,
    workers: int = _INGEST_WORKERS,
    max_megapixels: float = _INGEST_MAX_MEGAPIXELS,
    signatures: str = _INGEST_SIGNATURES,
    exclude: Optional[List[str]] = _INGEST_EXCLUDE,
    weights: Optional[Path] = WeightsOption,
    fmt: SummaryFormat = _INGEST_FMT,
    every: int = _INGEST_EVERY,
    scene_change: Optional[float] = _INGEST_SCENE_CHANGE,
    people: bool = _INGEST_PEOPLE,
    wait: bool = _INGEST_WAIT,
    save_frames: Optional[Path] = _INGEST_SAVE_FRAMES,
    executor: str = _INGEST_EXECUTOR,
) -> None:
    """Add images and videos under PATHS to the catalog, or bring it up to date (new, changed, moved, deleted files)."""
    from searcher import api
    from searcher.executors import parse_executor
    from searcher.features import parse_signature_list
    from searcher.ingest import IngestOptions
    from searcher.video import Sampling

    use_weights(weights)
    sampling = Sampling(
        every=every, scene_change=scene_change, people=people, save_frames=str(save_frames) if save_frames else None
    )
    options = IngestOptions(
        workers=workers,
        max_megapixels=max_megapixels,
        signatures=parse_signature_list(signatures),
        sampling=sampling,
        exclude=tuple(exclude or ()),
        executor=parse_executor(executor),
        wait=wait,
    )
    with ProgressReporter() as reporter:
        summary = api.ingest(paths, catalog_at(catalog, vectors), options, reporter)
    counts = summary.counts()
    if summary.frames or summary.crops:
        err.print(f"videos: {summary.frames} frames and {summary.crops} person crops stored", markup=False)
    if fmt is SummaryFormat.json:
        out.print(json.dumps(counts), markup=False)
    else:
        line = ", ".join(f"{v} {k}" for k, v in counts.items())
        out.print(f"{line} in {rate_text(reporter.done, reporter.elapsed)}", markup=False)


_VERIFY_BUDGET = typer.Option(
    VERIFY_BUDGET,
    "--verify-budget",
    min=0,
    help="Most ORB verifications per query (adaptive: it stops once no candidate can still reach the top).",
)
_QUERY_FMT = typer.Option(
    Format.table,
    "--format",
    help="table: rank, score, verdict, path (fits the terminal); wide: every score; paths: one path per line; json, jsonl, csv.",
)
_QUERY_COLUMNS = typer.Option(
    None,
    "--columns",
    help="Comma-separated scores to add to the table, e.g. fused,hist,mse,ae,orb_inliers,mse_distance",
    show_default=False,
)


def query(
    paths: List[Path] = typer.Argument(
        ..., help="Query images, or folders of them (need not be in the catalog).", show_default=False, metavar="PATH"
    ),
    catalog: Optional[str] = CatalogOption,
    vectors: Optional[str] = VectorsOption,
    top: int = typer.Option(10, "--top", "-k", min=1, help="Results per query."),
    metric: Metric = typer.Option(
        Metric.fused, "--metric", help="Ranking: fused (re-ranked by ORB/RANSAC) or one signature alone."
    ),
    hist_method: HistMethod = typer.Option(
        HistMethod.bhattacharyya, "--hist-method", help="cv2.compareHist method for the hist score."
    ),
    fmt: Format = _QUERY_FMT,
    verify_budget: int = _VERIFY_BUDGET,
    columns: Optional[str] = _QUERY_COLUMNS,
    weights: Optional[Path] = WeightsOption,
    html: Optional[Path] = typer.Option(None, "--html", help="Also write the queries and their results as a page of thumbnails."),
) -> None:
    """Find the nearest catalog images to each query image.

    Every score is higher = more similar; raw distances are named *_distance. Exit 1 when any query
    file could not be read (the others' results are still printed).
    """
    from searcher import api

    use_weights(weights)
    results = api.query_paths(
        [str(p) for p in paths],
        catalog_at(catalog, vectors),
        top=top,
        metric=metric.value,
        hist_method=hist_method.value,
        warn=warn,
        verify_budget=verify_budget,
    )
    _print_query_results(results, fmt, columns, html)


def _print_query_results(results, fmt: Format, columns: Optional[str], html: Optional[Path]) -> None:
    """Errors on stderr, hits on stdout in the chosen format, the optional page; exit 1 if any query failed."""
    for result in results:
        if result.error:
            err.print(f"error: {result.query}: {result.error}", markup=False)
    good = [r for r in results if not r.error]
    gone = {h.path for r in good for h in r.hits if not os.path.exists(h.path)}
    if gone:
        warn(f"{len(gone)} result file(s) are gone from disk (e.g. {min(gone)}); `searcher prune` removes them from the catalog")
    wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    present = {k for r in good for h in r.hits for k in h.scores}
    unknown = [c for c in wanted or () if present and c not in present]
    if unknown:
        raise UsageError(f"no score named {unknown[0]!r} here; --columns takes {', '.join(sorted(present))}")
    sys.stdout.write(format_query(good, fmt.value, wanted, terminal_width()))
    if html is not None and good:
        from searcher.report import write_query_html

        write_query_html(good, html)
        err.print(f"wrote {html}", markup=False)
    if len(good) < len(results):
        failed = len(results) - len(good)
        err.print(f"{failed} of {len(results)} query file(s) failed", markup=False)
        raise SystemExit(1)


def train(
    paths: List[Path] = typer.Argument(
        ..., help="Folders or files of images (and videos) to train on.", show_default=False, metavar="PATH"
    ),
    epochs: int = typer.Option(20, "--epochs", min=1, help="Training epochs (2048 augmented samples each)."),
    latent_dim: int = typer.Option(128, "--latent-dim", min=2, help="Length of the latent vector (the `ae` signature)."),
    weights: Path = typer.Option(
        Path(DEFAULT_TRAIN_OUT),
        "--out",
        help="Weights file to write (use it with --weights on ingest, query and compare)",
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (training is deterministic for a given seed)."),
    resume: bool = typer.Option(True, "--resume/--restart", help="Continue from OUT's checkpoint when there is one."),
) -> None:
    """Train the autoencoder behind the `ae` signature (CPU; checkpoints every epoch). Needs the train extra: pip install 'searcher[train]'."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise SearcherError("searcher train needs PyTorch: pip install 'searcher[train]'") from None
    from searcher.training import train_autoencoder

    for p in paths:
        if not p.exists():
            raise UsageError(f"no such file or folder: {p}")
    report = train_autoencoder(list(paths), weights, epochs=epochs, latent_dim=latent_dim, seed=seed, resume=resume)
    summary = {k: report[k] for k in ("final_loss", "version") if k in report}
    out.print(json.dumps({"weights": str(weights), **summary}), markup=False)


def prune(catalog: Optional[str] = CatalogOption, vectors: Optional[str] = VectorsOption) -> None:
    """Remove every catalog entry whose file is gone from disk (entries under folders that cannot be read, or look unmounted, are kept)."""
    from searcher import api

    result = api.prune(catalog_at(catalog, vectors), warn=warn)
    for path in result.removed:
        err.print(f"removed {path}", markup=False)
    kept = f"; {len(result.unreachable)} kept (folder unreadable or not mounted)" if result.unreachable else ""
    out.print(f"{len(result.removed)} missing file(s) removed from the catalog{kept}", markup=False)


def reindex(catalog: Optional[str] = CatalogOption, vectors: Optional[str] = VectorsOption) -> None:
    """Rebuild every vector index from the catalog (the catalog is the source of truth)."""
    from searcher import api

    counts = api.reindex(catalog_at(catalog, vectors))
    out.print(", ".join(f"{name}: {n} vectors" for name, n in counts.items()) or "no signatures in the catalog", markup=False)


def register(app: typer.Typer) -> None:
    """Add ingest, query, train, reindex and prune to the searcher command line."""
    app.command()(ingest)
    app.command()(query)
    app.command()(train)
    app.command()(reindex)
    app.command()(prune)
