"""Group id: "g" + the first 12 hex digits of the smallest sha256 among the members. It stays the same
across runs, renames and moves for as long as that member stays in the group.

Copy to keep: the largest resolution (width x height), then the largest file, then the oldest
(modification time), then the first path in sort order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone


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
