"""indexes for the hot queries of practice and item lists

Composite indexes that serve the queries the load test measures most (docs/load-testing.md
"Indexes", with EXPLAIN output): a skill's items newest first (item lists, and the bank of
/next), a learner's recent answers (/next) and "has this learner answered this item"
(attempts). The single-column indexes they make redundant are dropped: each is the leading
column of a new one, and every index costs time on every insert.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_items_skill_id_created_at_id", "items", ["skill_id", "created_at", "id"])
    op.drop_index("ix_items_skill_id", table_name="items")
    op.create_index("ix_attempts_user_id_created_at", "attempts", ["user_id", "created_at"])
    op.create_index("ix_attempts_user_id_item_id", "attempts", ["user_id", "item_id"])
    op.drop_index("ix_attempts_user_id", table_name="attempts")


def downgrade() -> None:
    op.create_index("ix_attempts_user_id", "attempts", ["user_id"])
    op.drop_index("ix_attempts_user_id_item_id", table_name="attempts")
    op.drop_index("ix_attempts_user_id_created_at", table_name="attempts")
    op.create_index("ix_items_skill_id", "items", ["skill_id"])
    op.drop_index("ix_items_skill_id_created_at_id", table_name="items")
