"""a command's own permission mode (plan for one command)

Revision ID: 4e8a2c6d9f10
Revises: 9c4e7d2a1b36
Create Date: 2026-11-30 14:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "4e8a2c6d9f10"
down_revision = "9c4e7d2a1b36"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("commands") as batch:
        batch.add_column(sa.Column("permission_mode", sa.String(length=32), nullable=True))


def downgrade():
    with op.batch_alter_table("commands") as batch:
        batch.drop_column("permission_mode")
