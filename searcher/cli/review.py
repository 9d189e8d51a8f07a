"""Review commands: compare, dups, undo, info. Same conventions as searcher.cli (which registers them):
results on stdout, progress and messages on stderr, SearcherError for the user's mistakes (exit 1)."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional, Tuple

import typer
from rich.table import Table

from searcher.cli.common import CatalogOption, Interrupted, VectorsOption, WeightsOption, catalog_at, err, out, use_weights, warn
from searcher.cli.output import dups_table, terminal_width
from searcher.cli.progress import ProgressReporter
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
    weights: Optional[Path] = WeightsOption,
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
    use_weights(weights)
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


class KeepRule(str, Enum):
    original = "original"
    largest = "largest"
    oldest = "oldest"
    newest = "newest"
    shortest_path = "shortest-path"


class LinkKind(str, Enum):
    hard = "hard"
    sym = "sym"


# dups options, declared apart so that the command reads as what it does
_PATHS = typer.Argument(
    None, help="Only groups with a file under these folders [default: the whole catalog]", show_default=False, metavar="PATH"
)
_KEEP = typer.Option(
    KeepRule.original,
    "--keep",
    help="Copy to keep: original (most real detail: upscaled and heavily recompressed copies lose; then oldest), largest, oldest, newest, shortest-path.",
)
_REFERENCE = typer.Option(
    None,
    "--reference",
    help="Files in this folder are always kept, never moved or linked (repeatable)",
    file_okay=False,
    show_default=False,
    metavar="DIR",
)
_THRESHOLD = typer.Option(
    DEFAULT_THRESHOLD,
    "--threshold",
    min=0.01,
    max=1.0,
    help="Calibrated probability of 'same picture' at which two images are linked.",
)
_NEIGHBOURS = typer.Option(
    DEFAULT_NEIGHBOURS, "--neighbours", "-k", min=1, help="Nearest neighbours of each image asked of each index."
)
_VERIFY_BUDGET = typer.Option(
    DEFAULT_VERIFY_BUDGET, "--verify-budget", min=0, help="Most ORB verifications per image (its most promising pairs first)."
)
_WORKERS = typer.Option(
    0, "--workers", "-w", min=0, help="Verification processes [default: one per core]", show_default=False, metavar="N"
)
_FMT = typer.Option(DupsFormat.table, "--format", help="Output format.")
_HTML_PATH = typer.Option(
    None, "--html", help="Also write a self-contained HTML report of the groups.", dir_okay=False, metavar="FILE"
)
_IGNORE = typer.Option(
    None,
    "--ignore",
    help="Record that group GROUP_ID is not a group of duplicates: it is not shown again (repeatable)",
    show_default=False,
    metavar="GROUP_ID",
)
_IGNORE_PAIR = typer.Option(
    None,
    "--ignore-pair",
    help="Record that files A and B are not duplicates of each other (by content: survives renames)",
    show_default=False,
    metavar="A B",
)
_MOVE_TO = typer.Option(
    None,
    "--move-to",
    help="Move all but the kept copy of each group to DIR/<group id>/ (a dry run without --yes).",
    file_okay=False,
    metavar="DIR",
)
_LINK = typer.Option(
    None,
    "--link",
    help="Replace each copy with the kept file's bytes by a hard or symbolic link to it; with --move-to, every copy is moved and linked (a dry run without --yes).",
    show_default=False,
)
_YES = typer.Option(False, "--yes", help="With --move-to or --link: really do it.")
_LOG = typer.Option(
    None,
    "--log",
    help="With --yes: the action log [default: DIR/searcher-moves-<time>.jsonl, or in the catalog folder]",
    dir_okay=False,
    show_default=False,
    metavar="FILE",
)


def dups(
    paths: Optional[List[Path]] = _PATHS,
    catalog: Optional[str] = CatalogOption,
    vectors: Optional[str] = VectorsOption,
    keep: KeepRule = _KEEP,
    reference: Optional[List[Path]] = _REFERENCE,
    threshold: float = _THRESHOLD,
    neighbours: int = _NEIGHBOURS,
    workers: int = _WORKERS,
    verify_budget: int = _VERIFY_BUDGET,
    fmt: DupsFormat = _FMT,
    html_path: Optional[Path] = _HTML_PATH,
    ignore: Optional[List[str]] = _IGNORE,
    ignore_pair: Optional[Tuple[Path, Path]] = _IGNORE_PAIR,
    move_to: Optional[Path] = _MOVE_TO,
    link: Optional[LinkKind] = _LINK,
    yes: bool = _YES,
    log: Optional[Path] = _LOG,
) -> None:
    """Group the catalog into near-duplicate groups, say which copy to keep in each and why, and act on them.

    Each image's nearest neighbours in every index are candidates; a pair is linked when its
    calibrated p(same picture) >= --threshold (see `searcher compare`); groups are the connected sets of
    linked images. Group id: "g" + the smallest sha256 of its members (12 hex digits), stable across
    runs. Files moved out for review, paths of one file (hard links) and files gone from disk are
    not offered. Nothing is ever deleted; every action is logged and `searcher undo LOG` reverses it.
    """
    from searcher.catalog import Catalog
    from searcher.errors import UsageError
    from searcher.group_review import ReviewOptions

    if (yes or log) and move_to is None and link is None:
        raise UsageError("--yes and --log go with --move-to DIR or --link hard|sym")
    for folder in [*(paths or []), *(reference or [])]:
        if not folder.is_dir():
            raise UsageError(f"no such folder: {folder}")
    review = ReviewOptions(
        keep_rule=keep.value,
        references=tuple(os.path.realpath(r) for r in reference or ()),  # as ingest catalogues them
        scope=tuple(os.path.realpath(p) for p in paths or ()),
    )
    with Catalog.open(catalog_at(catalog, vectors), create=False, warn=warn) as opened:
        _record_ignores(opened, ignore or [], ignore_pair)
        with ProgressReporter(unit="pairs") as reporter:
            options = {"threshold": threshold, "neighbours": neighbours, "verify_budget": verify_budget}
            result = opened.duplicates(workers=workers, reporter=reporter, review=review, **options)
        _print_summary(result)
        _print_groups(result, fmt)
        if html_path is not None:
            from searcher.report import write_dups_html

            shown = write_dups_html(result, html_path)
            err.print(f"wrote {html_path} ({shown} groups)", markup=False)
        if move_to is not None or link is not None:
            _act(opened, result, move_to, link.value if link else None, yes, log)


def _print_summary(result) -> None:
    grouped = sum(len(g.members) for g in result.groups)
    seconds = sum(result.timings.values())
    rate = result.candidate_pairs / seconds if seconds > 0 else 0.0
    err.print(
        f"{result.images} files, {result.candidate_pairs} candidate pairs, {result.verified_pairs} verified with ORB, "
        f"{result.linked_pairs} linked: {len(result.groups)} groups of {grouped} files ({seconds:.1f} s, {rate:.0f} pairs/s)"
        + (f"; {result.ignored_groups} group(s) marked not duplicates left out" if result.ignored_groups else ""),
        markup=False,
    )


def _record_ignores(catalog, groups: list[str], pair) -> None:
    """--ignore / --ignore-pair: decisions stored in the catalog, keyed by content."""
    import re

    from searcher.errors import UsageError

    for group in groups:
        if not re.fullmatch(r"g[0-9a-f]{12}|id[0-9]+", group):
            raise UsageError(f"not a group id: {group!r} (ids look like g1a2b3c4d5e6f, as dups prints them)")
    shas = [_content_id(p) for p in pair] if pair else []
    if shas and shas[0] == shas[1]:
        raise UsageError(f"{pair[0]} and {pair[1]} have the same bytes: they are duplicates")
    for group in groups:
        catalog.store.add_ignored_group(group)
        err.print(f"group {group} marked not duplicates", markup=False)
    if shas:
        catalog.store.add_ignored_pair(*shas)
        err.print(f"{pair[0]} and {pair[1]} marked not duplicates", markup=False)


def _content_id(path: Path) -> str:
    """sha256 of a file's bytes (what the catalog keys pair decisions by)."""
    from searcher.errors import UsageError
    from searcher.links import sha256_file

    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    try:
        return sha256_file(str(path))
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None


