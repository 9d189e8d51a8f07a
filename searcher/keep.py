"""Duplicate groups and which copy of each to keep: the rules behind `dups --keep` and `--reference`.

Group id: "g" + the first 12 hex digits of the smallest sha256 among the members. It stays the same
across runs, renames and moves for as long as that member stays in the group.

Rules (each ends with the path in sort order, so the choice is deterministic):
- largest:       most pixels, then largest file, then oldest.
- oldest/newest: capture time (EXIF DateTimeOriginal), else modification time (whole seconds),
                 then the shortest file name.
- shortest-path: fewest characters in the path.
- original:      the copy with the most real detail, not the most pixels. Recipe:
  1. Real detail. A member B larger than a member A (by more than SIZE_STEP in pixels) is
     "no more detailed than A" when B's energy in the band just above A's Nyquist frequency
     (from it to 1.5 times it) is small next to A's energy in its own top band of that width:
     ratio < UPSCALED_RATIO, on matching centre crops at native resolution (b's crop covers a's;
     band energies from shrink-then-enlarge residuals). An upscaled copy has almost nothing above
     the old Nyquist; a genuine larger original has detail there comparable with the smaller
     copy's finest band. Such a B gets A's detail (its "real" pixel count). bench/keep_rule.py,
     on 38 corpus photos (tuning set, not sample_data) at 600 px: below UPSCALED_RATIO are 34/38
     2x cubic q70 copies, 27/38 1280x800 q40 copies, 34/38 1.5x PNG copies, and 4/38 and 3/38
     genuine larger copies (against their half size, at q90 and q50), 0/38 against an 80 % crop.
     The misses are blurred or dark images, whose copies differ little in detail anyway.
  2. Among the members within SIZE_STEP of the most real detail: the better JPEG quality class
     (estimated from the quantization tables against the IJG tables: >= 85 or lossless, 60-85,
     below 60: heavy recompression), then the oldest capture/modification time (whole seconds),
     then the most pixels, then the shortest file name (copies tend to add to it: "IMG_1 (1).jpg",
     "IMG_1-edited.jpg"), then the path.
  A member whose file cannot be read now is never kept while another can.

`--reference DIR`: members under a reference folder are always kept (never moved); the rule then
chooses the group's `keep` among them.
"""

from __future__ import annotations

import bisect
import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol, Sequence

import numpy as np

RULES = ("original", "largest", "oldest", "newest", "shortest-path")
DEFAULT_RULE = "original"

SIZE_STEP = 1.3  # pixel-count ratio below which two copies count as the same detail
UPSCALED_RATIO = 0.25  # see step 1 of the recipe (tuned on corpus photos, not on sample_data)
BAND = 1.5  # width of the frequency bands compared, as a ratio
CROP = 384  # side of the centre crop of the smaller copy compared (native pixels)
MAX_COMPARED = 4  # smaller members a member is compared with (groups are small)
GREYS_KEPT = 4 * MAX_COMPARED  # decoded images kept while a group is judged (the least-detail ones recur)

# IJG (libjpeg) standard luminance quantization table, natural order: quality q scales it by
# 5000 / q (q < 50) or 200 - 2q (q >= 50), in percent.
_IJG_LUMA = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
     14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
     49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    dtype=np.float64,
)  # fmt: skip


@dataclass
class Member:
    image_id: int
    path: str
    sha256: str
    width: int
    height: int
    size: int
    mtime_ns: int
    score: float = 0.0  # best score of this member's linked pairs


@dataclass
class Group:
    id: str
    keep: Member
    keep_reason: str
    members: list[Member]  # the kept copy first, then by score
    protected: set[str] = field(default_factory=set)  # paths under a --reference folder: never moved


def keep_key(member: Member) -> tuple:
    """Sort key of the copy to keep: largest resolution, then largest file, then oldest, then path."""
    return (-(member.width or 0) * (member.height or 0), -member.size, member.mtime_ns, member.path)


