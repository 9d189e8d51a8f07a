"""video frames and person crops as catalog entries

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: Union[str, None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _recreate() -> str:
    """SQLite cannot add a foreign key in place: batch mode copies the table. Elsewhere (PostgreSQL)
    copying would have to drop the primary key the signatures reference: plain ALTERs instead."""
    return "always" if op.get_bind().dialect.name == "sqlite" else "auto"


def upgrade() -> None:
    with op.batch_alter_table("images", recreate=_recreate()) as batch:
        batch.add_column(sa.Column("kind", sa.String(length=8), nullable=False, server_default="image"))
        batch.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("frame_index", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("time_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("box", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("sampling", sa.String(length=64), nullable=True))
        batch.create_foreign_key("fk_images_parent", "images", ["parent_id"], ["id"], ondelete="CASCADE")
        batch.create_index("ix_images_parent_id", ["parent_id"])


def downgrade() -> None:
    with op.batch_alter_table("images", recreate=_recreate()) as batch:
        batch.drop_index("ix_images_parent_id")
        batch.drop_constraint("fk_images_parent", type_="foreignkey")
        for column in ("sampling", "box", "time_s", "frame_index", "parent_id", "kind"):
            batch.drop_column(column)
