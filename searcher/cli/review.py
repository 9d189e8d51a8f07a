"""Review commands: compare, dups, undo, info. Same conventions as searcher.cli (which registers them):
results on stdout, progress and messages on stderr, SearcherError for the user's mistakes (exit 1)."""

from __future__ import annotations

import csv
import io
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.progress import Progress
from rich.table import Table

from searcher.cli.common import CatalogOption, Interrupted, VectorsOption, catalog_at, err, out, progress_bar, warn
from searcher.text import json_safe, printable_name

DEFAULT_THRESHOLD = 0.5  # searcher.scoring.DEFAULT_THRESHOLD, repeated so that --help imports nothing heavy
DEFAULT_NEIGHBOURS = 10  # searcher.dups.DEFAULT_NEIGHBOURS
DEFAULT_VERIFY_BUDGET = 100  # searcher.dups.DEFAULT_VERIFY_BUDGET


class CompareFormat(str, Enum):
    table = "table"
    json = "json"


class DupsFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.1f}"


def compare(
    a: Path = typer.Argument(..., help="First image (need not be in the catalog)."),
    b: Path = typer.Argument(..., help="Second image."),
    catalog: Optional[str] = CatalogOption,
    vectors: Optional[str] = VectorsOption,
    threshold: float = typer.Option(
        DEFAULT_THRESHOLD, "--threshold", min=0.01, max=1.0, help="Pair score at which two images are near duplicates."
    ),
    fmt: CompareFormat = typer.Option(CompareFormat.table, "--format", help="Output format."),
    draw: Optional[Path] = typer.Option(
        None, "--draw", help="Write A and B side by side with ORB matches drawn (PNG).", dir_okay=False
    ),
) -> None:
    """Every measure between two images (histograms, MSE, ORB, SIFT, autoencoder) and the near-duplicate verdict.

    When a catalog exists (--catalog, $SEARCHER_CATALOG or ./.searcher), the fused score averages the
    signatures it holds, so the verdict is the one `searcher dups` gives on it.
    """
    from searcher import api
    from searcher.comparison import draw as draw_comparison
    from searcher.errors import UsageError

    for p in (a, b):
        if not p.exists():
            raise UsageError(f"no such file: {p}")
    result = api.compare(a, b, catalog=catalog_at(catalog, vectors), threshold=threshold, warn=warn)
    if draw is not None:
        width, height = draw_comparison(result, draw)
        err.print(f"wrote {draw} ({width}x{height})", markup=False)
    if fmt is CompareFormat.json:
        data = result.to_dict()
        data["explanation"] = result.explanation
        sys.stdout.write(json_safe(json.dumps(data, indent=2, ensure_ascii=False)) + "\n")
        return
    table = Table(title=f"A {printable_name(result.a)}\nB {printable_name(result.b)}", title_justify="left")
    for column in ("measure", "value", "reads"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for row in _comparison_rows(result):
        table.add_row(*row)
    out.print(table)
    out.print(result.explanation, markup=False)


def _comparison_rows(result) -> list[tuple[str, str, str]]:
    """(measure, value, how to read it) for the compare table."""
    return [
        ("size A / B", f"{result.size_a[0]}x{result.size_a[1]} / {result.size_b[0]}x{result.size_b[1]}", "full size, pixels"),
        ("hist CORREL", _fmt(result.hist["correl"]), "HSV H-S histogram; 1 = identical, 0 = unrelated"),
        ("hist CHISQR", _fmt(result.hist["chisqr"]), "0 = identical, larger = more different"),
        ("hist INTERSECT", _fmt(result.hist["intersect"]), "1 = identical, 0 = nothing in common"),
        ("hist BHATTACHARYYA", _fmt(result.hist["bhattacharyya"]), "0 = identical, 1 = nothing in common"),
        ("MSE", _fmt(result.mse, 5), "16x16 grey thumbnails as they are; 0 = identical"),
        ("MSE, best orientation", _fmt(result.mse_oriented, 5), f"A {result.orientation}"),
        (
            "ORB matches",
            str(result.orb_matches),
            f"cross-checked, of {result.orb_keypoints[0]} / {result.orb_keypoints[1]} keypoints",
        ),
        (
            "ORB RANSAC inliers",
            str(result.orb_inliers),
            "matches consistent with one homography" + (" (A mirrored)" if result.orb_mirrored else ""),
        ),
        (
            "SIFT matches, brute force",
            str(result.sift_bf_matches),
            f"Lowe ratio 0.75, of {result.sift_keypoints[0]} / {result.sift_keypoints[1]} keypoints",
        ),
        ("SIFT matches, FLANN", str(result.sift_flann_matches), "Lowe ratio 0.75, KD-tree"),
        ("SIFT RANSAC inliers", str(result.sift_inliers), "of the brute-force matches"),
        (
            "autoencoder cosine",
            _fmt(result.ae_cosine),
            "1 = same latent" if result.ae_cosine is not None else "no autoencoder signature",
        ),
        ("autoencoder cosine, best orientation", _fmt(result.ae_cosine_oriented), "of A's flips and rotations (as a query)"),
        ("cnn cosine", _fmt(result.cnn_cosine), "1 = same descriptor" if result.cnn_cosine is not None else "no cnn signature"),
        (
            "fused",
            _fmt(result.fused),
            "p(same picture) from "
            + ", ".join(f"{k} {v:.3f}" for k, v in result.similarities.items())
            + (" (grey: hist weightless)" if result.grey else ""),
        ),
        ("score", _fmt(result.score), "p(same picture) with the ORB inliers (searcher/calibration.json)"),
    ]


class _Progress:
    """dups reporter: one rich progress bar per stage, on stderr."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.task = None

    def start(self, total: int, description: str = "") -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(description or "working", total=total)

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)

    def warn(self, message: str) -> None:
        self.progress.console.print(f"warning: {message}", markup=False)


DupsThresholdOption = typer.Option(
    DEFAULT_THRESHOLD,
    "--threshold",
    min=0.01,
    max=1.0,
    help="Calibrated probability of 'same picture' at which two images are linked.",
)
NeighboursOption = typer.Option(
    DEFAULT_NEIGHBOURS, "--neighbours", "-k", min=1, help="Nearest neighbours of each image asked of each index."
)
VerifyBudgetOption = typer.Option(
    DEFAULT_VERIFY_BUDGET, "--verify-budget", min=0, help="Most ORB verifications per image (its most promising pairs first)."
)


def dups(
    catalog: Optional[str] = CatalogOption,
    vectors: Optional[str] = VectorsOption,
    threshold: float = DupsThresholdOption,
    neighbours: int = NeighboursOption,
    workers: int = typer.Option(0, "--workers", "-w", min=0, help="Verification processes [default: one per core]."),
    verify_budget: int = VerifyBudgetOption,
    fmt: DupsFormat = typer.Option(DupsFormat.table, "--format", help="Output format."),
    html_path: Optional[Path] = typer.Option(
        None, "--html", help="Also write a self-contained HTML report of the groups.", dir_okay=False
    ),
    move_to: Optional[Path] = typer.Option(
        None,
        "--move-to",
        help="Move all but the kept copy of each group to DIR/<group id>/ (a dry run without --yes).",
        file_okay=False,
    ),
    yes: bool = typer.Option(False, "--yes", help="With --move-to: really move the files."),
    log: Optional[Path] = typer.Option(
        None, "--log", help="With --move-to --yes: the move log [default: DIR/searcher-moves-<time>.jsonl].", dir_okay=False
    ),
) -> None:
    """Group the whole catalog into near-duplicate groups and suggest the copy to keep in each.

    Each image's nearest neighbours in every index are candidates; a pair is linked when
    the calibrated probability of "same picture" >= --threshold (see `searcher compare`), and groups are the connected sets of
    linked images. Keep: largest resolution, then largest file, then oldest. Group id: "g" + the
    smallest sha256 of its members (12 hex digits), stable across runs. Nothing is ever deleted.
    """
    from searcher.catalog import Catalog
    from searcher.errors import UsageError

    if (yes or log) and move_to is None:
        raise UsageError("--yes and --log go with --move-to DIR")
    with Catalog.open(catalog_at(catalog, vectors), create=False, warn=warn) as opened:
        with progress_bar() as progress:
            result = opened.duplicates(
                threshold=threshold,
                neighbours=neighbours,
                workers=workers,
                reporter=_Progress(progress),
                verify_budget=verify_budget,
            )
        grouped = sum(len(g.members) for g in result.groups)
        seconds = sum(result.timings.values())
        rate = result.candidate_pairs / seconds if seconds > 0 else 0.0
        err.print(
            f"{result.images} files, {result.candidate_pairs} candidate pairs, {result.verified_pairs} verified with ORB, "
            f"{result.linked_pairs} linked: {len(result.groups)} groups of {grouped} files ({seconds:.1f} s, {rate:.0f} pairs/s)"
            + (f"; {result.ignored_groups} group(s) marked not duplicates left out" if result.ignored_groups else ""),
            markup=False,
        )
        _print_groups(result, fmt)
        if html_path is not None:
            from searcher.report import write_dups_html

            shown = write_dups_html(result, html_path)
            err.print(f"wrote {html_path} ({shown} groups)", markup=False)
        if move_to is not None:
            _move(opened, result, move_to, yes, log)


def _move(catalog, result, move_to: Path, yes: bool, log: Optional[Path]) -> None:
    """--move-to: the dry run, or the moves with their log."""
    from searcher.moves import default_log_path

    moves = catalog.plan_moves(result.groups, move_to)
    if not yes:
        for move in moves:
            err.print(f"would move {move.source} -> {move.target}", markup=False)
        err.print(
            f"dry run: {len(moves)} file(s) would be moved to {move_to.resolve()}; nothing moved (add --yes to move them)",
            markup=False,
        )
        return
    if not moves:
        err.print(
            f"nothing to move: every group's other copies are already under {move_to.resolve()}"
            if result.groups
            else "nothing to move",
            markup=False,
        )
        return
    log_path = Path(log or default_log_path(move_to)).resolve()
    try:
        outcome = catalog.move_duplicates(result.groups, move_to, log_path, moves)
    except KeyboardInterrupt:
        raise Interrupted(f"the moves done are in the log {log_path} (undo: searcher undo {log_path})") from None
    for move in outcome.moved:
        err.print(f"moved {move.source} -> {move.target}", markup=False)
    err.print(
        f"moved {len(outcome.moved)} file(s), skipped {len(outcome.skipped)}; log: {Path(log_path).resolve()} "
        f"(undo: searcher undo {Path(log_path).resolve()})",
        markup=False,
    )


def _print_groups(result, fmt: DupsFormat) -> None:
    if fmt is DupsFormat.json:
        sys.stdout.write(json_safe(json.dumps(result.to_dict(), indent=2, ensure_ascii=False)) + "\n")
    elif fmt is DupsFormat.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["group", "keep", "path", "score", "width", "height", "size"])
        for g in result.groups:
            for m in g.members:
                writer.writerow([g.id, int(m is g.keep), m.path, f"{m.score:.6f}", m.width, m.height, m.size])
        sys.stdout.write(buffer.getvalue())
    elif not result.groups:
        out.print("no near-duplicate groups", markup=False)
    else:
        # Plain lines rather than a table: paths stay whole and greppable at any terminal width.
        lines = []
        for g in result.groups:
            lines.append(f"{g.id}  {len(g.members)} images  keep: {g.keep_reason}")
            for m in g.members:
                lines.append(
                    f"  {'keep' if m is g.keep else '    '}  {m.score:.3f}  {f'{m.width}x{m.height}':>11}  {m.size:>10}  {m.path}"
                )
        out.print("\n".join(lines), markup=False)


def undo(
    log: Path = typer.Argument(..., help="A move log written by `searcher dups --move-to DIR --yes`.", dir_okay=False),
    catalog: Optional[str] = typer.Option(
        None,
        "--catalog",
        envvar="SEARCHER_CATALOG",
        help="Catalog to re-point [default: the one the log names]",
        show_default=False,
        metavar="<path>",
    ),
    vectors: Optional[str] = VectorsOption,
) -> None:
    """Move every file of a move log back where it was (never overwriting) and re-point the catalog."""
    from searcher import api

    outcome = api.undo(log, catalog_at(catalog, vectors) if catalog else None, warn=warn)
    for moved, restored in outcome.restored:
        err.print(f"restored {moved} -> {restored}", markup=False)
    out.print(f"{len(outcome.restored)} restored, {len(outcome.skipped)} skipped", markup=False)
    if outcome.failed:
        raise SystemExit(1)


def info(
    catalog: Optional[str] = CatalogOption,
    vectors: Optional[str] = VectorsOption,
    fmt: CompareFormat = typer.Option(CompareFormat.table, "--format", help="Output format."),
) -> None:
    """Catalog path, schema version, image counts, signatures and their versions, index sizes, disk use."""
    from searcher import api

    facts = api.info(catalog_at(catalog, vectors))
    if fmt is CompareFormat.json:
        sys.stdout.write(json_safe(json.dumps(facts.to_dict(), indent=2)) + "\n")
        return
    lines = [
        f"catalog     {facts.catalog}",
        f"schema      {facts.schema} (this searcher: {facts.schema_head})",
        f"images      {facts.images['ok']} ok, {facts.images['failed']} failed"
        + (f"  ({', '.join(f'{n} {k}' for k, n in sorted(facts.kinds.items()))})" if facts.kinds else ""),
    ]
    for s in facts.signatures:
        state = {True: "current", False: "stale (run searcher ingest)", None: "extractor unavailable here"}[s.current]
        lines.append(f"signature   {s.name} v{s.version}: {s.count} ({state})")
    for i in facts.indexes:
        state = "up to date" if i.up_to_date else "out of date (rebuilt on next use)"
        lines.append(f"index       {i.name}: {i.vectors} vectors, {_bytes(i.bytes)} ({state})")
    d = facts.disk
    lines.append(
        f"disk        {_bytes(d['total'])} (database {_bytes(d['database'])}, indexes {_bytes(d['indexes'])}, other {_bytes(d['other'])})"
    )
    out.print("\n".join(lines), markup=False)


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def register(app: typer.Typer) -> None:
    """Add compare, dups, undo and info to the searcher command line."""
    app.command()(compare)
    app.command()(dups)
    app.command()(undo)
    app.command()(info)