def choose_keep(members: list[Member]) -> tuple[Member, str]:
    """The copy to keep and why, in words."""
    ordered = sorted(members, key=keep_key)
    keep, runner_up = ordered[0], ordered[1]
    pixels = lambda m: (m.width or 0) * (m.height or 0)  # noqa: E731
    if pixels(keep) != pixels(runner_up):
        reason = f"largest resolution ({keep.width}x{keep.height}; next {runner_up.width}x{runner_up.height})"
    elif keep.size != runner_up.size:
        reason = f"same resolution, largest file ({keep.size} bytes; next {runner_up.size})"
    elif keep.mtime_ns != runner_up.mtime_ns:
        when = datetime.fromtimestamp(keep.mtime_ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        reason = f"same resolution and file size, oldest (modified {when})"
    else:
        reason = "same resolution, file size and age: first path in sort order"
    return keep, reason


def group_id(members: list[Member]) -> str:
    """'g' + 12 hex digits of the smallest sha256 among the members (stable while that member stays)."""
    hashes = [m.sha256 for m in members if m.sha256]
    if hashes:
        return "g" + min(hashes)[:12]
    return f"id{min(m.image_id for m in members)}"


def make_group(group_members: list[Member]) -> Group:
    keep, reason = choose_keep(group_members)
    others = sorted((m for m in group_members if m is not keep), key=lambda m: (-m.score, m.path))
    return Group(id=group_id(group_members), keep=keep, keep_reason=reason, members=[keep, *others])


def sorted_groups(groups: list[Group]) -> list[Group]:
    return sorted(groups, key=lambda g: (-len(g.members), g.id))


class Candidate(Protocol):
    path: str
    width: int
    height: int
    size: int
    mtime_ns: int


@dataclass
class FileFacts:
    """What the original rule reads of a file: header facts and capture time."""

    readable: bool
    quality: float | None = None  # estimated JPEG quality; None: not a JPEG (lossless or unknown)
    captured: datetime | None = None  # EXIF DateTimeOriginal


def jpeg_quality(quantization: dict | None) -> float | None:
    """IJG quality (1..100) that best explains a JPEG's luminance table (Pillow's `im.quantization`)."""
    if not quantization or 0 not in quantization or len(quantization[0]) != 64:
        return None
    scale = float(np.mean(np.asarray(quantization[0], dtype=np.float64) * 100.0 / _IJG_LUMA))
    quality = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
    return float(min(100.0, max(1.0, quality)))


def quality_class(quality: float | None) -> int:
    """0: lossless or quality >= 85; 1: 60-85; 2: heavily recompressed (< 60)."""
    if quality is None or quality >= 85:
        return 0
    return 1 if quality >= 60 else 2


def read_facts(path: str) -> FileFacts:
    """JPEG quality and EXIF capture time from the file's header (no pixel decoding)."""
    import stat

    from PIL import Image

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device would block the open
            return FileFacts(False)
        with Image.open(path) as im:
            quality = jpeg_quality(getattr(im, "quantization", None)) if im.format == "JPEG" else None
            return FileFacts(True, quality, _capture_time(im))
    except Exception:  # unreadable, vanished or not an image any more: never the one kept
        return FileFacts(False)


def _facts(members: Sequence[Candidate]) -> list[FileFacts]:
    """read_facts of each member, each file read once (the frames of a video share its path)."""
    by_path = {path: read_facts(path) for path in dict.fromkeys(m.path for m in members)}
    return [by_path[m.path] for m in members]


def _capture_time(im) -> datetime | None:
    try:
        value = im.getexif().get_ifd(0x8769).get(36867)  # Exif IFD -> DateTimeOriginal
        return datetime.strptime(str(value).strip("\x00 "), "%Y:%m:%d %H:%M:%S").replace(tzinfo=timezone.utc)
    except Exception:  # absent or malformed: the modification time stands in
        return None


def _age(member: Candidate, facts: FileFacts) -> int:
    """Whole seconds since the epoch of the capture time, else of the modification time (copies
    made in the same second, or on file systems with coarse times, count as the same age)."""
    return int(facts.captured.timestamp()) if facts.captured else member.mtime_ns // 1_000_000_000


def _pixels(member: Candidate) -> int:
    return (member.width or 0) * (member.height or 0)


def _grey(path: str) -> np.ndarray | None:
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)
        grey = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    except (OSError, ValueError, cv2.error):
        return None
    return grey.astype(np.float32) if grey is not None else None


