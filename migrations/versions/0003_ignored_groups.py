"""review decisions: groups and pairs marked "not duplicates"

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

Both are keyed by content, not by catalog row: a group id is "g" + the smallest sha256 of its
members and a pair is two sha256s, so a decision survives renames, moves and re-ingest.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: Union[str, None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "ignored_groups",
        sa.Column("group_id", sa.String(length=64), primary_key=True),
        sa.Column("created", sa.String(length=32), nullable=False),
    )
    op.create_table(
        "ignored_pairs",
        sa.Column("sha_a", sa.String(length=64), primary_key=True),  # sha_a < sha_b
        sa.Column("sha_b", sa.String(length=64), primary_key=True),
        sa.Column("created", sa.String(length=32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ignored_pairs")
    op.drop_table("ignored_groups")