def _act(catalog, result, move_to: Optional[Path], link: Optional[str], yes: bool, log: Optional[Path]) -> None:
    """--move-to and/or --link: a dry run that lists every action, or (with --yes) the logged actions."""
    from searcher.links import plan_links
    from searcher.moves import default_log_path

    moves = catalog.plan_moves(result.groups, move_to) if move_to is not None else []
    moved_sources = {m.source for m in moves}
    links, left = plan_links(result.groups, moved_sources) if link else ([], [])
    if not yes:
        for move in moves:
            err.print(f"would move {move.source} -> {move.target}", markup=False)
        for plan in links:
            err.print(f"would link {plan.path} -> {plan.target} ({link})", markup=False)
        for path, reason in left:
            err.print(f"would leave {path}: {reason}", markup=False)
        err.print(f"dry run: {len(moves)} move(s), {len(links)} link(s); nothing done (add --yes to do it)", markup=False)
        return
    if not moves and not links:
        for path, reason in left:
            warn(f"left {path}: {reason}")
        err.print("nothing to do", markup=False)
        return
    log_path = Path(log or default_log_path(move_to if move_to is not None else catalog.location.directory / "logs")).resolve()
    try:
        outcome = catalog.move_duplicates(result.groups, move_to, log_path, moves) if moves else None
    except KeyboardInterrupt:
        raise Interrupted(f"the moves done are in the log {log_path} (undo: searcher undo {log_path})") from None
    for move in outcome.moved if outcome else []:
        err.print(f"moved {move.source} -> {move.target}", markup=False)
    linked = 0
    if links:
        linked = _link(catalog, links, link, log_path, outcome, left)
    moved = len(outcome.moved) if outcome else 0
    skipped = len(outcome.skipped) if outcome else 0
    err.print(
        f"moved {moved}, linked {linked}, skipped {skipped + len(links) - linked + len(left)}; log: {log_path.resolve()} "
        f"(undo: searcher undo {log_path.resolve()})",
        markup=False,
    )


