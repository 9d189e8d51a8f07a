"""files set aside for review by `dups --move-to`

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

A moved file's row follows it to the review folder and gets a row here: dups leaves it out (its
group is not shown again), undo deletes the row, and an ingest of a folder that held the file
before the move prunes the row once the file is gone from the review folder.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: Union[str, None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "moved_out",
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("original_path", sa.Text(), nullable=False),
        sa.Column("log", sa.Text(), nullable=True),
        sa.Column("created", sa.String(length=32), nullable=False),
    )
    op.create_index("ix_moved_out_original_path", "moved_out", ["original_path"])


def downgrade() -> None:
    op.drop_index("ix_moved_out_original_path", table_name="moved_out")
    op.drop_table("moved_out")
