"""items

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("skill_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Enum("mcq", "short_answer", name="item_kind"), nullable=False),
        sa.Column(
            "status", sa.Enum("draft", "published", "retired", name="item_status"), nullable=False
        ),
        sa.Column("origin", sa.Enum("human", "ai", name="item_origin"), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=True),
        sa.Column("reference_answer", sa.Text(), nullable=True),
        sa.Column("rubric", sa.Text(), nullable=True),
        sa.Column("a", sa.Float(), nullable=False),
        sa.Column("b", sa.Float(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("previous_version_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["previous_version_id"],
            ["items.id"],
            name=op.f("fk_items_previous_version_id_items"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["skill_id"], ["skills.id"], name=op.f("fk_items_skill_id_skills"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_items")),
    )
    op.create_index(op.f("ix_items_origin"), "items", ["origin"], unique=False)
    op.create_index(op.f("ix_items_skill_id"), "items", ["skill_id"], unique=False)
    op.create_index(op.f("ix_items_status"), "items", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_items_status"), table_name="items")
    op.drop_index(op.f("ix_items_skill_id"), table_name="items")
    op.drop_index(op.f("ix_items_origin"), table_name="items")
    op.drop_table("items")
    for name in ("item_kind", "item_status", "item_origin"):
        sa.Enum(name=name).drop(op.get_bind(), checkfirst=True)
