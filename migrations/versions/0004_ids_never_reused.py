"""images ids are never reused on SQLite (AUTOINCREMENT lost when 0002 re-created the table)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

An image id is the label of its vectors in every index. Without AUTOINCREMENT SQLite hands the
largest id out again once that row is deleted. PostgreSQL's sequence never reuses a value: there
this revision changes nothing.
"""
from typing import Sequence, Union

from alembic import op

revision: str = "0004"
down_revision: Union[str, None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("images", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
        pass


def downgrade() -> None:
    pass  # AUTOINCREMENT is harmless to an older searcher
