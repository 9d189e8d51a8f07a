"""Moves (`move_duplicates`): every member except the kept one goes to DEST/<group id>/<file name>;
nothing is overwritten, nothing is deleted, the kept file is never moved, members already under
DEST stay, a group whose kept file is gone or changed since ingest is left alone, and a member
that is a symlink, or that is the kept file under another name, is never moved. Each move is
written to a JSON-lines log (before it is done, flushed to disk) and the catalog row is re-pointed
to the new path, so the next ingest sees the file where it is; `undo_moves(log)` moves every file
back and re-points the rows again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from searcher import images
from searcher.errors import CatalogError, SearcherError, UsageError
from searcher.keep import Group
from searcher.text import json_safe

if TYPE_CHECKING:
    from searcher.catalog import Catalog

LOG_FORMAT = 1


@dataclass
class Move:
    group: str
    image_id: int
    source: str
    target: str
    sha256: str
    size: int
    mtime_ns: int


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def plan_moves(groups: list[Group], destination: str | os.PathLike) -> list[Move]:
    """DEST/<group id>/<file name> for every member but the kept copy (a name taken gets ~2, ~3...).
    Members already under DEST, and members under a --reference folder, stay where they are."""
    destination = os.path.abspath(os.fspath(destination))
    taken: set[str] = set()
    moves = []
    for group in groups:
        for member in group.members[1:]:
            if _under(member.path, destination) or member.path in group.protected:
                continue
            folder = os.path.join(destination, group.id)
            stem, ext = os.path.splitext(os.path.basename(member.path))
            target, n = os.path.join(folder, stem + ext), 1
            while target in taken or os.path.lexists(target):
                n += 1
                target = os.path.join(folder, f"{stem}~{n}{ext}")
            taken.add(target)
            moves.append(Move(group.id, member.image_id, member.path, target, member.sha256, member.size, member.mtime_ns))
    return moves


class MovedMeanwhile(OSError):
    """The source disappeared between our link and our unlink: another process moved it first."""


def _move_file(source: str, target: str) -> None:
    """Move without ever overwriting: a hard link (fails if the target exists) then unlink the source;
    across file systems, an exclusive-create copy with the source's times, then unlink.

    Two movers of one file (two `dups --move-to --yes` at once) can both link it before either
    unlinks it; the one whose unlink finds the source gone removes its own link again when the
    file still has another name (the other mover's), so no extra copy is left behind."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError:  # other file system, or links not supported
        with open(source, "rb") as src, open(target, "xb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        shutil.copystat(source, target)
        if os.path.getsize(target) != os.path.getsize(source):  # keep both rather than risk the only copy
            raise OSError(f"copy to {target} is incomplete; the original is left in place") from None
    try:
        os.unlink(source)
    except FileNotFoundError:
        if os.stat(target).st_nlink > 1:  # the other mover's name holds the file: ours is the extra one
            os.unlink(target)
            raise MovedMeanwhile(0, "moved by another process meanwhile") from None
        raise MovedMeanwhile(0, f"its original name vanished meanwhile; the file is kept as {target}") from None


def _prepare_destination(destination: str | os.PathLike | None, log_path: str):
    """Create the destination folder and open the log for appending, before anything moves: a place
    where nothing can be written is a usage error, not a failure half-way (the log comes first)."""
    if destination is not None:
        destination = os.path.abspath(os.fspath(destination))
        try:
            os.makedirs(destination, exist_ok=True)
            if not os.access(destination, os.W_OK | os.X_OK):
                raise PermissionError(13, "Permission denied")
        except OSError as e:
            raise UsageError(f"--move-to {destination}: cannot create or write this folder: {e.strerror or e}") from None
    try:
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        return open(log_path, "a", encoding="utf-8")
    except OSError as e:
        raise UsageError(f"--log {log_path}: cannot write the move log there: {e.strerror or e}") from None


def _unchanged(path: str, size: int, mtime_ns: int) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_size == size and st.st_mtime_ns == mtime_ns


@dataclass
class MoveOutcome:
    moved: list[Move] = field(default_factory=list)
    skipped: list[tuple[Move, str]] = field(default_factory=list)


def _why_not(move: Move, keep_of: dict, safe_groups: dict) -> str | None:
    """Why a planned move must not happen now (None: it may)."""
    if move.group not in safe_groups:
        keep = keep_of.get(move.group)
        ok = keep is not None and _unchanged(keep.path, keep.size, keep.mtime_ns)
        safe_groups[move.group] = None if ok else f"kept copy {keep.path if keep else '?'} is missing or changed since ingest"
    reason = safe_groups[move.group] or _not_a_copy(move.source, keep_of[move.group].path)
    if reason is None and not _unchanged(move.source, move.size, move.mtime_ns):
        reason = "missing or changed since ingest (run searcher ingest)"
    if reason is None and os.path.lexists(move.target):
        reason = f"target {move.target} exists"
    return reason


def _not_a_copy(source: str, kept: str) -> str | None:
    """Why moving `source` would free nothing or break a link, else None."""
    if os.path.islink(source):
        return "is a symbolic link (moving it frees nothing)"
    identity, kept_identity = images.path_identity(source), images.path_identity(kept)
    if (
        identity is not None
        and kept_identity is not None
        and (identity.device, identity.inode) == (kept_identity.device, kept_identity.inode)
    ):
        return f"is the kept file {kept} under another name"
    return None


def _log_move(log, move: Move, catalog: Catalog | None) -> None:
    """Append the move to the log and flush it to disk: the log knows of the move before the file system does."""
    entry = {
        "format": LOG_FORMAT,
        "op": "move",
        "group": move.group,
        "from": move.source,
        "to": move.target,
        "sha256": move.sha256,
        "size": move.size,
        "catalog": catalog.location.display if catalog is not None else None,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    log.write(json_safe(json.dumps(entry, ensure_ascii=False)) + "\n")
    log.flush()
    os.fsync(log.fileno())


def move_duplicates(
    groups: list[Group],
    moves: list[Move],
    log_path: str | os.PathLike,
    catalog: Catalog | None = None,
    warn=None,
    destination: str | os.PathLike | None = None,
) -> MoveOutcome:
    """Carry out planned moves: each logged (and flushed) before it is done, then the catalog row re-pointed.

    The destination and the log are checked before the first move. With a catalog, its writer lock
    is held throughout, so two movers on one catalog take turns (the second finds the files gone)."""
    warn = warn or (lambda message: None)
    log_path = os.path.abspath(os.fspath(log_path))
    with _prepare_destination(destination, log_path) as log, _writing(catalog, "dups --move-to"):
        return _carry_out(groups, moves, log, catalog, warn)


def _writing(catalog: Catalog | None, what: str):
    return catalog.writing(what) if catalog is not None else contextlib.nullcontext()


def _carry_out(groups: list[Group], moves: list[Move], log, catalog: Catalog | None, warn) -> MoveOutcome:
    keep_of = {g.id: g.keep for g in groups}
    outcome = MoveOutcome()
    safe_groups: dict[str, str | None] = {}
    for move in moves:
        reason = _why_not(move, keep_of, safe_groups)
        if reason is not None:
            outcome.skipped.append((move, reason))
            warn(f"not moved: {move.source}: {reason}")
            continue
        _log_move(log, move, catalog)
        try:
            _move_file(move.source, move.target)
        except OSError as e:
            outcome.skipped.append((move, f"cannot move: {e.strerror or e}"))
            warn(f"not moved: {move.source}: {e.strerror or e}")
            continue
        outcome.moved.append(move)
        if catalog is not None:
            _repoint(catalog, move.source, move.target, warn, log=os.path.abspath(log.name))
    return outcome


def _repoint(catalog: Catalog, old: str, new: str, warn, log: str | None) -> None:
    """The catalog row of `old` now describes `new` (same bytes, same mtime: the next ingest sees it
    unchanged). `log`: the log of a move for review (the row is set aside: dups leaves it out);
    None: an undo (the row is offered again)."""
    if not catalog.store.repoint_for_review(old, new, log):
        warn(f"catalog already has a row for {new}; run searcher ingest to reconcile")


@dataclass
class UndoOutcome:
    restored: list[tuple[str, str]] = field(default_factory=list)  # (moved-to path, restored path)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path or log:line, reason)
    failed: int = 0  # skipped entries that need a person: bad log lines, files that could not be moved back


@dataclass
class MoveLog:
    entries: list[dict]  # valid move entries, in the order they were written
    problems: list[tuple[str, str]]  # ("LOG:LINE", why that line is not a move entry)


def _entry_problem(entry) -> str | None:
    """Why a decoded log line is not a usable move entry (None: it is one)."""
    if not isinstance(entry, dict):
        return f"a JSON {type(entry).__name__}, not a move record"
    for key in ("from", "to"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            return f'"{key}" is {json.dumps(entry.get(key))[:40]}, not a path'
    size = entry.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return f'"size" is {json.dumps(size)[:40]}, not a byte count'
    if not isinstance(entry.get("sha256"), (str, type(None))):
        return '"sha256" is not a string'
    return None


def parse_log(log_path: str | os.PathLike) -> MoveLog:
    """Every line of a move log, checked: the move entries, and each other line with its reason.
    A file that holds lines but no move entry at all is not a move log (SearcherError)."""
    entries, problems, seen = [], [], 0
    try:
        with open(log_path, "rb") as f:
            for number, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                seen += 1
                where = f"{log_path}:{number}"
                try:
                    entry = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError, RecursionError):
                    problems.append((where, "not a JSON line"))
                    continue
                if isinstance(entry, dict) and entry.get("op") == "link":  # searcher.links
                    if {"path", "target", "kind", "sha256"} <= set(entry):
                        entries.append(entry)
                    else:
                        problems.append((where, "a link record without its path, target, kind or sha256"))
                    continue
                if isinstance(entry, dict) and entry.get("op", "move") != "move":
                    continue  # another kind of record: nothing to undo
                problem = _entry_problem(entry)
                if problem is None:
                    entries.append(entry)
                else:
                    problems.append((where, problem))
    except FileNotFoundError:
        raise UsageError(f"no such log: {log_path}") from None
    except OSError as e:
        raise SearcherError(f"cannot read {log_path}: {e.strerror or e}") from None
    if problems and not entries:
        where, problem = problems[0]
        raise SearcherError(f"{log_path} is not a searcher move log (line {where.rsplit(':', 1)[1]}: {problem})")
    return MoveLog(entries, problems)


def read_log(log_path: str | os.PathLike) -> list[dict]:
    """The move entries of a log written by move_duplicates (lines that are not are left out)."""
    return parse_log(log_path).entries


def undo_moves(log_path: str | os.PathLike, catalog: Catalog | None = None, warn=None) -> UndoOutcome:
    """Move every logged file back, newest move first, never overwriting; re-point the catalog rows.

    The catalog is `catalog`, else the one each log line names. Entries already undone, or whose
    file is no longer where the log put it, are skipped and said so; running undo twice is harmless.
    A bad log line, or a file that cannot go back (its folder is now a file), is reported and
    skipped: every other entry is still undone.
    """
    warn = warn or (lambda message: None)
    outcome = UndoOutcome()
    log = parse_log(log_path)
    for where, problem in log.problems:
        outcome.skipped.append((where, problem))
        outcome.failed += 1
        warn(f"not undone: {where}: {problem}")
    opened: dict[str, object] = {}
    try:
        with _writing(catalog, "undo"):
            for entry in reversed(log.entries):
                if entry.get("op") == "link":
                    _undo_link(entry, outcome, warn)
                else:
                    _undo_one(entry, catalog, opened, outcome, warn)
    finally:
        for other in opened.values():
            if other is not None:
                other.close()
    return outcome


def _undo_one(entry: dict, catalog: Catalog | None, opened: dict, outcome: UndoOutcome, warn) -> None:
    source, target = entry["from"], entry["to"]
    if os.path.lexists(source):
        reason = "already back" if not os.path.lexists(target) else f"{source} exists (not overwritten)"
        outcome.skipped.append((target, reason))
        return
    if not os.path.isfile(target):
        outcome.skipped.append((target, "not found where the log moved it"))
        warn(f"not restored: {target}: not found")
        return
    if os.path.getsize(target) != entry["size"] or (entry.get("sha256") and _sha256(target) != entry["sha256"]):
        outcome.skipped.append((target, "its bytes differ from the moved file"))
        warn(f"not restored: {target}: its bytes differ from the moved file")
        return
    try:
        _move_file(target, source)
    except OSError as e:  # e.g. the original folder is now a file
        outcome.skipped.append((target, f"cannot move back to {source}: {e.strerror or e}"))
        outcome.failed += 1
        warn(f"not restored: {target}: cannot move back to {source}: {e.strerror or e}")
        return
    outcome.restored.append((target, source))
    try:
        os.rmdir(os.path.dirname(target))  # the group folder the moves made, once empty
    except OSError:
        pass  # not empty: other files remain there
    target_catalog = catalog if catalog is not None else _catalog_for(entry.get("catalog"), opened, warn)
    if target_catalog is not None:
        _repoint(target_catalog, target, source, warn, log=None)


def _undo_link(entry: dict, outcome: UndoOutcome, warn) -> None:
    """Undo one link of `dups --link` (searcher.links.undo_link)."""
    from searcher.links import undo_link

    try:
        reason = undo_link(entry)
    except OSError as e:
        reason = f"cannot restore: {e.strerror or e}"
        outcome.failed += 1
    if reason is None:
        outcome.restored.append((f"link to {entry['target']}", entry["path"]))
    else:
        outcome.skipped.append((entry["path"], reason))
        if reason != "already gone":
            warn(f"not restored: {entry['path']}: {reason}")


def _catalog_for(logged: str | None, opened: dict, warn):
    """The catalog a log line names, opened once (None when it cannot be opened: said once)."""
    from searcher.catalog import Catalog

    if not isinstance(logged, str) or not logged:
        return None
    if logged not in opened:
        try:
            opened[logged] = Catalog.open(logged, create=False)
        except CatalogError as e:
            warn(f"files are restored but the catalog is not updated: {e}")
            opened[logged] = None
    return opened[logged]


def _sha256(path: str) -> str:
    from searcher.images import file_sha256

    return file_sha256(path)


def default_log_path(destination: str | os.PathLike) -> Path:
    """DEST/searcher-moves-<UTC time>.jsonl"""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Path(os.path.abspath(os.fspath(destination))) / f"searcher-moves-{stamp}.jsonl"
