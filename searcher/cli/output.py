"""How results look on a terminal: paths shortened without cutting a name, fixed-width tables that
keep one line per row, and the query formats (table, wide, paths, json, jsonl, csv).

Every score printed is higher = more similar; raw distances keep their `_distance` name.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys

QUERY_FORMATS = ("table", "wide", "paths", "json", "jsonl", "csv")
# Score columns of --format wide, in this order when present (other keys follow, sorted).
WIDE_COLUMNS = ("fused", "hist", "mse", "ae", "cnn", "orb_inliers", "orb_matches")


def terminal_width() -> int | None:
    """Columns of the terminal stdout writes to; None when it is not a terminal (no limit)."""
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size((80, 24)).columns


def shorten(path: str, width: int | None = None, cwd: str | None = None) -> str:
    """The path relative to the current folder when it is inside it (else with ~ for the home
    folder); if `width` is given and it is longer, leading folders become "…/", never a cut name."""
    from searcher.text import printable_name  # control characters and undecodable bytes shown escaped

    cwd = cwd or os.getcwd()
    shown = path
    if os.path.isabs(path):
        if path == cwd or path.startswith(cwd.rstrip(os.sep) + os.sep):
            shown = os.path.relpath(path, cwd)
        else:
            home = os.path.expanduser("~")
            if home not in ("", os.sep) and path.startswith(home.rstrip(os.sep) + os.sep):
                shown = "~" + path[len(home.rstrip(os.sep)) :]
    shown = printable_name(shown)
    if width is None or len(shown) <= width:
        return shown
    parts = shown.split(os.sep)
    for start in range(1, len(parts)):
        candidate = "…" + os.sep + os.sep.join(parts[start:])
        if len(candidate) <= width:
            return candidate
    return parts[-1]  # the name alone, whole, even if the line then runs long


def where(hit, width: int | None = None) -> str:
    """A hit's place: its path, and inside a video the frame, time and box."""
    suffix = ""
    if hit.frame is not None:
        box = f" box={','.join(map(str, hit.box))}" if hit.box else ""
        suffix = f" frame={hit.frame} t={hit.time:.2f}s{box}"
    room = None if width is None else max(8, width - len(suffix))
    return shorten(hit.path, room) + suffix


def verdict(hit) -> str:
    """'near-dup' when the pair rule of dups and compare holds (the calibrated p_same >= the threshold),
    else '-'; blank for a single-signature ranking (no p_same)."""
    if "p_same" not in hit.scores:
        return ""
    from searcher.scoring import DEFAULT_THRESHOLD

    return "near-dup" if hit.scores["p_same"] >= DEFAULT_THRESHOLD else "-"


def number(value) -> str:
    if value is None:
        return ""
    if float(value).is_integer() and abs(value) >= 1:
        return str(int(value))
    return f"{value:.3f}"


def score_keys(results, columns: list[str] | None) -> list[str]:
    """The score columns to show: those asked for (--columns), else every one present (wide)."""
    present = {k for r in results for h in r.hits for k in h.scores}
    if columns is not None:
        return columns
    return [k for k in WIDE_COLUMNS if k in present] + sorted(present - set(WIDE_COLUMNS))


def render_table(header: list[str], rows: list[list[str]], right: set[int], width: int | None) -> list[str]:
    """Fixed-width lines: every column but the last padded to its widest cell; the last (a path)
    gets what is left of `width` and shortens itself (cells are callables of the room left)."""
    cells = [[c if isinstance(c, str) else None for c in row] for row in rows]
    sizes = [max([len(header[i])] + [len(r[i]) for r in cells if r[i] is not None]) for i in range(len(header) - 1)]
    used = sum(sizes) + 2 * len(sizes)
    room = None if width is None else max(12, width - used)

    def line(values: list[str]) -> str:
        padded = [v.rjust(sizes[i]) if i in right else v.ljust(sizes[i]) for i, v in enumerate(values[:-1])]
        return "  ".join([*padded, values[-1]]).rstrip()

    lines = [line(header)]
    for row in rows:
        last = row[-1](room) if callable(row[-1]) else row[-1]
        lines.append(line([*row[:-1], last]))
    return lines


def query_table(results, columns: list[str] | None, width: int | None, wide: bool) -> str:
    """One block per query: its path, a header row, then one line per hit."""
    blocks = []
    for result in results:
        keys = score_keys([result], columns) if (wide or columns is not None) else []
        header = ["rank", "score", "verdict", *keys, "path"]
        rows = [
            [
                str(rank),
                f"{hit.score:.3f}",
                verdict(hit),
                *(number(hit.scores.get(k)) for k in keys),
                lambda room, h=hit: where(h, None if wide else room),
            ]
            for rank, hit in enumerate(result.hits, 1)
        ]
        right = {0, 1, *range(3, 3 + len(keys))}
        title = f"query: {shorten(result.query, None if wide or width is None else width - 7)}"
        body = render_table(header, rows, right, None if wide else width) if rows else ["(no results)"]
        blocks.append("\n".join([title, *body]))
    return "\n\n".join(blocks)


def result_dict(result) -> dict:
    """One line of --format jsonl (QueryResult.to_dict: the same object `searcher serve` returns)."""
    return result.to_dict()


def query_csv(results) -> str:
    keys = score_keys(results, None)
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
            writer.writerow(
                [r.query, rank, hit.path, *video, f"{hit.score:.6f}", *(_csv_number(hit.scores.get(k)) for k in keys)]
            )
    return buffer.getvalue()


def _csv_number(value) -> str:
    return "" if value is None else f"{value:.6g}"


def format_query(results, fmt: str, columns: list[str] | None = None, width: int | None = None) -> str:
    """The text `searcher query` prints for these results (ends with a newline unless empty)."""
    from searcher.text import json_safe, printable_name  # JSON keeps the exact name; lines show it escaped

    if fmt == "jsonl":
        text = "\n".join(json_safe(json.dumps(result_dict(r), ensure_ascii=False)) for r in results)
    elif fmt == "json":
        text = json_safe(json.dumps([result_dict(r) for r in results], ensure_ascii=False, indent=2))
    elif fmt == "csv":
        return query_csv(results)
    elif fmt == "paths":
        text = "\n".join(printable_name(h.path) for r in results for h in r.hits)
    else:
        text = query_table(results, columns, width, wide=fmt == "wide")
    return text + "\n" if text else ""


def dups_table(result, width: int | None) -> str:
    """Header row, then per group one line per member (kept copy first) and the reason it is kept."""
    if not result.groups:
        return "no near-duplicate groups"
    header = ["group", "action", "score", "pixels", "bytes", "path"]
    lines = []
    for g in result.groups:
        rows = []
        for k, m in enumerate(g.members):
            action = "keep" if m is g.keep else ("ref" if m.path in g.protected else "copy")
            rows.append(
                [
                    g.id if k == 0 else "",
                    action,
                    f"{m.score:.3f}",
                    f"{m.width}x{m.height}",
                    str(m.size),
                    lambda room, p=m.path: shorten(p, room),
                ]
            )
        lines.append((rows, g.keep_reason))
    all_rows = [row for rows, _ in lines for row in rows]
    table = render_table(header, all_rows, {2, 3, 4}, width)
    out, at = [table[0]], 1
    for rows, reason in lines:
        out.extend(table[at : at + len(rows)])
        out.append(f"  kept because: {reason}")
        at += len(rows)
    return "\n".join(out)
