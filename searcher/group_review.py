"""From raw near-duplicate groups to groups a person can act on.

Recipe, per group (searcher.dups calls `prepare_groups` after grouping):
1. Members whose file is gone from disk are dropped (counted; `searcher prune` removes their rows).
   (Paths that are one file, hard links or a symlink and its target, were already collapsed into
   one member by searcher.dups, step 5: acting on one of them frees nothing.)
2. A group left with fewer than two files, or with no member under the folders the user scoped
   `dups PATH...` to, is not shown.
3. The copy to keep follows the keep rule (searcher.keep); members under a --reference folder are
   always kept and never moved ("protected"). The id is recomputed from the files left.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

from searcher.keep import DEFAULT_RULE, choose_with_references, under


@dataclass
class ReviewOptions:
    keep_rule: str = DEFAULT_RULE
    references: tuple[str, ...] = ()  # absolute folders whose files are always kept
    scope: tuple[str, ...] = ()  # absolute folders: only groups with a member under one (empty: all)


@dataclass
class ReviewCounts:
    missing: int = 0  # members whose file is gone
    out_of_scope: int = 0  # groups without a member under the scope
    missing_paths: list[str] = field(default_factory=list)


def in_scope(path: str, options: ReviewOptions) -> bool:
    """Whether a catalog file takes part in grouping at all: under the scope or a reference folder."""
    if not options.scope:
        return True
    return any(under(path, folder) for folder in (*options.scope, *options.references))


def _present(members: list, counts: ReviewCounts) -> list:
    """Members whose file is still there (step 1)."""
    present = []
    for member in members:
        if os.path.exists(member.path):
            present.append(member)
        else:
            counts.missing += 1
            counts.missing_paths.append(member.path)
    return present


def prepare_groups(groups: Sequence, options: ReviewOptions, make_id) -> tuple[list, ReviewCounts]:
    """Groups ready to show and act on (see the module docstring); `make_id(members)` names a group."""
    counts = ReviewCounts()
    ready = []
    for group in groups:
        members = _present(group.members, counts)
        if len(members) < 2:
            continue
        if options.scope and not any(under(m.path, s) for m in members for s in options.scope):
            counts.out_of_scope += 1
            continue
        keep, reason, protected = choose_with_references(members, options.keep_rule, options.references)
        kept = members[keep]
        others = sorted((m for k, m in enumerate(members) if k != keep), key=lambda m: (-m.score, m.path))
        group.members = [kept, *others]
        group.keep, group.keep_reason = kept, reason
        group.protected = {members[k].path for k in protected}
        group.id = make_id(group.members)
        ready.append(group)
    return ready, counts
