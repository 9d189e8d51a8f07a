"""Held-out near-duplicate families made by independent tools (ImageMagick, ffmpeg), not by searcher.

Recipe (REALEDITS_VERSION; every random choice derives from bench.common.SEED):

  originals  ../shared/corpus/photos sorted by name: EVEN index -> set "tuning", ODD index -> set
             "heldout" (the same split every helper uses for fitting anything); scikit-image's bundled
             photos (bench.dataset.SKIMAGE_PHOTOS) -> set "skimage", a second evaluation set (note:
             the shipped autoencoder saw every scikit-image photo in training, see models/README.md).
  copies     for each original, per family a seeded choice of EDITS_PER_FAMILY of the family's edits,
             each one ImageMagick `convert` call on the original (long side first reduced to 800 px,
             except the formats family, which resizes the original itself):
               artistic   -paint 3, -paint 6 (oil), -charcoal 2, -sketch 0x10+120, -swirl 90,
                          -implode 0.3, -emboss 2, +noise Gaussian, -kuwahara 3 -posterize 6 (cartoon)
               grey       -colorspace Gray, -depth 2, -posterize 3, -monochrome, 1-bit PNG, 4-bit
                          grey PNG, near black (+level 0,25% / -evaluate multiply 0.15), washed out
                          (+level 60%,100%), and crops of grey / near-black / posterized / 1-bit copies
               geometric  -rotate 45, -distort Perspective, -distort SRT, blur + wave warp, crops
                          keeping 30% of the area (5 positions), border, letterbox
               screenshot upscale 2x + a window frame drawn with -border/-splice/-draw + JPEG q40
                          (light title bar, dark theme with task bar, browser chrome)
               formats    PNG, WebP, TIFF, BMP at a long side of 320, 640, 1280 px
  distractors "tuning"/"heldout": the other half's originals + ../shared/corpus/pairs; "skimage": all
             corpus photos + pairs. Catalog of a set = its originals + its copies + its distractors.
  video      ../shared/corpus/video/vtest.avi; the catalog holds every 2nd original frame (ffmpeg,
             JPEG); the queries are every 10th frame of degraded copies made by ffmpeg:
               video_lowres  176x144, mpeg4 at 40 kbit/s, and libx264 at crf 45 (two copies)
               video_glitch  mpeg4 with the `noise` bitstream filter corrupting packets, decoded with
                             error concealment (blocky smears, as a damaged download looks)
             A query is right when its first hit is an original frame within +-2 frames.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.common import CORPUS as _CORPUS
from bench.common import REPO, SEED, WORK, log

# bench.common looks next to the checkout; a git worktree sits deeper, so also try its parents.
CORPUS = next((p / "shared" / "corpus" for p in (REPO.parent, *REPO.parents) if (p / "shared" / "corpus").is_dir()), _CORPUS)
if os.environ.get("SEARCHER_CORPUS"):
    CORPUS = _CORPUS

REALEDITS_VERSION = 1
ROOT = WORK / f"realedits-v{REALEDITS_VERSION}"
EDITS_PER_FAMILY = {"artistic": 3, "grey": 3, "geometric": 3, "screenshot": 1, "formats": 2}
IMAGE_FAMILIES = tuple(EDITS_PER_FAMILY)
VIDEO_FAMILIES = ("video_lowres", "video_glitch")
VIDEO_QUERY_STRIDE = 10
FRAME_TOLERANCE = 2
BASE_SIDE = 800  # copies start from the original reduced to this long side (formats excepted)
SKIMAGE_NAMES = (
    "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
    "hubble_deep_field.jpg", "immunohistochemistry.png", "camera.png", "brick.png", "grass.png",
    "gravel.png", "moon.png", "page.png", "retina.jpg", "text.png", "coins.png", "eagle.png",
    "horse.png",
)  # fmt: skip

INSTALL_HINT = "apt-get update && apt-get install -y imagemagick ffmpeg"


# ---------------------------------------------------------------- tools


def imagemagick() -> str:
    """Path of ImageMagick's convert (or magick); a clear error saying how to install it."""
    for candidate in (shutil.which("magick"), "/usr/bin/convert", shutil.which("convert")):
        if candidate and Path(candidate).exists():
            try:
                out = subprocess.run([candidate, "-version"], capture_output=True, text=True, timeout=30).stdout
            except (OSError, subprocess.TimeoutExpired):
                continue
            if "ImageMagick" in out:
                return candidate
    raise SystemExit(f"ImageMagick is not installed (needed to make the held-out copies): {INSTALL_HINT}")


def ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if not path:
        raise SystemExit(f"ffmpeg is not installed (needed for the video families): {INSTALL_HINT}")
    return path