def _centre(grey: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = grey.shape
    height, width = min(height, h), min(width, w)
    y, x = (h - height) // 2, (w - width) // 2
    return grey[y : y + height, x : x + width]


def _band_energy(grey: np.ndarray, factor: float) -> float:
    """Mean squared difference between the image and itself shrunk by `factor` and enlarged back:
    the energy above 1/factor of its Nyquist frequency."""
    import cv2

    h, w = grey.shape
    small = cv2.resize(grey, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA)
    back = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return float(np.mean((grey - back) ** 2))


def own_top_band(smaller: np.ndarray) -> float:
    """The denominator of detail_ratio: `smaller`'s energy in its own top band (of its centre crop)."""
    return _band_energy(_centre(smaller, CROP, CROP), BAND)


def detail_ratio(larger: np.ndarray, smaller: np.ndarray, smaller_band: float | None = None) -> float:
    """Energy of `larger` in the band just above `smaller`'s Nyquist frequency (up to 1.5 times it)
    over `smaller`'s energy in its own top band of that width (step 1; `smaller_band`: that
    energy, when known). Band-limited, so the block artefacts of a heavily compressed copy, which
    sit near its own Nyquist, count less."""
    factor = math.sqrt(larger.size / smaller.size)
    a = _centre(smaller, CROP, CROP)
    b = _centre(larger, round(a.shape[0] * factor), round(a.shape[1] * factor))
    inner = factor / BAND
    above = _band_energy(b, factor) - (_band_energy(b, inner) if inner > 1.05 else 0.0)
    return above / max(own_top_band(smaller) if smaller_band is None else smaller_band, 1e-6)


def real_detail(members: Sequence[Candidate], readable: Sequence[bool]) -> tuple[list[float], dict[int, int]]:
    """Per member, its real pixel count (step 1), and for each member judged upscaled the position
    of the smaller member it adds no detail to."""
    order = sorted(range(len(members)), key=lambda k: _pixels(members[k]))
    detail = [float(_pixels(m)) if ok else 0.0 for m, ok in zip(members, readable)]
    greys: OrderedDict[int, np.ndarray | None] = OrderedDict()
    undecodable: set[str] = set()
    upscaled_from: dict[int, int] = {}

    def grey(k: int) -> np.ndarray | None:
        # The decoded images are kept for the few comparisons that reuse them, not for the whole
        # group: a group of 8,474 video frames held 6.5 GB of them.
        if k in greys:
            greys.move_to_end(k)
        else:
            path = members[k].path
            # Frames and person crops of a video share its path, which is not an image: read it once.
            greys[k] = None if path in undecodable else _grey(path)
            if greys[k] is None:
                undecodable.add(path)
            if len(greys) > GREYS_KEPT:
                greys.popitem(last=False)
        return greys[k]

    # The members more than SIZE_STEP smaller than the one judged are a prefix of `order`, and each
    # one's detail is final by the time it joins it: so the MAX_COMPARED least detailed of them are
    # kept as the prefix grows (a group of 8,474 same-size video frames took 11 s comparing every
    # member with all before it).
    pixels = [_pixels(members[k]) for k in order]
    top_band: dict[int, float] = {}
    least: list[tuple[float, int, int]] = []  # (detail, rank, member) of the prefix's least detailed
    grown = 0
    for rank, k in enumerate(order):
        while grown < rank and pixels[rank] > SIZE_STEP * pixels[grown]:
            j = order[grown]
            if readable[j]:
                bisect.insort(least, (detail[j], grown, j))
                del least[MAX_COMPARED:]
            grown += 1
        if not readable[k]:
            continue
        for _, _, j in least:  # least detail first
            b, a = grey(k), grey(j)
            if b is None or a is None or b.size <= a.size:
                continue
            if j not in top_band:  # the same few least detailed members are compared again and again
                top_band[j] = own_top_band(a)
            if detail_ratio(b, a, top_band[j]) < UPSCALED_RATIO:
                detail[k], upscaled_from[k] = detail[j], j
                break
    return detail, upscaled_from


def _size_text(member: Candidate) -> str:
    return f"{member.width}x{member.height}"


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def choose_original(members: Sequence[Candidate]) -> tuple[int, str]:
    """Position of the copy with the most real detail, and why (see the module docstring)."""
    facts = _facts(members)
    readable = [f.readable for f in facts]
    detail, upscaled_from = real_detail(members, readable)
    best = max(detail)
    contenders = [k for k in range(len(members)) if readable[k] and detail[k] * SIZE_STEP >= best] or list(range(len(members)))

    def key(k: int) -> tuple:
        name = os.path.basename(members[k].path)
        return (quality_class(facts[k].quality), _age(members[k], facts[k]), -_pixels(members[k]), len(name), members[k].path)

    ranked = sorted(contenders, key=key)
    keep = ranked[0]
    parts = [f"most real detail ({_size_text(members[keep])})"]
    fakes = [k for k, j in upscaled_from.items() if k != keep]
    if fakes:
        k = max(fakes, key=lambda k: _pixels(members[k]))
        parts.append(
            f"{os.path.basename(members[k].path)} ({_size_text(members[k])}) looks upscaled from {_size_text(members[upscaled_from[k]])}"
        )
    if len(ranked) > 1:
        runner = ranked[1]
        qk, qr = facts[keep].quality, facts[runner].quality
        if quality_class(qk) != quality_class(qr):
            parts.append(f"better quality ({_quality_text(qk)}; {os.path.basename(members[runner].path)}: {_quality_text(qr)})")
        elif _age(members[keep], facts[keep]) != _age(members[runner], facts[runner]):
            source = "captured" if facts[keep].captured else "modified"
            parts.append(f"oldest ({source} {_when(_age(members[keep], facts[keep]))})")
        elif _pixels(members[keep]) != _pixels(members[runner]):
            parts.append("same quality and age: more pixels")
        elif len(os.path.basename(members[keep].path)) != len(os.path.basename(members[runner].path)):
            parts.append("same quality and age: shortest file name (copies tend to add to the name)")
        else:
            parts.append("same quality and age: first path in sort order")
    elif not readable[keep]:
        parts = ["no copy is readable now: first path in sort order"]
    return keep, "; ".join(parts)


def _quality_text(quality: float | None) -> str:
    return "lossless or not a JPEG" if quality is None else f"JPEG quality ~{quality:.0f}"


def choose(members: Sequence[Candidate], rule: str = DEFAULT_RULE) -> tuple[int, str]:
    """Position of the copy to keep under `rule`, and the reason in words."""
    if rule == "original":
        return choose_original(members)
    if rule == "largest":
        kept, reason = choose_keep(list(members))
        return next(k for k, m in enumerate(members) if m is kept), reason
    if rule in ("oldest", "newest"):
        facts = _facts(members)
        sign = 1 if rule == "oldest" else -1
        k = min(
            range(len(members)),
            key=lambda k: (
                not facts[k].readable,
                sign * _age(members[k], facts[k]),
                len(os.path.basename(members[k].path)),
                members[k].path,
            ),
        )
        source = "captured" if facts[k].captured else "modified"
        return k, f"{rule} ({source} {_when(_age(members[k], facts[k]))})"
    if rule == "shortest-path":
        k = min(range(len(members)), key=lambda k: (len(members[k].path), members[k].path))
        return k, f"shortest path ({len(members[k].path)} characters)"
    raise ValueError(f"unknown keep rule {rule!r}; choose from {', '.join(RULES)}")


def under(path: str, folder: str) -> bool:
    """Whether `path` is `folder` or inside it (both absolute)."""
    folder = folder.rstrip(os.sep) or os.sep
    return path == folder or path.startswith(folder if folder.endswith(os.sep) else folder + os.sep)


def choose_with_references(members: Sequence[Candidate], rule: str, references: Sequence[str]) -> tuple[int, str, set[int]]:
    """(position kept, reason, positions under a reference folder: never moved).

    With members in a reference folder, the rule picks among them; otherwise among all.
    """
    protected = {k for k, m in enumerate(members) if any(under(m.path, r) for r in references)}
    if not protected:
        keep, reason = choose(members, rule)
        return keep, reason, protected
    pool = sorted(protected)
    if len(pool) == 1:
        return pool[0], "in a reference folder", protected
    keep, reason = choose([members[k] for k in pool], rule)
    return pool[keep], f"in a reference folder; {reason}", protected
