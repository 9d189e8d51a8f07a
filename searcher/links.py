"""`dups --link hard|sym`: replace each non-kept duplicate by a link to the kept file, and undo it.

Nothing a user has is lost, so a link only ever stands where
- a file with the same bytes as the kept copy was (checked by hashing both just before): the
  link holds exactly those bytes; or
- a copy was just moved out for review (`--move-to DIR` with `--link`): its bytes are in DIR.
A copy whose bytes differ is left alone without `--move-to`, and said so.

Each link is made atomically: created under a temporary name in the same folder, then renamed
over the duplicate (rename replaces in one step: the path never goes missing and never dangles).
A symbolic link points at the kept file's absolute path; a hard link needs one file system.
Every link is written to the JSON-lines log (flushed) before it is made; `searcher undo LOG`
turns a replacing link back into a separate file with the same bytes, times and mode, and removes
a link that stands where a moved copy was (the move's own undo then brings the copy back).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone

from searcher.images import file_sha256 as sha256_file

LINK_KINDS = ("hard", "sym")


@dataclass
class LinkPlan:
    group: str
    path: str  # the duplicate's path (the link goes here)
    target: str  # the kept file
    sha256: str  # of the duplicate, from the catalog
    keep_sha256: str
    replaces: bool  # True: a file with the kept bytes is replaced; False: the path was emptied by a move


@dataclass
class LinkOutcome:
    linked: list[LinkPlan] = field(default_factory=list)
    skipped: list[tuple[LinkPlan, str]] = field(default_factory=list)


def plan_links(groups, moved_sources: set[str] = frozenset()) -> tuple[list[LinkPlan], list[tuple[str, str]]]:
    """(links to make, (path, reason) of copies left alone). `moved_sources`: paths just moved out."""
    plans, left = [], []
    for group in groups:
        keep = group.keep
        for member in group.members[1:]:
            if member.path in group.protected:
                continue
            if member.path in moved_sources:
                plans.append(LinkPlan(group.id, member.path, keep.path, member.sha256, keep.sha256, replaces=False))
            elif member.sha256 and member.sha256 == keep.sha256:
                plans.append(LinkPlan(group.id, member.path, keep.path, member.sha256, keep.sha256, replaces=True))
            else:
                left.append((member.path, "its bytes differ from the kept copy (add --move-to DIR to set it aside and link it)"))
    return plans, left


def _temporary_name(folder: str) -> str:
    handle, name = tempfile.mkstemp(prefix=".searcher-link-", dir=folder)
    os.close(handle)
    os.unlink(name)  # only the name is wanted: link/symlink refuse an existing path
    return name


def _make_link(kind: str, target: str, path: str) -> None:
    if kind == "hard":
        os.link(target, path)
    else:
        os.symlink(os.path.abspath(target), path)


def _check(plan: LinkPlan) -> str | None:
    """Why this link must not be made now, or None."""
    if not os.path.isfile(plan.target):
        return f"kept copy {plan.target} is missing"
    if plan.replaces:
        if not os.path.isfile(plan.path) or os.path.islink(plan.path):
            return "missing or already a link"
        if os.path.samefile(plan.path, plan.target):
            return "already the same file as the kept copy"
        if sha256_file(plan.path) != sha256_file(plan.target):
            return "its bytes no longer match the kept copy"
    elif os.path.lexists(plan.path):
        return "its path is taken again"
    return None


def link_one(plan: LinkPlan, kind: str) -> None:
    """Make the link (see the module docstring); OSError when the file system refuses."""
    if not plan.replaces:
        _make_link(kind, plan.target, plan.path)  # fails rather than overwrite
        return
    temporary = _temporary_name(os.path.dirname(plan.path))
    _make_link(kind, plan.target, temporary)
    try:
        os.replace(temporary, plan.path)
    except OSError:
        os.unlink(temporary)
        raise


def link_duplicates(
    plans: list[LinkPlan], kind: str, log_path: str, catalog: str | None, warn=None, on_linked=None
) -> LinkOutcome:
    """Carry out planned links, each logged (and flushed) first; `on_linked(plan)` follows each."""
    warn = warn or (lambda message: None)
    outcome = LinkOutcome()
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        for plan in plans:
            reason = _check(plan)
            if reason is None:
                st = os.stat(plan.path) if plan.replaces else None
                entry = {
                    "format": 1, "op": "link", "kind": kind, "group": plan.group, "path": plan.path, "target": plan.target,
                    "replaces": plan.replaces, "sha256": plan.sha256,
                    "mtime_ns": st.st_mtime_ns if st else None, "mode": st.st_mode & 0o7777 if st else None,
                    "catalog": catalog, "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }  # fmt: skip
                log.write(json.dumps(entry, ensure_ascii=False) + "\n")
                log.flush()
                os.fsync(log.fileno())
                try:
                    link_one(plan, kind)
                except OSError as e:
                    reason = f"cannot link: {e.strerror or e}" + (
                        " (another file system: try --link sym)" if kind == "hard" else ""
                    )
            if reason is not None:
                outcome.skipped.append((plan, reason))
                warn(f"not linked: {plan.path}: {reason}")
                continue
            outcome.linked.append(plan)
            if on_linked is not None:
                on_linked(plan)
    return outcome


def is_our_link(entry: dict) -> bool:
    """Whether the logged path still holds the link the log made."""
    path, target = entry["path"], entry["target"]
    if entry["kind"] == "sym":
        return os.path.islink(path) and os.readlink(path) == os.path.abspath(target)
    try:
        return not os.path.islink(path) and os.path.samefile(path, target)
    except OSError:
        return False


def undo_link(entry: dict) -> str | None:
    """Undo one logged link; None when done, else why it was left as it is."""
    path, target = entry["path"], entry["target"]
    if not os.path.lexists(path):
        return "already gone" if not entry.get("replaces") else f"{path} is missing"
    if not is_our_link(entry):
        return "no longer the link searcher made (left as it is)"
    if not entry.get("replaces"):
        os.unlink(path)  # the moved copy comes back by the move's own undo
        return None
    if not os.path.isfile(target) or sha256_file(target) != entry["sha256"]:
        return f"the kept copy {target} is missing or changed: its bytes cannot be copied back"
    temporary = _temporary_name(os.path.dirname(path))
    try:
        with open(target, "rb") as src, open(temporary, "xb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        if entry.get("mode") is not None:
            os.chmod(temporary, entry["mode"])
        if entry.get("mtime_ns") is not None:
            os.utime(temporary, ns=(entry["mtime_ns"], entry["mtime_ns"]))
        os.replace(temporary, path)
    except OSError:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise
    return None
