"""command attachments; the model of sessions and commands

Revision ID: 9c4e7d2a1b36
Revises: 2bfa945d266b
Create Date: 2026-11-30 12:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "9c4e7d2a1b36"
down_revision = "2bfa945d266b"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "command_attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("command_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["command_id"], ["commands.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("command_id", "position"),
    )
    op.create_index("ix_command_attachments_command_id", "command_attachments", ["command_id"])
    with op.batch_alter_table("chat_sessions") as batch:
        batch.add_column(sa.Column("model", sa.String(length=128), nullable=True))
    with op.batch_alter_table("commands") as batch:
        batch.add_column(sa.Column("model", sa.String(length=128), nullable=True))


def downgrade():
    with op.batch_alter_table("commands") as batch:
        batch.drop_column("model")
    with op.batch_alter_table("chat_sessions") as batch:
        batch.drop_column("model")
    op.drop_index("ix_command_attachments_command_id", table_name="command_attachments")
    op.drop_table("command_attachments")