def _run(cmd: list[str]) -> None:
    env = dict(os.environ, MAGICK_THREAD_LIMIT="1", OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{done.stderr[-800:]}")


# ---------------------------------------------------------------- the edits
# Each edit: (name, function(width, height) -> ImageMagick arguments, extension). width/height are
# those of the input after the BASE_SIDE reduction, for the edits that need pixel coordinates.


def _fixed(*args):
    return lambda w, h: list(args)


def _crop(gravity: str, side_pct: int, *then):
    return lambda w, h: ["-gravity", gravity, "-crop", f"{side_pct}%x{side_pct}%+0+0", "+repage", "+gravity", *then]


def _perspective(w, h):
    dx, dy = int(0.18 * w), int(0.12 * h)
    pts = f"0,0 {dx},{dy}  {w - 1},0 {w - 1 - dx // 3},0  0,{h - 1} {dx // 2},{h - 1 - dy}  {w - 1},{h - 1} {w - 1},{h - 1}"
    return ["-virtual-pixel", "black", "-distort", "Perspective", pts]


def _letterbox(w, h):
    # A 16:9-ish frame around a picture that is not 16:9, black bars top/bottom or left/right.
    target_w, target_h = (w, int(w * 0.75) + h // 3) if w >= h else (h + w // 3, h)
    return ["-background", "black", "-gravity", "center", "-extent", f"{target_w}x{target_h}", "+gravity"]


def _window(bar: str, edge: str, top: int, bottom: int, extra_draw: list[str]):
    """Upscale 2x, a window border, a title bar (and maybe a task bar), coloured widgets."""

    def args(w, h):
        draws = []
        for d in extra_draw:
            draws += ["-draw", d]
        out = [
            "-resize",
            "200%",
            "-bordercolor",
            edge,
            "-border",
            "6",
            "-background",
            bar,
            "-gravity",
            "north",
            "-splice",
            f"0x{top}",
        ]
        if bottom:
            out += ["-gravity", "south", "-splice", f"0x{bottom}"]
        return out + ["+gravity", *draws]

    return args


_TRAFFIC = ["fill #ff5f57 circle 24,22 31,22", "fill #febc2e circle 48,22 55,22", "fill #28c840 circle 72,22 79,22"]

EDITS: dict[str, list[tuple[str, object, str]]] = {
    "artistic": [
        ("paint3", _fixed("-paint", "3"), "jpg"),
        ("oil6", _fixed("-paint", "6"), "jpg"),
        ("charcoal2", _fixed("-charcoal", "2"), "jpg"),
        ("sketch", _fixed("-resize", "640x640>", "-sketch", "0x10+120"), "jpg"),
        ("swirl90", _fixed("-swirl", "90"), "jpg"),
        ("implode03", _fixed("-implode", "0.3"), "jpg"),
        ("emboss2", _fixed("-emboss", "2"), "jpg"),
        ("noise_gauss", _fixed("-attenuate", "1.5", "+noise", "Gaussian"), "jpg"),
        ("cartoon", _fixed("-kuwahara", "3", "-posterize", "6"), "png"),
    ],
    "grey": [
        ("gray", _fixed("-colorspace", "Gray"), "jpg"),
        ("depth2", _fixed("-depth", "2"), "png"),
        ("posterize3", _fixed("-posterize", "3"), "png"),
        ("monochrome", _fixed("-monochrome"), "png"),
        ("bilevel_1bit", _fixed("-colorspace", "Gray", "-threshold", "50%", "-type", "Bilevel"), "png"),
        ("grey_4bit", _fixed("-colorspace", "Gray", "-depth", "4"), "png"),
        ("near_black_level", _fixed("+level", "0,25%"), "jpg"),
        ("near_black_mult", _fixed("-evaluate", "multiply", "0.15"), "jpg"),
        ("washed_out", _fixed("+level", "60%,100%"), "jpg"),
        ("gray_crop", _crop("center", 65, "-colorspace", "Gray"), "jpg"),
        ("near_black_crop", _crop("northwest", 70, "-evaluate", "multiply", "0.15"), "png"),
        ("posterize_crop", _crop("southeast", 70, "-posterize", "3"), "png"),
        ("bilevel_crop", _crop("northeast", 75, "-colorspace", "Gray", "-threshold", "50%", "-type", "Bilevel"), "png"),
    ],
    "geometric": [
        ("rotate45", _fixed("-background", "white", "-rotate", "45"), "jpg"),
        ("perspective", _perspective, "jpg"),
        ("srt", _fixed("-virtual-pixel", "black", "-distort", "SRT", "0.85 20"), "jpg"),
        ("blur_warp", _fixed("-blur", "0x2", "-background", "white", "-wave", "8x160"), "jpg"),
        ("crop30_nw", _crop("northwest", 55), "jpg"),
        ("crop30_ne", _crop("northeast", 55), "jpg"),
        ("crop30_sw", _crop("southwest", 55), "jpg"),
        ("crop30_se", _crop("southeast", 55), "jpg"),
        ("crop30_center", _crop("center", 55), "jpg"),
        ("border", _fixed("-bordercolor", "#202020", "-border", "10%x10%"), "jpg"),
        ("letterbox", _letterbox, "jpg"),
    ],
    "screenshot": [
        ("window_light", _window("#e8e8e8", "#c8c8c8", 44, 0, _TRAFFIC), "jpg"),
        (
            "window_dark_taskbar",
            _window("#2b2b2b", "#3c3c3c", 36, 48, ["fill #5a5a5a rectangle 8,8 28,28", "fill #5a5a5a rectangle 36,8 56,28"]),
            "jpg",
        ),
        ("browser", _window("#f1f3f4", "#dadce0", 84, 0, _TRAFFIC + ["fill white roundrectangle 100,48 900,74 12,12"]), "jpg"),
    ],
    "formats": [
        (f"{fmt}_{side}", _fixed("-resize", f"{side}x{side}"), fmt)
        for side in (320, 640, 1280)
        for fmt in ("png", "webp", "tiff", "bmp")
    ],
}
# JPEG quality of each output: q40 for the screenshots, 90 otherwise.
_QUALITY = {"screenshot": "40"}


# ---------------------------------------------------------------- the sets


@dataclass
class Query:
    path: Path
    family: str
    edit: str
    original: Path
    relevant: list[Path] = field(default_factory=list)  # the original and the other copies of it


@dataclass
class ImageSet:
    name: str
    originals: list[Path]
    copies: list[Query]
    distractors: list[Path]

    @property
    def catalog_roots(self) -> list[Path]:
        return [ROOT / "sets" / self.name]


@dataclass
class VideoSet:
    clip: str
    frames: dict[int, Path]  # original frame index -> stored JPEG (the catalog)
    queries: list[dict]  # {"path", "family", "variant", "frame"}


def corpus_photos() -> list[Path]:
    return sorted((CORPUS / "photos").glob("*.jpg"), key=lambda p: p.name)


def split_photos() -> dict[str, list[Path]]:
    """Corpus photos sorted by name: even index = tuning, odd index = held out."""
    photos = corpus_photos()
    return {"tuning": photos[0::2], "heldout": photos[1::2]}


def skimage_photos() -> list[Path]:
    try:
        import skimage
    except ImportError:
        return []
    data = Path(skimage.__file__).parent / "data"
    return [data / n for n in SKIMAGE_NAMES if (data / n).exists()]


def _pick(original: Path, family: str) -> list[tuple[str, object, str]]:
    edits = EDITS[family]
    key = int.from_bytes(hashlib.sha256(f"{original.name}/{family}".encode()).digest()[:4], "big")
    rng = np.random.default_rng([SEED, key])
    # A prefix of one permutation: asking for fewer edits per family keeps a subset of the same copies.
    chosen = sorted(rng.permutation(len(edits))[: EDITS_PER_FAMILY[family]])
    return [edits[i] for i in chosen]


def _copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        shutil.copyfile(src, dst)
    return dst


def _job(convert: str, original: Path, base: Path, family: str, edit, dst: Path):
    name, fn, ext = edit
    from PIL import Image

    src = original if family == "formats" else base
    with Image.open(src) as im:
        w, h = im.size
    quality = _QUALITY.get(family, "90")
    tmp = dst.with_name(dst.stem + ".part." + ext)
    _run([convert, f"{src}[0]", *fn(w, h), "-quality", quality, f"{ext}:{tmp}"])
    os.replace(tmp, dst)


def _prune(folder: Path, keep: set[Path]) -> None:
    """Files of an earlier recipe left in a set's folder would be ingested: remove them (generated files only)."""
    if folder.is_dir():
        for f in folder.rglob("*"):
            if f.is_file() and f not in keep:
                f.unlink()


def _stem(original: Path, set_name: str) -> str:
    return original.stem if set_name != "skimage" else "skimage_" + original.stem


def make_image_sets(jobs: int = 2) -> dict[str, ImageSet]:
    """Generate (or reuse) every set; returns set name -> ImageSet."""
    convert = imagemagick()
    halves = split_photos()
    members = {"tuning": halves["tuning"], "heldout": halves["heldout"]}
    sk = skimage_photos()
    if sk:
        members["skimage"] = sk
    pairs = sorted(p for p in (CORPUS / "pairs").iterdir() if p.suffix.lower() in (".jpg", ".png"))
    sets: dict[str, ImageSet] = {}
    work = []
    for set_name, originals in members.items():
        root = ROOT / "sets" / set_name
        stored = []
        copies = []
        for original in originals:
            stem = _stem(original, set_name)
            dst = _copy(original, root / "originals" / (stem + original.suffix))
            stored.append(dst)
            base = ROOT / "base" / f"{stem}.png"
            for family in IMAGE_FAMILIES:
                for edit in _pick(original, family):
                    out = root / "copies" / family / f"{stem}__{edit[0]}.{edit[2]}"
                    copies.append(Query(out, family, edit[0], dst))
                    if not out.exists():
                        work.append((original, base, family, edit, out))
        _prune(root / "copies", {q.path for q in copies})
        for q in copies:
            q.relevant = [q.original] + [c.path for c in copies if c.original == q.original and c.path != q.path]
        others = (
            [p for s, ps in members.items() if s != set_name and s != "skimage" for p in ps]
            if set_name != "skimage"
            else corpus_photos()
        )
        distractors = [_copy(p, root / "distractors" / "photos" / p.name) for p in others]
        distractors += [_copy(p, root / "distractors" / "pairs" / p.name) for p in pairs]
        sets[set_name] = ImageSet(set_name, stored, copies, distractors)
    if work:
        log(f"realedits: making {len(work)} copies with ImageMagick ({convert}), {jobs} at a time")
        bases = {(o, b) for o, b, *_ in work}
        for original, base in bases:
            if not base.exists():
                base.parent.mkdir(parents=True, exist_ok=True)
                _run([convert, f"{original}[0]", "-auto-orient", "-resize", f"{BASE_SIDE}x{BASE_SIDE}>", str(base)])
        for q in work:
            q[4].parent.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(lambda w: _job(convert, *w), work))
    return sets


# ---------------------------------------------------------------- video


def _frame_index(path: Path) -> int:
    return int(path.stem.split("_")[-1])


def _extract(ff: str, video: Path, out_dir: Path, pattern: str, extra: list[str] = ()) -> None:
    """Every decoded frame, named by its presentation timestamp (= frame index for these AVIs)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _run([ff, "-v", "error", *extra, "-i", str(video), "-fps_mode", "passthrough", "-frame_pts", "1", str(out_dir / pattern)])


def make_video_set(clip: Path | None = None) -> VideoSet | None:
    clip = clip or CORPUS / "video" / "vtest.avi"
    if not clip.exists():
        return None
    ff = ffmpeg()
    root = ROOT / "video" / clip.stem
    marker = root / "done.json"
    if not marker.exists():
        log(f"realedits: making the video copies of {clip.name} with ffmpeg")
        if root.exists():
            shutil.rmtree(root)
        tmp = root / "all_frames"
        _extract(ff, clip, tmp, "f_%04d.jpg", [])
        for f in sorted(tmp.glob("*.jpg")):
            if _frame_index(f) % 2 == 0:
                (root / "catalog").mkdir(parents=True, exist_ok=True)
                os.replace(f, root / "catalog" / f.name)
        shutil.rmtree(tmp)
        encodes = {
            "lowres_mpeg4": (["-vf", "scale=176:144", "-c:v", "mpeg4", "-b:v", "40k"], "avi", []),
            "lowres_x264": (
                ["-vf", "scale=176:144", "-c:v", "libx264", "-crf", "45", "-preset", "veryfast", "-bf", "0"],
                "avi",
                [],
            ),
            "glitch": (
                ["-c:v", "mpeg4", "-q:v", "4", "-bsf:v", "noise=amount=8000"],
                "avi",
                ["-err_detect", "ignore_err", "-ec", "favor_inter+guess_mvs+deblock"],
            ),
        }
        for variant, (args, ext, decode_args) in encodes.items():
            enc = root / f"{variant}.{ext}"
            _run([ff, "-v", "error", "-y", "-i", str(clip), *args, "-an", str(enc)])
            frames = root / "decoded" / variant
            _extract(ff, enc, frames, "q_%04d.png", decode_args)
            for f in frames.glob("*.png"):
                if _frame_index(f) % VIDEO_QUERY_STRIDE != 0:
                    f.unlink()
        marker.write_text(json.dumps({"clip": str(clip)}))
    frames = {_frame_index(p): p for p in sorted((root / "catalog").glob("*.jpg"))}
    queries = []
    for variant_dir in sorted((root / "decoded").iterdir()):
        family = "video_glitch" if variant_dir.name == "glitch" else "video_lowres"
        for p in sorted(variant_dir.glob("*.png")):
            queries.append({"path": p, "family": family, "variant": variant_dir.name, "frame": _frame_index(p)})
    return VideoSet(clip.stem, frames, queries)


def main() -> None:  # python -m bench.realedits_data: generate only
    sets = make_image_sets()
    for s in sets.values():
        print(s.name, len(s.originals), "originals", len(s.copies), "copies", len(s.distractors), "distractors")
    v = make_video_set()
    if v:
        print(v.clip, len(v.frames), "catalog frames", len(v.queries), "queries")


if __name__ == "__main__":
    sys.exit(main())