def _link(catalog, links, kind: str, log_path: Path, outcome, left) -> int:
    """The links of --link (after the moves of --move-to, if any), logged like them."""
    from searcher.links import link_duplicates

    moved = {m.source for m in outcome.moved} if outcome else set()
    ready = [p for p in links if p.replaces or p.path in moved]  # a copy that could not be moved keeps its place
    for path, reason in left:
        warn(f"not linked: {path}: {reason}")

    def relinked(plan) -> None:
        if plan.replaces:  # same bytes, the link's size and time: the next ingest sees it unchanged
            st = os.stat(plan.path)
            catalog.store.set_file_stat(plan.path, st.st_size, st.st_mtime_ns)

    done = link_duplicates(ready, kind, str(log_path), str(catalog.location.directory), warn=warn, on_linked=relinked)
    for plan in done.linked:
        err.print(f"linked {plan.path} -> {plan.target}", markup=False)
    return len(done.linked)


def _print_groups(result, fmt: DupsFormat) -> None:
    if fmt is DupsFormat.json:
        sys.stdout.write(json_safe(json.dumps(result.to_dict(), indent=2, ensure_ascii=False)) + "\n")
    elif fmt is DupsFormat.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["group", "keep", "path", "score", "width", "height", "size", "reference"])
        for g in result.groups:
            for m in g.members:
                writer.writerow(
                    [g.id, int(m is g.keep), m.path, f"{m.score:.6f}", m.width, m.height, m.size, int(m.path in g.protected)]
                )
        sys.stdout.write(buffer.getvalue())
    else:
        out.print(dups_table(result, terminal_width()), markup=False)


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
