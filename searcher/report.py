"""Self-contained HTML pages for people to review results: near-duplicate groups and query results.

Each page is one file: inline CSS, no script, and every picture embedded as a base64 JPEG
thumbnail (decoded as ingest decodes it: EXIF-rotated; long side THUMB_SIDE, JPEG quality 80), so
it can be mailed or archived and opened anywhere. A file that cannot be read shows as a grey box
saying why.
"""

from __future__ import annotations

import base64
import html
import os
from datetime import datetime, timezone

import cv2

from searcher import images
from searcher.errors import SearcherError
from searcher.text import printable

THUMB_SIDE = 220
JPEG_QUALITY = 80
MAX_GROUPS = 500  # a page with more thumbnails is slow to write and to open
MAX_MEMBERS = 60  # per group: a video's frames can make one group of hundreds

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fafafa; }
h1 { font-size: 20px; margin: 0 0 4px; }
.summary { color: #555; margin-bottom: 20px; }
section { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 12px; margin-bottom: 16px; }
section h2 { font-size: 15px; margin: 0 0 8px; }
section h2 .why { font-weight: normal; color: #555; }
.row { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.card { width: %(side)dpx; border: 2px solid #ddd; border-radius: 4px; padding: 6px; background: #fff; }
.card.keep, .card.query { border-color: #2a8a3a; }
.card img { display: block; max-width: %(side)dpx; max-height: %(side)dpx; margin: 0 auto; }
.missing { width: %(side)dpx; height: 120px; background: #ddd; color: #666; display: flex; align-items: center; justify-content: center; text-align: center; font-size: 12px; }
.name { font-weight: 600; word-break: break-all; margin-top: 4px; }
.meta { color: #555; font-size: 12px; overflow-wrap: anywhere; }
.badge { display: inline-block; background: #2a8a3a; color: #fff; border-radius: 3px; padding: 0 5px; font-size: 11px; margin-right: 4px; }
.score { font-variant-numeric: tabular-nums; }
""" % {"side": THUMB_SIDE}


def thumbnail_uri(path: str, side: int = THUMB_SIDE) -> tuple[str | None, str]:
    """(data: URI of a JPEG thumbnail, or None, and the reason when None)."""
    if not os.path.isabs(path) or not os.path.isfile(path):
        return None, "not a file here"
    try:
        bgr = images.fit_to_work_size(images.load_image(path).bgr, side)
    except SearcherError as e:
        return None, str(e)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        return None, "cannot encode a thumbnail"
    return "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode("ascii"), ""


def _picture(path: str) -> str:
    uri, reason = thumbnail_uri(path)
    if uri is None:
        return f'<div class="missing">{html.escape(reason)}</div>'
    return f'<img src="{uri}" alt="{html.escape(os.path.basename(path))}">'


def _hit_picture(hit) -> str:
    """A hit's thumbnail: the file, or for a video hit the frame (or person crop) it names."""
    if hit.frame is None:
        return _picture(hit.path)
    from searcher.video import read_frame

    bgr = read_frame(hit.path, hit.frame, hit.box)
    ok, data = (
        cv2.imencode(".jpg", images.fit_to_work_size(bgr, THUMB_SIDE), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if bgr is not None
        else (False, None)
    )
    if not ok:
        return '<div class="missing">cannot read this frame of the video</div>'
    where = f"frame {hit.frame}"
    return f'<img src="data:image/jpeg;base64,{base64.b64encode(data.tobytes()).decode("ascii")}" alt="{html.escape(where)}">'


def _hit_name(hit) -> str:
    name = os.path.basename(hit.path)
    if hit.frame is not None:
        name += f" frame {hit.frame} ({hit.time:.2f} s)" + (f" box {','.join(map(str, hit.box))}" if hit.box else "")
    return name


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _score(name: str, value: float) -> str:
    if name.startswith("orb_"):
        return f"{value:.0f}"  # counts
    return f"{value:.5f}" if name == "mse" else f"{value:.3f}"  # raw MSE of [0, 1] thumbnails is small


def _page(title: str, summary: str, body: list[str]) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
        f'<h1>{html.escape(title)}</h1><div class="summary">{summary} &middot; written {stamp}</div>\n'
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _write(path: str | os.PathLike, text: str) -> None:
    """Write the page; file names with undecodable bytes or control characters appear escaped (\\xff),
    so the page is always valid UTF-8."""
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(printable(text))
    except OSError as e:
        raise SearcherError(f"cannot write {path}: {e.strerror}") from None


def write_dups_html(result, path: str | os.PathLike, max_groups: int = MAX_GROUPS, max_members: int = MAX_MEMBERS) -> int:
    """The groups of a searcher.dups.DupsResult side by side, kept copy first; returns the groups written.
    At most `max_groups` groups (the largest first, as dups orders them) and `max_members` thumbnails per group."""
    from searcher.scoring import PAIR_RULE

    shown = result.groups[:max_groups]
    body = []
    for group in shown:
        cards = []
        for member in group.members[:max_members]:
            keep = member is group.keep
            badge = '<span class="badge">KEEP</span>' if keep else ""
            cards.append(
                f'<div class="card{" keep" if keep else ""}" title="{html.escape(member.path)}">{_picture(member.path)}'
                f'<div class="name">{badge}{html.escape(os.path.basename(member.path))}</div>'
                f'<div class="meta">score <span class="score">{member.score:.3f}</span> &middot; '
                f"{member.width}x{member.height} &middot; {_size(member.size)}</div>"
                f'<div class="meta">{html.escape(os.path.dirname(member.path))}</div></div>'
            )
        if len(group.members) > max_members:
            cards.append(f'<div class="card"><div class="missing">and {len(group.members) - max_members} more</div></div>')
        body.append(
            f'<section id="{html.escape(group.id)}"><h2>{html.escape(group.id)} &middot; {len(group.members)} images '
            f'<span class="why">&middot; keep {html.escape(os.path.basename(group.keep.path))}: {html.escape(group.keep_reason)}</span></h2>'
            f'<div class="row">{"".join(cards)}</div></section>'
        )
    more = f" (the first {len(shown)} shown)" if len(shown) < len(result.groups) else ""
    summary = html.escape(
        f"{len(result.groups)} groups{more} among {result.images} images; threshold {result.threshold:g}; {PAIR_RULE}; "
        "score of a member = its best pair score in the group"
    )
    _write(path, _page("searcher: near-duplicate groups", summary, body))
    return len(shown)


def write_query_html(results: list, path: str | os.PathLike) -> None:
    """Each query image (searcher.query.QueryResult) and its results as thumbnails with their scores."""
    body = []
    for result in results:
        cards = [
            f'<div class="card query" title="{html.escape(result.query)}">{_picture(result.query)}'
            f'<div class="name"><span class="badge">QUERY</span>{html.escape(os.path.basename(result.query))}</div>'
            f'<div class="meta">{html.escape(os.path.dirname(result.query))}</div></div>'
        ]
        if result.error:
            cards.append(f'<div class="card"><div class="missing">{html.escape(result.error)}</div></div>')
        for rank, hit in enumerate(result.hits, 1):
            details = " &middot; ".join(f"{html.escape(k)}&nbsp;{_score(k, v)}" for k, v in hit.scores.items())
            cards.append(
                f'<div class="card" title="{html.escape(hit.path)}">{_hit_picture(hit)}'
                f'<div class="name">#{rank} &middot; score <span class="score">{hit.score:.3f}</span></div>'
                f'<div class="meta">{html.escape(_hit_name(hit))}</div>'
                f'<div class="meta">{details}</div></div>'
            )
        body.append(f'<section><h2>{html.escape(result.query)}</h2><div class="row">{"".join(cards)}</div></section>')
    summary = html.escape(f"{len(results)} query image(s); higher score = more similar")
    _write(path, _page("searcher: query results", summary, body))
